import CPortwayBPF

/// The pinned maps Portway's datapath uses, with their layouts from portway_maps.h. Everything
/// per map (pin name, size flag, default size, type, layout) is here: `MapSet` and `MapSizes` are
/// driven by `allCases`, so a new map is one new case.
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

    /// max_entries when no flag sets it (PW_DEFAULT_*_MAP_SIZE in portway_maps.h; see OPERATING.md for the arithmetic).
    public var defaultSize: UInt32 {
        switch self {
        case .services: UInt32(PW_DEFAULT_SERVICE_MAP_SIZE)
        case .backends: UInt32(PW_DEFAULT_BACKEND_MAP_SIZE)
        case .reverseNAT: UInt32(PW_DEFAULT_REVNAT_MAP_SIZE)
        case .affinity: UInt32(PW_DEFAULT_AFFINITY_MAP_SIZE)
        case .connectionTracking: UInt32(PW_DEFAULT_CT_MAP_SIZE)
        case .snat: UInt32(PW_DEFAULT_SNAT_MAP_SIZE)
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

    /// Key size in bytes (portway_maps.h).
    public var keySize: UInt32 {
        switch self {
        case .services: UInt32(MemoryLayout<pw_lb4_key>.size)
        case .backends: UInt32(MemoryLayout<UInt32>.size)
        case .reverseNAT: UInt32(MemoryLayout<UInt16>.size)
        case .affinity: UInt32(MemoryLayout<pw_lb4_affinity_key>.size)
        case .connectionTracking: UInt32(MemoryLayout<pw_ct4_key>.size)
        case .snat: UInt32(MemoryLayout<pw_snat4_key>.size)
        }
    }

    /// Value size in bytes (portway_maps.h).
    public var valueSize: UInt32 {
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

/// Maximum entries of each map (the `--*-map-size` flags), by kind. A kind without a size set
/// gets its `MapKind.defaultSize`.
public struct MapSizes: Hashable, Sendable {
    private var sizes: [MapKind: UInt32]

    /// Sizes by kind; kinds left out get their default.
    public init(_ sizes: [MapKind: UInt32] = [:]) { self.sizes = sizes }

    /// All six sizes by name (the agent's flags).
    public init(
        services: UInt32 = MapKind.services.defaultSize, backends: UInt32 = MapKind.backends.defaultSize,
        reverseNAT: UInt32 = MapKind.reverseNAT.defaultSize, affinity: UInt32 = MapKind.affinity.defaultSize,
        connectionTracking: UInt32 = MapKind.connectionTracking.defaultSize, snat: UInt32 = MapKind.snat.defaultSize
    ) {
        self.init([.services: services, .backends: backends, .reverseNAT: reverseNAT, .affinity: affinity,
                   .connectionTracking: connectionTracking, .snat: snat])
    }

    /// The defaults (`MapKind.defaultSize`, from portway_maps.h).
    public static let defaults = MapSizes()

    public subscript(kind: MapKind) -> UInt32 {
        get { sizes[kind] ?? kind.defaultSize }
        set { sizes[kind] = newValue }
    }

    // Read-only names for the agent's flag defaults.
    public var services: UInt32 { self[.services] }
    public var backends: UInt32 { self[.backends] }
    public var reverseNAT: UInt32 { self[.reverseNAT] }
    public var affinity: UInt32 { self[.affinity] }
    public var connectionTracking: UInt32 { self[.connectionTracking] }
    public var snat: UInt32 { self[.snat] }

    public static func == (lhs: MapSizes, rhs: MapSizes) -> Bool { MapKind.allCases.allSatisfy { lhs[$0] == rhs[$0] } }
    public func hash(into hasher: inout Hasher) { for kind in MapKind.allCases { hasher.combine(self[kind]) } }
}
