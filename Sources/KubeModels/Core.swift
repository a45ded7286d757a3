// Slim models of the core/v1 and discovery.k8s.io/v1 objects Portway reads. Numbers are decoded as
// Int (not UInt16) so that an out-of-range port reaches the translator, which reports it as a warning
// naming the field, instead of failing the whole object at decode time.

/// core/v1 Service.
public struct Service: KubeResource, Hashable {
    public static let resource = ResourceDescriptor(group: "", version: "v1", plural: "services", kind: "Service", namespaced: true)

    private struct Fields: Hashable, Sendable {
        var metadata: ObjectMeta
        var spec: ServiceSpec
        var status: ServiceStatus?
    }
    /// Held once for every copy (`SharedFields`).
    private var fields: SharedFields<Fields>

    public var metadata: ObjectMeta {
        _read { yield fields.value.metadata }
        _modify { SharedFields.unique(&fields); yield &fields.value.metadata }
    }
    public var spec: ServiceSpec {
        _read { yield fields.value.spec }
        _modify { SharedFields.unique(&fields); yield &fields.value.spec }
    }
    public var status: ServiceStatus? {
        _read { yield fields.value.status }
        _modify { SharedFields.unique(&fields); yield &fields.value.status }
    }

    public init(metadata: ObjectMeta, spec: ServiceSpec, status: ServiceStatus? = nil) {
        fields = SharedFields(Fields(metadata: metadata, spec: spec, status: status))
    }

    private enum CodingKeys: String, CodingKey { case metadata, spec, status }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            metadata: try c.decode(ObjectMeta.self, forKey: .metadata), spec: try c.decode(ServiceSpec.self, forKey: .spec),
            status: try c.decodeIfPresent(ServiceStatus.self, forKey: .status))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(metadata, forKey: .metadata)
        try c.encode(spec, forKey: .spec)
        try c.encodeIfPresent(status, forKey: .status)
    }

    public static func == (lhs: Service, rhs: Service) -> Bool { lhs.fields === rhs.fields || lhs.fields.value == rhs.fields.value }
    public func hash(into hasher: inout Hasher) { fields.value.hash(into: &hasher) }
}

public struct ServiceSpec: Codable, Hashable, Sendable {
    /// ClusterIP (default), NodePort, LoadBalancer or ExternalName.
    public var type: String?
    public var clusterIP: String?
    public var clusterIPs: [String]?
    public var ports: [ServicePort]?
    public var externalIPs: [String]?
    /// Cluster (default) or Local.
    public var externalTrafficPolicy: String?
    /// Cluster (default) or Local.
    public var internalTrafficPolicy: String?
    /// None (default) or ClientIP.
    public var sessionAffinity: String?
    public var sessionAffinityConfig: SessionAffinityConfig?
    public var externalName: String?
    public var selector: [String: String]?
    public var loadBalancerClass: String?
    public var ipFamilies: [String]?

    public init(
        type: String? = nil, clusterIP: String? = nil, clusterIPs: [String]? = nil, ports: [ServicePort]? = nil,
        externalIPs: [String]? = nil, externalTrafficPolicy: String? = nil, internalTrafficPolicy: String? = nil,
        sessionAffinity: String? = nil, sessionAffinityConfig: SessionAffinityConfig? = nil, externalName: String? = nil,
        selector: [String: String]? = nil, loadBalancerClass: String? = nil, ipFamilies: [String]? = nil
    ) {
        self.type = type
        self.clusterIP = clusterIP
        self.clusterIPs = clusterIPs
        self.ports = ports
        self.externalIPs = externalIPs
        self.externalTrafficPolicy = externalTrafficPolicy
        self.internalTrafficPolicy = internalTrafficPolicy
        self.sessionAffinity = sessionAffinity
        self.sessionAffinityConfig = sessionAffinityConfig
        self.externalName = externalName
        self.selector = selector
        self.loadBalancerClass = loadBalancerClass
        self.ipFamilies = ipFamilies
    }
}

public struct ServicePort: Codable, Hashable, Sendable {
    public var name: String?
    /// TCP (default), UDP or SCTP.
    public var `protocol`: String?
    public var port: Int
    public var targetPort: IntOrString?
    public var nodePort: Int?
    public var appProtocol: String?

    public init(name: String? = nil, protocol: String? = nil, port: Int, targetPort: IntOrString? = nil, nodePort: Int? = nil, appProtocol: String? = nil) {
        self.name = name
        self.protocol = `protocol`
        self.port = port
        self.targetPort = targetPort
        self.nodePort = nodePort
        self.appProtocol = appProtocol
    }
}

public struct SessionAffinityConfig: Codable, Hashable, Sendable {
    public var clientIP: ClientIPConfig?
    public init(clientIP: ClientIPConfig? = nil) { self.clientIP = clientIP }
}

