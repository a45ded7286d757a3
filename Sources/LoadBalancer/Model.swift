/// The desired L4 load-balancing state: what the translator produces and the map writer programs.
/// It carries no map IDs; those belong to the map writer.

/// Transport protocol of a frontend or backend.
public enum L4Protocol: String, Hashable, Comparable, Sendable, CaseIterable, Codable {
    case tcp = "TCP"
    case udp = "UDP"
    case sctp = "SCTP"

    /// The IP protocol number used in map keys.
    public var ipProtocolNumber: UInt8 {
        switch self {
        case .tcp: 6
        case .udp: 17
        case .sctp: 132
        }
    }

    public init?(ipProtocolNumber: UInt8) {
        switch ipProtocolNumber {
        case 6: self = .tcp
        case 17: self = .udp
        case 132: self = .sctp
        default: return nil
        }
    }

    private var order: Int {
        switch self {
        case .tcp: 0
        case .udp: 1
        case .sctp: 2
        }
    }

    public static func < (lhs: L4Protocol, rhs: L4Protocol) -> Bool { lhs.order < rhs.order }
}

/// Which traffic a frontend entry applies to. Every entry is `external` today; `internal` is
/// reserved for services that need two scopes (different backends for in-cluster clients).
public enum FrontendScope: String, Hashable, Comparable, Sendable, Codable {
    case external
    case `internal`

    public static func < (lhs: FrontendScope, rhs: FrontendScope) -> Bool {
        lhs == .external && rhs == .internal
    }
}

/// An address, port and protocol that clients connect to.
public struct Frontend: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16
    public var proto: L4Protocol
    public var scope: FrontendScope

    public init(address: IPAddress, port: UInt16, proto: L4Protocol, scope: FrontendScope = .external) {
        self.address = address
        self.port = port
        self.proto = proto
        self.scope = scope
    }

    public static func < (lhs: Frontend, rhs: Frontend) -> Bool {
        (lhs.address, lhs.port, lhs.proto, lhs.scope) < (rhs.address, rhs.port, rhs.proto, rhs.scope)
    }

    /// "10.0.0.1:80/TCP", the Cilium notation.
    public var description: String { "\(address):\(port)/\(proto.rawValue)" }
}

/// The kind of frontend, as kube-proxy and Cilium name it.
public enum FrontendType: String, Hashable, Sendable, Codable {
    case clusterIP = "ClusterIP"
    case nodePort = "NodePort"
    case loadBalancer = "LoadBalancer"
    case externalIPs = "ExternalIPs"
}

/// Flags of a frontend. Their names (`names`) are the ones `bpf lb list` and `translate` print.
public struct ServiceFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let clusterIP = ServiceFlags(rawValue: 1 << 0)
    public static let nodePort = ServiceFlags(rawValue: 1 << 1)
    public static let loadBalancer = ServiceFlags(rawValue: 1 << 2)
    public static let externalIPs = ServiceFlags(rawValue: 1 << 3)
    /// The frontend is not reachable from outside the node as such (0.0.0.0 surrogates, ClusterIPs).
    public static let nonRoutable = ServiceFlags(rawValue: 1 << 4)
    /// externalTrafficPolicy: Local.
    public static let local = ServiceFlags(rawValue: 1 << 5)
    /// internalTrafficPolicy: Local.
    public static let internalLocal = ServiceFlags(rawValue: 1 << 6)
    public static let sessionAffinity = ServiceFlags(rawValue: 1 << 7)
    public static let l7LoadBalancer = ServiceFlags(rawValue: 1 << 8)

    /// Flag names in their printing order.
    public static let namedFlags: [(ServiceFlags, String)] = [
        (.clusterIP, "ClusterIP"),
        (.nodePort, "NodePort"),
        (.loadBalancer, "LoadBalancer"),
        (.externalIPs, "ExternalIPs"),
        (.local, "Local"),
        (.internalLocal, "InternalLocal"),
        (.sessionAffinity, "sessionAffinity"),
        (.nonRoutable, "non-routable"),
        (.l7LoadBalancer, "l7-load-balancer"),
    ]

    /// The names of the set flags, in printing order.
    public var names: [String] { Self.namedFlags.filter { contains($0.0) }.map(\.1) }

    /// Parses flag names as printed by `names`; nil if one is unknown.
    public init?(names: [String]) {
        var flags: ServiceFlags = []
        for name in names {
            guard let flag = Self.namedFlags.first(where: { $0.1 == name })?.0 else { return nil }
            flags.insert(flag)
        }
        self = flags
    }
}

