import LoadBalancer
import KubeModels

/// What gets one proxy port: a listener port of one Gateway.
public struct ProxyPortKey: Hashable, Comparable, Codable, Sendable, CustomStringConvertible {
    public var gateway: NamespacedName
    public var port: Int

    public init(gateway: NamespacedName, port: Int) {
        self.gateway = gateway
        self.port = port
    }

    public static func < (lhs: ProxyPortKey, rhs: ProxyPortKey) -> Bool { (lhs.gateway, lhs.port) < (rhs.gateway, rhs.port) }

    public var description: String { "\(gateway):\(port)" }
}

/// A Service port: (namespace/name of the Service, `spec.ports[].port`).
public struct ServicePortKey: Hashable, Comparable, Sendable {
    public var service: NamespacedName
    public var port: Int

    public init(service: NamespacedName, port: Int) {
        self.service = service
        self.port = port
    }

    public static func < (lhs: ServicePortKey, rhs: ServicePortKey) -> Bool { (lhs.service, lhs.port) < (rhs.service, rhs.port) }
}
