import CPortwayBPF
import Glibc

/// Portway's pinned maps (every `MapKind`), opened from (or created in) one bpffs directory.
///
/// `openOrCreate` is for the one writer of the directory: it takes the directory's writer lock
/// (`PinDirectoryLock`) and holds it while the map set lives, so a second agent on the same
/// `--bpffs` refuses to start. `openExisting` (read-only commands) takes no lock.
public final class MapSet: Sendable {
    /// The bpffs directory the maps are pinned in.
    public let directory: String
    private let maps: [MapKind: PinnedMap]
    /// The writer lock, held for the map set's lifetime (nil for read-only opens).
    private let lock: PinDirectoryLock?

    private init(directory: String, maps: [MapKind: PinnedMap], lock: PinDirectoryLock?) {
        self.directory = directory
        self.maps = maps
        self.lock = lock
    }

    /// The pinned map of `kind`.
    public subscript(kind: MapKind) -> PinnedMap { maps[kind]! }

    public var services: PinnedMap { self[.services] }
    public var backends: PinnedMap { self[.backends] }
    public var reverseNAT: PinnedMap { self[.reverseNAT] }
    public var affinity: PinnedMap { self[.affinity] }
    public var connectionTracking: PinnedMap { self[.connectionTracking] }
    public var snat: PinnedMap { self[.snat] }

    /// Whether this map set holds the directory's writer lock.
    public var holdsWriterLock: Bool { lock != nil }

    /// Opens the pinned maps under `bpffs`, creating and pinning the missing ones with `sizes`.
    /// An existing pin is reused only if its type, key size, value size, flags and max_entries
    /// match; otherwise `.mismatch` says what differs and how to migrate. Writes no entries.
    ///
    /// Takes the directory's writer lock first: `.locked` (naming the holder's PID) when another
    /// process writes these pins. Opens in the same process share the lock.
    public static func openOrCreate(bpffs: String, sizes: MapSizes = .defaults) throws(BPFMapError) -> MapSet {
        try BPFFS.prepare(bpffs)
        let dir = BPFFS.normalized(bpffs)
        let lock = try PinDirectoryLock.acquire(directory: dir)
        var maps: [MapKind: PinnedMap] = [:]
        for kind in MapKind.allCases {
            maps[kind] = try openOrCreate(kind: kind, directory: dir, maxEntries: sizes[kind])
        }
        return MapSet(directory: dir, maps: maps, lock: lock)
    }

    /// Opens existing pins for reading (`bpf lb list`): layouts must match, any size is accepted. Takes no lock.
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
        return MapSet(directory: dir, maps: maps, lock: nil)
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

    /// Opens the pin at `path`; nil when there is none. Checks that it is a map, its layout, and
    /// max_entries when given.
    static func open(kind: MapKind, path: String, maxEntries: UInt32?) throws(BPFMapError) -> PinnedMap? {
        var st = stat()
        if stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR { throw .notAPinnedMap(path: path, found: "a directory") }
        let objectKind = portway_pinned_object_kind(path)
        if objectKind == -ENOENT { return nil }
        switch objectKind {
        case 2: throw .notAPinnedMap(path: path, found: "a BPF program")
        case 3: throw .notAPinnedMap(path: path, found: "a BPF link")
        case 0: throw .notAPinnedMap(path: path, found: "a BPF object of another kind")
        default: break
        }
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
