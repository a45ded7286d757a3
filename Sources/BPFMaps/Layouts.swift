import CPortwayBPF
import LoadBalancer

/// A services-map key in host order (the C struct holds address and port in network order).
public struct ServiceMapKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var address: IPv4Address
    public var port: UInt16
    /// IP protocol number.
    public var proto: UInt8
    /// PW_SCOPE_EXTERNAL or PW_SCOPE_INTERNAL.
    public var scope: UInt8

    public init(address: IPv4Address, port: UInt16, proto: UInt8, scope: UInt8) {
        self.address = address
        self.port = port
        self.proto = proto
        self.scope = scope
    }

    /// The key of an IPv4 frontend; nil for IPv6.
    public init?(_ frontend: Frontend) {
        guard let v4 = frontend.address.ipv4 else { return nil }
        self.init(
            address: v4, port: frontend.port, proto: frontend.proto.ipProtocolNumber,
            scope: UInt8(frontend.scope == .external ? PW_SCOPE_EXTERNAL : PW_SCOPE_INTERNAL))
    }

    /// The model's frontend; nil when the protocol or scope is unknown.
    public var frontend: Frontend? {
        guard let p = L4Protocol(ipProtocolNumber: proto) else { return nil }
        let s: FrontendScope
        switch Int32(scope) {
        case PW_SCOPE_EXTERNAL: s = .external
        case PW_SCOPE_INTERNAL: s = .internal
        default: return nil
        }
        return Frontend(address: .v4(address), port: port, proto: p, scope: s)
    }

    public var description: String { "\(address):\(port)/\(protocolName(proto))" }

    /// The key packed in 64 bits: one hash combine instead of four (the writer hashes keys a lot).
    public func hash(into hasher: inout Hasher) { hasher.combine(packed) }

    /// What dictionaries and sets call: the packed key hashed in one step, as a `UInt64` key is,
    /// instead of through a `Hasher` (its out-of-line seeding was the writer's top user-space cost).
    public func _rawHashValue(seed: Int) -> Int { packed._rawHashValue(seed: seed) }

    private var packed: UInt64 { UInt64(address.value) << 32 | UInt64(port) << 16 | UInt64(proto) << 8 | UInt64(scope) }

    /// Address, port, protocol, scope: the packed key's order.
    public static func < (lhs: ServiceMapKey, rhs: ServiceMapKey) -> Bool { lhs.packed < rhs.packed }

    /// The C key of one of this frontend's entries (slot 0: the master).
    public func cKey(slot: UInt16) -> pw_lb4_key {
        var k = zeroed(pw_lb4_key.self)
        k.address = address.value.bigEndian
        k.dport = port.bigEndian
        k.backend_slot = slot
        k.proto = proto
        k.scope = scope
        return k
    }

    /// Splits a C key into the frontend key and the slot.
    static func from(_ k: pw_lb4_key) -> (ServiceMapKey, UInt16) {
        (ServiceMapKey(address: IPv4Address(UInt32(bigEndian: k.address)), port: UInt16(bigEndian: k.dport), proto: k.proto, scope: k.scope),
         k.backend_slot)
    }
}

/// The master entry (slot 0) of a frontend in the services map.
public struct MasterEntry: Hashable, Sendable {
    /// Active backends, in slots 1...count.
    public var count: UInt16
    /// Terminating backends, in slots count+1...count+qcount.
    public var qcount: UInt16
    public var revNatID: UInt16
    /// PW_SVC_FLAG_* bits.
    public var flags: UInt8
    /// PW_SVC_FLAG2_* bits.
    public var flags2: UInt8
    /// The union: L7LB proxy port when flags2 has L7LB, else the affinity timeout (seconds).
    public var union: UInt32

    public init(count: UInt16, qcount: UInt16, revNatID: UInt16, flags: UInt8, flags2: UInt8, union: UInt32) {
        self.count = count
        self.qcount = qcount
        self.revNatID = revNatID
        self.flags = flags
        self.flags2 = flags2
        self.union = union
    }

    var isL7LB: Bool { flags2 & UInt8(PW_SVC_FLAG2_L7LB) != 0 }

    /// Slots the datapath may read: 1...count+qcount.
    public var slotCount: Int { Int(count) + Int(qcount) }

    /// The C value.
    public var cValue: pw_lb4_service {
        var v = zeroed(pw_lb4_service.self)
        v.backend_id = union
        v.count = count
        v.qcount = qcount
        v.rev_nat_index = revNatID.bigEndian
        v.flags = flags
        v.flags2 = flags2
        return v
    }

    init(_ v: pw_lb4_service) {
        self.init(count: v.count, qcount: v.qcount, revNatID: UInt16(bigEndian: v.rev_nat_index), flags: v.flags, flags2: v.flags2, union: v.backend_id)
    }

    /// The model's flags for these bits.
    public var serviceFlags: ServiceFlags {
        var f: ServiceFlags = []
        for (bit, flag) in flagBits where flags & bit != 0 { f.insert(flag) }
        if isL7LB { f.insert(.l7LoadBalancer) }
        return f
    }