/// Lifecycle state of a backend, as the datapath sees it.
public enum BackendState: String, Hashable, Comparable, Sendable, Codable {
    /// Ready: chosen for new connections.
    case active
    /// Serving but terminating: chosen only when a frontend has no active backend.
    case terminating
    /// Reserved for health checking.
    case quarantined
    case maintenance

    private var order: Int {
        switch self {
        case .active: 0
        case .terminating: 1
        case .quarantined: 2
        case .maintenance: 3
        }
    }

    public static func < (lhs: BackendState, rhs: BackendState) -> Bool { lhs.order < rhs.order }
}

/// One endpoint a frontend forwards to.
public struct Backend: Hashable, Sendable {
    public var address: IPAddress
    public var port: UInt16
    public var proto: L4Protocol
    public var state: BackendState
    /// The node the endpoint runs on, when known (used for traffic policies and SNAT decisions).
    public var nodeName: String?

    public init(address: IPAddress, port: UInt16, proto: L4Protocol, state: BackendState = .active, nodeName: String? = nil) {
        self.address = address
        self.port = port
        self.proto = proto
        self.state = state
        self.nodeName = nodeName
    }

    /// Output order: active first, then by address, port and protocol.
    public static func outputOrder(_ lhs: Backend, _ rhs: Backend) -> Bool {
        (lhs.state, lhs.address, lhs.port, lhs.proto) < (rhs.state, rhs.address, rhs.port, rhs.proto)
    }
}

/// The Kubernetes Service port a frontend was made from.
public struct ServiceReference: Hashable, Sendable {
    public var namespace: String
    public var name: String
    /// The Service port number (spec.ports[].port).
    public var port: UInt16
    /// The Service port name, "" when unnamed.
    public var portName: String

    public init(namespace: String, name: String, port: UInt16, portName: String = "") {
        self.namespace = namespace
        self.name = name
        self.port = port
        self.portName = portName
    }
}

/// One frontend with everything the datapath needs to serve it.
public struct FrontendEntry: Hashable, Sendable {
    public var frontend: Frontend
    public var type: FrontendType
    public var flags: ServiceFlags
    /// Set for L7LB frontends: connections go to this local proxy port instead of `backends`.
    public var l7ProxyPort: UInt16?
    /// Set when `flags` has `sessionAffinity`.
    public var affinityTimeoutSeconds: UInt32?
    public var service: ServiceReference
    /// Sorted active first, then by address (see `Backend.outputOrder`).
    public var backends: [Backend]

    public init(
        frontend: Frontend, type: FrontendType, flags: ServiceFlags, l7ProxyPort: UInt16? = nil,
        affinityTimeoutSeconds: UInt32? = nil, service: ServiceReference, backends: [Backend]
    ) {
        self.frontend = frontend
        self.type = type
        self.flags = flags
        self.l7ProxyPort = l7ProxyPort
        self.affinityTimeoutSeconds = affinityTimeoutSeconds
        self.service = service
        self.backends = backends
    }
}

/// Something the translator could not use, naming the object and the field.
public struct TranslationWarning: Hashable, Sendable, CustomStringConvertible {
    /// e.g. "Service demo/web" or "EndpointSlice demo/web-abc12".
    public var object: String
    /// e.g. "spec.ports[0].nodePort".
    public var field: String
    public var message: String

    public init(object: String, field: String, message: String) {
        self.object = object
        self.field = field
        self.message = message
    }

    public var description: String { "\(object): \(field): \(message)" }
}

/// The whole desired L4 state: entries sorted by frontend, plus warnings.
public struct DesiredL4State: Hashable, Sendable {
    public var entries: [FrontendEntry]
    public var warnings: [TranslationWarning]

    public init(entries: [FrontendEntry], warnings: [TranslationWarning] = []) {
        self.entries = entries.sorted { $0.frontend < $1.frontend }
        self.warnings = warnings
    }
}
