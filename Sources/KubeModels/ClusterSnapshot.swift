/// Everything a source (the API server's informers, or a directory of YAML files) knows at one
/// moment: the translator's input, and the Gateway API objects the route tables are built from.
public struct ClusterSnapshot: Hashable, Sendable {
    public var services: [Service]
    public var endpointSlices: [EndpointSlice]
    public var endpoints: [Endpoints]
    public var nodes: [Node]
    public var gatewayClasses: [GatewayClass]
    public var gateways: [Gateway]
    public var httpRoutes: [HTTPRoute]
    public var referenceGrants: [ReferenceGrant]
    /// For `allowedRoutes.namespaces.from: Selector` (their labels).
    public var namespaces: [Namespace]
    /// TLS Secrets named by HTTPS listeners' certificateRefs.
    public var secrets: [Secret]
    /// ListenerSets: listeners added to Gateways that allow them.
    public var listenerSets: [ListenerSet]
    /// ConfigMaps (their `ca.crt` only): CA certificates of Gateways' frontend TLS validation.
    public var configMaps: [ConfigMap]
    /// BackendTLSPolicies: TLS from the proxy to the Services they target.
    public var backendTLSPolicies: [BackendTLSPolicy]

    public init(
        services: [Service] = [], endpointSlices: [EndpointSlice] = [], endpoints: [Endpoints] = [], nodes: [Node] = [],
        gatewayClasses: [GatewayClass] = [], gateways: [Gateway] = [], httpRoutes: [HTTPRoute] = [],
        referenceGrants: [ReferenceGrant] = [], namespaces: [Namespace] = [], secrets: [Secret] = [],
        listenerSets: [ListenerSet] = [], configMaps: [ConfigMap] = [], backendTLSPolicies: [BackendTLSPolicy] = []
    ) {
        self.services = services
        self.endpointSlices = endpointSlices
        self.endpoints = endpoints
        self.nodes = nodes
        self.gatewayClasses = gatewayClasses
        self.gateways = gateways
        self.httpRoutes = httpRoutes
        self.referenceGrants = referenceGrants
        self.namespaces = namespaces
        self.secrets = secrets
        self.listenerSets = listenerSets
        self.configMaps = configMaps
        self.backendTLSPolicies = backendTLSPolicies
    }
}
