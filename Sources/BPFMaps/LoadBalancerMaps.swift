import CPortwayBPF
import LoadBalancer

/// The three maps the writer programs: services (masters and slots), backends and reverse NAT.
/// Any `MapOperations` will do: the pins (`init(_: MapSet)`), in-memory maps (`inMemory`), or
/// either wrapped to inject faults (`injectingFaults`).
///
/// Made from a `MapSet`, they keep that map set (and so the pin directory's writer lock) alive for
/// as long as they are used: a writer never writes pins whose lock it has let go.
public struct LoadBalancerMaps: Sendable {
    public let services: any MapOperations
    public let backends: any MapOperations
    public let reverseNAT: any MapOperations
    /// The map set the pins came from (nil for other maps): holds the writer lock.
    private let pinned: MapSet?

    public init(services: any MapOperations, backends: any MapOperations, reverseNAT: any MapOperations) {
        self.init(services: services, backends: backends, reverseNAT: reverseNAT, pinned: nil)
    }

    private init(services: any MapOperations, backends: any MapOperations, reverseNAT: any MapOperations, pinned: MapSet?) {
        precondition(services.kind == .services && backends.kind == .backends && reverseNAT.kind == .reverseNAT)
        self.services = services
        self.backends = backends
        self.reverseNAT = reverseNAT
        self.pinned = pinned
    }

    /// The pinned maps of a map set; the map set (with its writer lock) lives as long as these.
    public init(_ set: MapSet) {
        self.init(services: set[.services], backends: set[.backends], reverseNAT: set[.reverseNAT], pinned: set)
    }

    /// Empty in-memory maps of `sizes`, logging into `log` when given.
    public static func inMemory(sizes: MapSizes = .defaults, log: MapOperationLog? = nil) -> LoadBalancerMaps {
        LoadBalancerMaps(
            services: InMemoryMap(kind: .services, maxEntries: sizes[.services], log: log),
            backends: InMemoryMap(kind: .backends, maxEntries: sizes[.backends], log: log),
            reverseNAT: InMemoryMap(kind: .reverseNAT, maxEntries: sizes[.reverseNAT], log: log))
    }

    /// These maps, each wrapped in a `FaultInjectingMap` sharing `injector`.
    public func injectingFaults(_ injector: FaultInjector) -> LoadBalancerMaps {
        LoadBalancerMaps(
            services: FaultInjectingMap(services, injector: injector),
            backends: FaultInjectingMap(backends, injector: injector),
            reverseNAT: FaultInjectingMap(reverseNAT, injector: injector), pinned: pinned)
    }

    public subscript(kind: MapKind) -> any MapOperations {
        switch kind {
        case .services: services
        case .backends: backends
        default: reverseNAT
        }
    }
}

/// One entry of Portway's maps in words, decoded by the map's layout (for operation logs).
func describeEntry(_ kind: MapKind, key: [UInt8], value: [UInt8]?) -> String {
    func load<T>(_ bytes: [UInt8], _: T.Type) -> T? {
        guard bytes.count == MemoryLayout<T>.size else { return nil }
        return bytes.withUnsafeBytes { $0.loadUnaligned(as: T.self) }
    }
    switch kind {
    case .services:
        guard let k = load(key, pw_lb4_key.self) else { break }
        let (service, slot) = ServiceMapKey.from(k)
        var text = "\(service) #\(slot)"
        if let value, let v = load(value, pw_lb4_service.self) {
            if slot == 0 {
                let m = MasterEntry(v)
                text += " -> master \(m.count)+\(m.qcount) revnat \(m.revNatID)"
            } else {
                text += " -> backend \(v.backend_id)"
            }
        }
        return text
    case .backends:
        guard let id = load(key, UInt32.self) else { break }
        var text = "#\(id)"
        if let value, let v = load(value, pw_lb4_backend.self) {
            let b = BackendEntry(v)
            text += " -> \(b.key) \(b.backendState?.rawValue ?? "state \(b.state)")"
        }
        return text
    case .reverseNAT:
        guard let id = load(key, UInt16.self) else { break }
        var text = "#\(UInt16(bigEndian: id))"
        if let value, let v = load(value, pw_lb4_reverse_nat.self) {
            let r = RevNatEntry(v)
            text += " -> \(r.address):\(r.port)"
        }
        return text
    default:
        break
    }
    let hex = { (b: [UInt8]) in b.map { String($0, radix: 16) }.joined(separator: " ") }
    return hex(key) + (value.map { " -> " + hex($0) } ?? "")
}
