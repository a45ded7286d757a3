import LoadBalancer
import KubeModels

/// Everything the Gateway control plane derives from one snapshot: the route tables every node's
/// proxy serves, the certificates they need, and the status the leader writes.
public struct GatewayState: Hashable, Sendable {
    /// One table per (Portway Gateway, listener port) with at least one programmed listener,
    /// sorted by Gateway then port.
    public var tables: [PortRouteTable]
    /// The decoded certificate Secrets named by `ListenerRouteTable.certificates`.
    public var certificates: [NamespacedName: TLSMaterial]
    public var status: GatewayStatusReport
    /// Gateways Portway serves (their class names Portway's controller), sorted.
    public var ownedGateways: [NamespacedName]
    /// Other Gateways and the controller of their class ("" when the class does not exist).
    public var foreignGateways: [NamespacedName: String]
    public var warnings: [GatewayWarning]
    /// The listeners of Portway's Gateways that are not in the tables, and why (conflicted, a
    /// certificate that did not resolve…), sorted by Gateway, port, name.
    public var unservedListeners: [UnservedListener]

    public init(
        tables: [PortRouteTable] = [], certificates: [NamespacedName: TLSMaterial] = [:], status: GatewayStatusReport = GatewayStatusReport(),
        ownedGateways: [NamespacedName] = [], foreignGateways: [NamespacedName: String] = [:], warnings: [GatewayWarning] = [],
        unservedListeners: [UnservedListener] = []
    ) {
        self.tables = tables
        self.certificates = certificates
        self.status = status
        self.ownedGateways = ownedGateways
        self.foreignGateways = foreignGateways
        self.warnings = warnings
        self.unservedListeners = unservedListeners
    }

    /// What the proxy does not serve, as warnings for the log and `portway routes`: each unserved
    /// listener, and each Gateway port whose frontends go to the proxy (`frontedPorts`, with the
    /// proxy port allocated to it if any) without a table: nothing listens on that proxy port, so
    /// the datapath answers every connection with a reset. Sorted by Gateway and port.
    public func servingWarnings(frontedPorts: [ProxyPortKey: UInt16?]) -> [GatewayWarning] {
        var out: [(key: ProxyPortKey, warning: GatewayWarning)] = unservedListeners.map { listener in
            (ProxyPortKey(gateway: listener.gateway, port: listener.port), GatewayWarning(object: "Gateway \(listener.gateway)", message: listener.description))
        }
        for (key, proxyPort) in frontedPorts where table(gateway: key.gateway, port: key.port) == nil {
            let listeners = unservedListeners.filter { $0.gateway == key.gateway && $0.port == key.port }.map(\.name)
            let why = listeners.isEmpty ? "the Gateway has no listener on port \(key.port)" : "no listener on port \(key.port) is served (\(listeners.joined(separator: ", ")))"
            let port = proxyPort.map { "proxy port \($0)" } ?? "the proxy"
            out.append((key, GatewayWarning(
                object: "Gateway \(key.gateway)",
                message: "port \(key.port): \(why); its Service's frontends go to \(port), where nothing listens: connections are reset")))
        }
        return out.sorted { ($0.key, $0.warning.message) < ($1.key, $1.warning.message) }.map(\.warning)
    }

    /// The ports served for `gateway` by listeners of its ListenerSets (its Service fronts them
    /// beside its own listeners' ports).
    public func listenerSetPorts(gateway: NamespacedName) -> [Int] {
        Set(tables.filter { $0.gateway == gateway && $0.listeners.contains { $0.listenerSet != nil } }.map(\.port)).sorted()
    }

    /// The table of `gateway`'s listener port `port`.
    public func table(gateway: NamespacedName, port: Int) -> PortRouteTable? {
        tables.first { $0.gateway == gateway && $0.port == port }
    }
}

/// The status Portway computes for its objects. Conditions carry the object's generation and no
/// `lastTransitionTime` (the writer keeps or sets it: see `GatewayStatusMerge`).
public struct GatewayStatusReport: Hashable, Sendable {
    /// Portway's GatewayClasses by name.
    public var gatewayClasses: [String: GatewayClassStatus]
    /// Portway's Gateways.
    public var gateways: [NamespacedName: GatewayStatus]
    /// For each HTTPRoute with a parentRef to one of Portway's Gateways: Portway's `status.parents`
    /// entries, in parentRef order.
    public var routes: [NamespacedName: [RouteParentStatus]]
    /// Each ListenerSet naming one of Portway's Gateways (allowed or not).
    public var listenerSets: [NamespacedName: ListenerSetStatus]
    /// Each BackendTLSPolicy whose Service a route of Portway's Gateways uses as a backend: Portway's
    /// `status.ancestors` entries, one per such Gateway, sorted by Gateway.
    public var backendTLSPolicies: [NamespacedName: [PolicyAncestorStatus]]

    public init(
        gatewayClasses: [String: GatewayClassStatus] = [:], gateways: [NamespacedName: GatewayStatus] = [:], routes: [NamespacedName: [RouteParentStatus]] = [:],
        listenerSets: [NamespacedName: ListenerSetStatus] = [:], backendTLSPolicies: [NamespacedName: [PolicyAncestorStatus]] = [:]
    ) {
        self.gatewayClasses = gatewayClasses
        self.gateways = gateways
        self.routes = routes
        self.listenerSets = listenerSets
        self.backendTLSPolicies = backendTLSPolicies
    }
}

/// Well-known names of the Gateway API.
public enum GatewayAPI {
    public static let group = "gateway.networking.k8s.io"
    /// The label the Gateway's Services carry (set by the leader on the Services it creates).
    public static let gatewayNameLabel = "gateway.networking.k8s.io/gateway-name"
    /// The label every Namespace carries with its own name (set by the API server).
    public static let namespaceNameLabel = "kubernetes.io/metadata.name"
    static let methods: Set<String> = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]
    /// Backend `appProtocol`s the proxy cannot speak (it speaks HTTP/1.1 in clear text to backends,
    /// WebSocket included): a backendRef to such a port is `ResolvedRefs=False/UnsupportedProtocol`
    /// (GEP-1911) instead of being sent HTTP/1.1 it does not expect. Other values are served as HTTP/1.1.
    /// `https` is served when a BackendTLSPolicy applies to the port (HTTP/1.1 over TLS).
    static let unsupportedBackendProtocols: Set<String> = ["kubernetes.io/h2c", "kubernetes.io/wss", "h2c", "h2", "grpc", "https"]
}
