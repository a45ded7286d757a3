/// Everything a source (the API server's informers, or a directory of YAML files) knows at one
/// moment: the translator's input. Gateway API objects join it with the Gateway work.
public struct ClusterSnapshot: Hashable, Sendable {
    public var services: [Service]
    public var endpointSlices: [EndpointSlice]
    public var endpoints: [Endpoints]
    public var nodes: [Node]

    public init(services: [Service] = [], endpointSlices: [EndpointSlice] = [], endpoints: [Endpoints] = [], nodes: [Node] = []) {
        self.services = services
        self.endpointSlices = endpointSlices
        self.endpoints = endpoints
        self.nodes = nodes
    }
}