    /// The frontend type named by the flags (NodePort when none is set).
    public var frontendType: FrontendType {
        let f = serviceFlags
        if f.contains(.clusterIP) { return .clusterIP }
        if f.contains(.loadBalancer) { return .loadBalancer }
        if f.contains(.externalIPs) { return .externalIPs }
        return .nodePort
    }
}

/// ServiceFlags to PW_SVC_FLAG_* bits (l7LoadBalancer lives in flags2).
let flagBits: [(UInt8, ServiceFlags)] = [
    (UInt8(PW_SVC_FLAG_CLUSTER_IP), .clusterIP),
    (UInt8(PW_SVC_FLAG_NODEPORT), .nodePort),
    (UInt8(PW_SVC_FLAG_LOADBALANCER), .loadBalancer),
    (UInt8(PW_SVC_FLAG_EXTERNAL_IP), .externalIPs),
    (UInt8(PW_SVC_FLAG_NON_ROUTABLE), .nonRoutable),
    (UInt8(PW_SVC_FLAG_EXT_LOCAL), .local),
    (UInt8(PW_SVC_FLAG_INT_LOCAL), .internalLocal),
    (UInt8(PW_SVC_FLAG_AFFINITY), .sessionAffinity),
]

/// The key of the backends map's reverse index: one backend ID per (address, port, protocol).
public struct BackendKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var address: IPv4Address
    public var port: UInt16
    public var proto: UInt8

    public init(address: IPv4Address, port: UInt16, proto: UInt8) {
        self.address = address
        self.port = port
        self.proto = proto
    }

    /// The key packed in 64 bits: one hash combine instead of three.
    public func hash(into hasher: inout Hasher) { hasher.combine(packed) }

    /// What dictionaries and sets call: the packed key hashed in one step (see `ServiceMapKey`).
    public func _rawHashValue(seed: Int) -> Int { packed._rawHashValue(seed: seed) }

    private var packed: UInt64 { UInt64(address.value) << 24 | UInt64(port) << 8 | UInt64(proto) }

    public static func < (lhs: BackendKey, rhs: BackendKey) -> Bool {
        (lhs.address, lhs.port, lhs.proto) < (rhs.address, rhs.port, rhs.proto)
    }

    public var description: String { "\(address):\(port)/\(protocolName(proto))" }
}

/// A backends-map value in host order.
public struct BackendEntry: Hashable, Sendable {
    public var address: IPv4Address
    public var port: UInt16
    public var proto: UInt8
    /// PW_BACKEND_* state.
    public var state: UInt8
    public var zone: UInt8

    public init(address: IPv4Address, port: UInt16, proto: UInt8, state: UInt8, zone: UInt8 = 0) {
        self.address = address
        self.port = port
        self.proto = proto
        self.state = state
        self.zone = zone
    }

    public var key: BackendKey { BackendKey(address: address, port: port, proto: proto) }

    /// The model's state; nil for an unknown value.
    public var backendState: BackendState? {
        switch Int32(state) {
        case PW_BACKEND_ACTIVE: .active
        case PW_BACKEND_TERMINATING: .terminating
        case PW_BACKEND_QUARANTINED: .quarantined
        case PW_BACKEND_MAINTENANCE: .maintenance
        default: nil
        }
    }

    static func stateValue(_ s: BackendState) -> UInt8 {
        switch s {
        case .active: UInt8(PW_BACKEND_ACTIVE)
        case .terminating: UInt8(PW_BACKEND_TERMINATING)
        case .quarantined: UInt8(PW_BACKEND_QUARANTINED)
        case .maintenance: UInt8(PW_BACKEND_MAINTENANCE)
        }
    }

    /// The C value.
    public var cValue: pw_lb4_backend {
        var v = zeroed(pw_lb4_backend.self)
        v.address = address.value.bigEndian
        v.port = port.bigEndian
        v.proto = proto
        v.state = state
        v.zone = zone
        return v
    }

    init(_ v: pw_lb4_backend) {
        self.init(address: IPv4Address(UInt32(bigEndian: v.address)), port: UInt16(bigEndian: v.port), proto: v.proto, state: v.state, zone: v.zone)
    }
}

/// A reverse-NAT value in host order: the frontend address replies must carry.
public struct RevNatEntry: Hashable, Sendable {
    public var address: IPv4Address
    public var port: UInt16

    public init(address: IPv4Address, port: UInt16) {
        self.address = address
        self.port = port
    }

    /// The C value.
    public var cValue: pw_lb4_reverse_nat {
        var v = zeroed(pw_lb4_reverse_nat.self)
        v.address = address.value.bigEndian
        v.port = port.bigEndian
        return v
    }

    init(_ v: pw_lb4_reverse_nat) {
        self.init(address: IPv4Address(UInt32(bigEndian: v.address)), port: UInt16(bigEndian: v.port))
    }
}

/// "TCP", "UDP", "SCTP" or the number.
func protocolName(_ proto: UInt8) -> String {
    L4Protocol(ipProtocolNumber: proto)?.rawValue ?? "proto\(proto)"
}