public struct ClientIPConfig: Codable, Hashable, Sendable {
    public var timeoutSeconds: Int?
    public init(timeoutSeconds: Int? = nil) { self.timeoutSeconds = timeoutSeconds }
}

public struct ServiceStatus: Codable, Hashable, Sendable {
    public var loadBalancer: LoadBalancerStatus?
    public init(loadBalancer: LoadBalancerStatus? = nil) { self.loadBalancer = loadBalancer }
}

public struct LoadBalancerStatus: Codable, Hashable, Sendable {
    public var ingress: [LoadBalancerIngress]?
    public init(ingress: [LoadBalancerIngress]? = nil) { self.ingress = ingress }
}

public struct LoadBalancerIngress: Codable, Hashable, Sendable {
    public var ip: String?
    public var hostname: String?
    /// `VIP` (the default when absent): traffic arrives with `ip` as its destination, so the node
    /// serves it; `Proxy`: the load balancer delivers it to the node/pod itself, so the node must not.
    public var ipMode: String?
    public init(ip: String? = nil, hostname: String? = nil, ipMode: String? = nil) {
        self.ip = ip
        self.hostname = hostname
        self.ipMode = ipMode
    }
}

/// discovery.k8s.io/v1 EndpointSlice.
public struct EndpointSlice: KubeResource, Hashable {
    public static let resource = ResourceDescriptor(group: "discovery.k8s.io", version: "v1", plural: "endpointslices", kind: "EndpointSlice", namespaced: true)
    /// The label that names the Service a slice belongs to.
    public static let serviceNameLabel = "kubernetes.io/service-name"

    private struct Fields: Hashable, Sendable {
        var metadata: ObjectMeta
        var addressType: String
        var endpoints: [Endpoint]?
        var ports: [EndpointPort]?
    }
    /// Held once for every copy (`SharedFields`).
    private var fields: SharedFields<Fields>

    public var metadata: ObjectMeta {
        _read { yield fields.value.metadata }
        _modify { SharedFields.unique(&fields); yield &fields.value.metadata }
    }
    /// IPv4, IPv6 or FQDN.
    public var addressType: String {
        _read { yield fields.value.addressType }
        _modify { SharedFields.unique(&fields); yield &fields.value.addressType }
    }
    public var endpoints: [Endpoint]? {
        _read { yield fields.value.endpoints }
        _modify { SharedFields.unique(&fields); yield &fields.value.endpoints }
    }
    public var ports: [EndpointPort]? {
        _read { yield fields.value.ports }
        _modify { SharedFields.unique(&fields); yield &fields.value.ports }
    }

    public init(metadata: ObjectMeta, addressType: String, endpoints: [Endpoint]? = nil, ports: [EndpointPort]? = nil) {
        fields = SharedFields(Fields(metadata: metadata, addressType: addressType, endpoints: endpoints, ports: ports))
    }

    private enum CodingKeys: String, CodingKey { case metadata, addressType, endpoints, ports }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            metadata: try c.decode(ObjectMeta.self, forKey: .metadata), addressType: try c.decode(String.self, forKey: .addressType),
            endpoints: try c.decodeIfPresent([Endpoint].self, forKey: .endpoints), ports: try c.decodeIfPresent([EndpointPort].self, forKey: .ports))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(metadata, forKey: .metadata)
        try c.encode(addressType, forKey: .addressType)
        try c.encodeIfPresent(endpoints, forKey: .endpoints)
        try c.encodeIfPresent(ports, forKey: .ports)
    }

    public static func == (lhs: EndpointSlice, rhs: EndpointSlice) -> Bool { lhs.fields === rhs.fields || lhs.fields.value == rhs.fields.value }
    public func hash(into hasher: inout Hasher) { fields.value.hash(into: &hasher) }
}

/// One endpoint of a slice. Held compactly (a cluster has about as many as it has pods, and every
/// one is kept): the first address inline, as Portway uses only it (like kube-proxy), the others,
/// which the API allows and nobody sends, in an array that is empty and unallocated otherwise.
/// `zone` and `hostname` are not kept: nothing reads them.
public struct Endpoint: Codable, Hashable, Sendable {
    /// `addresses[0]`, the address Portway uses; nil for an endpoint without addresses.
    public private(set) var firstAddress: String?
    private var otherAddresses: [String]
    public var conditions: EndpointConditions?
    public var nodeName: String?

    /// Every address of the endpoint, as the API has them (allocates: read `firstAddress` where one is enough).
    public var addresses: [String] {
        get { firstAddress.map { [$0] + otherAddresses } ?? [] }
        set {
            firstAddress = newValue.first
            otherAddresses = Array(newValue.dropFirst())
        }
    }

