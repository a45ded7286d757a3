import CPortwayBPF

/// The six pinned maps Portway's datapath uses, with their layouts from portway_maps.h.
public enum MapKind: String, CaseIterable, Sendable, Hashable {
    case services, backends, reverseNAT, affinity, connectionTracking, snat

    /// The pin name under the bpffs directory (PW_MAP_* in portway_maps.h).
    public var pinName: String {
        switch self {
        case .services: PW_MAP_SERVICES
        case .backends: PW_MAP_BACKENDS
        case .reverseNAT: PW_MAP_REVNAT
        case .affinity: PW_MAP_AFFINITY
        case .connectionTracking: PW_MAP_CT
        case .snat: PW_MAP_SNAT
        }
    }

    /// The command-line flag that sets this map's size, named in errors.
    public var sizeFlag: String {
        switch self {
        case .services: "--service-map-size"
        case .backends: "--backend-map-size"
        case .reverseNAT: "--revnat-map-size"
        case .affinity: "--affinity-map-size"
        case .connectionTracking: "--ct-map-size"
        case .snat: "--snat-map-size"
        }
    }

    /// Whether the kernel evicts old entries (LRU_HASH) rather than refusing new ones (HASH).
    public var isLRU: Bool {
        switch self {
        case .services, .backends, .reverseNAT: false
        case .affinity, .connectionTracking, .snat: true
        }
    }

    var mapType: UInt32 { isLRU ? portway_map_type_lru_hash() : portway_map_type_hash() }

    var mapTypeName: String { isLRU ? "lru_hash" : "hash" }

    var keySize: UInt32 {
        switch self {
        case .services: UInt32(MemoryLayout<pw_lb4_key>.size)
        case .backends: UInt32(MemoryLayout<UInt32>.size)
        case .reverseNAT: UInt32(MemoryLayout<UInt16>.size)
        case .affinity: UInt32(MemoryLayout<pw_lb4_affinity_key>.size)
        case .connectionTracking: UInt32(MemoryLayout<pw_ct4_key>.size)
        case .snat: UInt32(MemoryLayout<pw_snat4_key>.size)
        }
    }

    var valueSize: UInt32 {
        switch self {
        case .services: UInt32(MemoryLayout<pw_lb4_service>.size)
        case .backends: UInt32(MemoryLayout<pw_lb4_backend>.size)
        case .reverseNAT: UInt32(MemoryLayout<pw_lb4_reverse_nat>.size)
        case .affinity: UInt32(MemoryLayout<pw_lb4_affinity_val>.size)
        case .connectionTracking: UInt32(MemoryLayout<pw_ct4_val>.size)
        case .snat: UInt32(MemoryLayout<pw_snat4_val>.size)
        }
    }
}

/// Maximum entries of each map (the `--*-map-size` flags). Defaults come from portway_maps.h.
public struct MapSizes: Hashable, Sendable {
    public var services: UInt32
    public var backends: UInt32
    public var reverseNAT: UInt32
    public var affinity: UInt32
    public var connectionTracking: UInt32
    public var snat: UInt32

    public init(
        services: UInt32 = UInt32(PW_DEFAULT_SERVICE_MAP_SIZE), backends: UInt32 = UInt32(PW_DEFAULT_BACKEND_MAP_SIZE),
        reverseNAT: UInt32 = UInt32(PW_DEFAULT_REVNAT_MAP_SIZE), affinity: UInt32 = UInt32(PW_DEFAULT_AFFINITY_MAP_SIZE),
        connectionTracking: UInt32 = UInt32(PW_DEFAULT_CT_MAP_SIZE), snat: UInt32 = UInt32(PW_DEFAULT_SNAT_MAP_SIZE)
    ) {
        self.services = services
        self.backends = backends
        self.reverseNAT = reverseNAT
        self.affinity = affinity
        self.connectionTracking = connectionTracking
        self.snat = snat
    }

    /// The sizes from portway_maps.h.
    public static let defaults = MapSizes()

    public subscript(kind: MapKind) -> UInt32 {
        get {
            switch kind {
            case .services: services
            case .backends: backends
            case .reverseNAT: reverseNAT
            case .affinity: affinity
            case .connectionTracking: connectionTracking
            case .snat: snat
            }
        }
        set {
            switch kind {
            case .services: services = newValue
            case .backends: backends = newValue
            case .reverseNAT: reverseNAT = newValue
            case .affinity: affinity = newValue
            case .connectionTracking: connectionTracking = newValue
            case .snat: snat = newValue
            }
        }
    }
}
