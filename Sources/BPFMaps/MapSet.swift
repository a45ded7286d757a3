import CPortwayBPF
import Glibc

/// The six pinned maps of the datapath, opened from (or created in) one bpffs directory.
public final class MapSet: Sendable {
    /// The bpffs directory the maps are pinned in.
    public let directory: String
    public let services: PinnedMap
    public let backends: PinnedMap
    public let reverseNAT: PinnedMap
    public let affinity: PinnedMap
    public let connectionTracking: PinnedMap
    public let snat: PinnedMap

    private init(directory: String, maps: [MapKind: PinnedMap]) {
        self.directory = directory
        services = maps[.services]!
        backends = maps[.backends]!
        reverseNAT = maps[.reverseNAT]!
        affinity = maps[.affinity]!
        connectionTracking = maps[.connectionTracking]!
        snat = maps[.snat]!
    }

    public subscript(kind: MapKind) -> PinnedMap {
        switch kind {
        case .services: services
        case .backends: backends
        case .reverseNAT: reverseNAT
        case .affinity: affinity
        case .connectionTracking: connectionTracking
        case .snat: snat
        }
    }

    /// Opens the pinned maps under `bpffs`, creating and pinning the missing ones with `sizes`.
    /// An existing pin is reused only if its type, key size, value size, flags and max_entries
    /// match; otherwise `.mismatch` says what differs and how to migrate. Writes no entries.
    public static func openOrCreate(bpffs: String, sizes: MapSizes = .defaults) throws(BPFMapError) -> MapSet {
        try BPFFS.prepare(bpffs)
        let dir = BPFFS.normalized(bpffs)
        var maps: [MapKind: PinnedMap] = [:]
        for kind in MapKind.allCases {
            maps[kind] = try openOrCreate(kind: kind, directory: dir, maxEntries: sizes[kind])
        }
        return MapSet(directory: dir, maps: maps)
    }

    /// Opens existing pins for reading (`bpf lb list`): layouts must match, any size is accepted.
    public static func openExisting(bpffs: String) throws(BPFMapError) -> MapSet {
        try BPFFS.check(bpffs)
        let dir = BPFFS.normalized(bpffs)
        var maps: [MapKind: PinnedMap] = [:]
        for kind in MapKind.allCases {
            let path = dir + "/" + kind.pinName
            guard let map = try open(kind: kind, path: path, maxEntries: nil) else {
                throw .notPinned(map: kind.pinName, path: path)
            }
            maps[kind] = map
        }
        return MapSet(directory: dir, maps: maps)
    }

    static func openOrCreate(kind: MapKind, directory: String, maxEntries: UInt32) throws(BPFMapError) -> PinnedMap {
        let path = directory + "/" + kind.pinName
        guard maxEntries > 0 else {
            throw .syscall(map: kind.pinName, operation: "create (\(kind.sizeFlag) must be at least 1)", errno: EINVAL)
        }
        // A concurrent creator may pin between our open and our pin: retry the open then.
        for _ in 0..<3 {
            if let map = try open(kind: kind, path: path, maxEntries: maxEntries) { return map }
            let fd = portway_map_create(kind.mapType, kind.pinName, kind.keySize, kind.valueSize, maxEntries)
            guard fd >= 0 else {
                throw .syscall(map: kind.pinName, operation: "create (\(maxEntries) entries, \(kind.sizeFlag))", errno: -fd)
            }
            let ret = portway_obj_pin(fd, path)
            if ret == 0 { return PinnedMap(kind: kind, path: path, fd: fd, maxEntries: maxEntries) }
            close(fd)
            if ret != -EEXIST { throw .fileSystem(path: path, operation: "pin \(kind.pinName) at", errno: -ret) }
        }
        throw .fileSystem(path: path, operation: "pin \(kind.pinName) at", errno: EEXIST)
    }

    /// Opens the pin at `path`; nil when there is none. Checks the layout, and max_entries when given.
    static func open(kind: MapKind, path: String, maxEntries: UInt32?) throws(BPFMapError) -> PinnedMap? {
        let fd = portway_obj_get(path)
        if fd == -ENOENT { return nil }
        guard fd >= 0 else { throw .fileSystem(path: path, operation: "open pinned map", errno: -fd) }
        var type: UInt32 = 0, keySize: UInt32 = 0, valueSize: UInt32 = 0, entries: UInt32 = 0, flags: UInt32 = 0
        let ret = portway_map_info(fd, &type, &keySize, &valueSize, &entries, &flags)
        guard ret == 0 else {
            close(fd)
            throw .fileSystem(path: path, operation: "read map info of", errno: -ret)
        }
        var differences: [String] = []
        if type != kind.mapType { differences.append("type \(type) (pinned) vs \(kind.mapType) (\(kind.mapTypeName), wanted)") }
        if keySize != kind.keySize { differences.append("key size \(keySize) (pinned) vs \(kind.keySize) (wanted)") }
        if valueSize != kind.valueSize { differences.append("value size \(valueSize) (pinned) vs \(kind.valueSize) (wanted)") }
        if flags != 0 { differences.append("map flags 0x\(String(flags, radix: 16)) (pinned) vs 0x0 (wanted)") }
        let layoutDiffers = !differences.isEmpty
        if let maxEntries, entries != maxEntries {
            differences.append("max_entries \(entries) (pinned) vs \(maxEntries) (wanted)")
        }
        guard differences.isEmpty else {
            close(fd)
            throw .mismatch(map: kind.pinName, path: path, differences: differences, sizeFlag: layoutDiffers ? nil : kind.sizeFlag)
        }
        return PinnedMap(kind: kind, path: path, fd: fd, maxEntries: entries)
    }
}