    public init(addresses: [String], conditions: EndpointConditions? = nil, nodeName: String? = nil) {
        self.firstAddress = addresses.first
        self.otherAddresses = Array(addresses.dropFirst())
        self.conditions = conditions
        self.nodeName = nodeName
    }

    private enum CodingKeys: String, CodingKey {
        case addresses, conditions, nodeName
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            addresses: try c.decode([String].self, forKey: .addresses),
            conditions: try c.decodeIfPresent(EndpointConditions.self, forKey: .conditions),
            nodeName: try c.decodeIfPresent(String.self, forKey: .nodeName))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(addresses, forKey: .addresses)
        try c.encodeIfPresent(conditions, forKey: .conditions)
        try c.encodeIfPresent(nodeName, forKey: .nodeName)
    }
}

public struct EndpointConditions: Codable, Hashable, Sendable {
    public var ready: Bool?
    public var serving: Bool?
    public var terminating: Bool?

    public init(ready: Bool? = nil, serving: Bool? = nil, terminating: Bool? = nil) {
        self.ready = ready
        self.serving = serving
        self.terminating = terminating
    }
}

public struct EndpointPort: Codable, Hashable, Sendable {
    public var name: String?
    public var `protocol`: String?
    public var port: Int?
    public var appProtocol: String?

    public init(name: String? = nil, protocol: String? = nil, port: Int? = nil, appProtocol: String? = nil) {
        self.name = name
        self.protocol = `protocol`
        self.port = port
        self.appProtocol = appProtocol
    }
}

/// core/v1 Endpoints (the pre-EndpointSlice API, used with `--endpoints-source=endpoints`).
public struct Endpoints: KubeResource, Hashable {
    public static let resource = ResourceDescriptor(group: "", version: "v1", plural: "endpoints", kind: "Endpoints", namespaced: true)

    private struct Fields: Hashable, Sendable {
        var metadata: ObjectMeta
        var subsets: [EndpointSubset]?
    }
    /// Held once for every copy (`SharedFields`).
    private var fields: SharedFields<Fields>

    public var metadata: ObjectMeta {
        _read { yield fields.value.metadata }
        _modify { SharedFields.unique(&fields); yield &fields.value.metadata }
    }
    public var subsets: [EndpointSubset]? {
        _read { yield fields.value.subsets }
        _modify { SharedFields.unique(&fields); yield &fields.value.subsets }
    }

    public init(metadata: ObjectMeta, subsets: [EndpointSubset]? = nil) {
        fields = SharedFields(Fields(metadata: metadata, subsets: subsets))
    }

    private enum CodingKeys: String, CodingKey { case metadata, subsets }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(metadata: try c.decode(ObjectMeta.self, forKey: .metadata), subsets: try c.decodeIfPresent([EndpointSubset].self, forKey: .subsets))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(metadata, forKey: .metadata)
        try c.encodeIfPresent(subsets, forKey: .subsets)
    }

    public static func == (lhs: Endpoints, rhs: Endpoints) -> Bool { lhs.fields === rhs.fields || lhs.fields.value == rhs.fields.value }
    public func hash(into hasher: inout Hasher) { fields.value.hash(into: &hasher) }
}

public struct EndpointSubset: Codable, Hashable, Sendable {
    public var addresses: [EndpointAddress]?
    public var notReadyAddresses: [EndpointAddress]?
    public var ports: [EndpointPort]?

    public init(addresses: [EndpointAddress]? = nil, notReadyAddresses: [EndpointAddress]? = nil, ports: [EndpointPort]? = nil) {
        self.addresses = addresses
        self.notReadyAddresses = notReadyAddresses
        self.ports = ports
    }
}

public struct EndpointAddress: Codable, Hashable, Sendable {
    public var ip: String
    public var nodeName: String?
    public var hostname: String?

    public init(ip: String, nodeName: String? = nil, hostname: String? = nil) {
        self.ip = ip
        self.nodeName = nodeName
        self.hostname = hostname
    }
}

/// core/v1 Node: only the addresses.
public struct Node: KubeResource, Hashable {
    public static let resource = ResourceDescriptor(group: "", version: "v1", plural: "nodes", kind: "Node", namespaced: false)
    public var metadata: ObjectMeta
    public var status: NodeStatus?

    public init(metadata: ObjectMeta, status: NodeStatus? = nil) {
        self.metadata = metadata
        self.status = status
    }
}

public struct NodeStatus: Codable, Hashable, Sendable {
    public var addresses: [NodeAddress]?
    public init(addresses: [NodeAddress]? = nil) { self.addresses = addresses }
}

public struct NodeAddress: Codable, Hashable, Sendable {
    /// InternalIP, ExternalIP, Hostname, ...
    public var type: String
    public var address: String
    public init(type: String, address: String) {
        self.type = type
        self.address = address
    }
}
