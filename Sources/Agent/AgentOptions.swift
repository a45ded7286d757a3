import BPFMaps
import LoadBalancer

/// What `portway agent` is told on its command line.
public struct AgentOptions: Sendable {
    /// This node's name (backends on it are local for traffic policies).
    public var nodeName: String
    /// This node's addresses (`--node-ip`); empty: the InternalIP/ExternalIP of the Node object
    /// named `nodeName` in the source, when there is one.
    public var nodeAddresses: [IPAddress]
    public var endpointsSource: EndpointsSource
    /// The bpffs directory of the pinned maps (`--bpffs`).
    public var bpffs: String
    public var mapSizes: MapSizes

    public init(
        nodeName: String, nodeAddresses: [IPAddress] = [], endpointsSource: EndpointsSource = .endpointSlices,
        bpffs: String = BPFFS.defaultDirectory, mapSizes: MapSizes = .defaults
    ) {
        self.nodeName = nodeName
        self.nodeAddresses = nodeAddresses
        self.endpointsSource = endpointsSource
        self.bpffs = bpffs
        self.mapSizes = mapSizes
    }
}
