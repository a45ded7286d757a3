import CPortwayBPF
import Glibc

/// One pinned BPF map, opened by file descriptor. Its operations are single bpf() syscalls:
/// short and blocking, so call them from a dedicated thread, not from an async context running a long loop.
public final class PinnedMap: Sendable {
    public let kind: MapKind
    /// The pin path (`<bpffs>/<name>`).
    public let path: String
    /// max_entries of the pinned map.
    public let maxEntries: UInt32
    let fd: Int32

    init(kind: MapKind, path: String, fd: Int32, maxEntries: UInt32) {
        self.kind = kind
        self.path = path
        self.fd = fd
        self.maxEntries = maxEntries
    }

    deinit { close(fd) }

    public var name: String { kind.pinName }

    /// Looks `key` up; nil when absent.
    public func lookup<Key, Value>(_ key: Key, as: Value.Type = Value.self) throws(BPFMapError) -> Value? {
        precondition(MemoryLayout<Key>.size == Int(kind.keySize) && MemoryLayout<Value>.size == Int(kind.valueSize))
        var k = key
        var value = zeroed(Value.self)
        let ret = withUnsafeBytes(of: &k) { kp in
            withUnsafeMutableBytes(of: &value) { vp in portway_map_lookup(fd, kp.baseAddress, vp.baseAddress) }
        }
        if ret == 0 { return value }
        if ret == -ENOENT { return nil }
        throw .syscall(map: name, operation: "lookup", errno: -ret)
    }

    /// Inserts or replaces `key`. A full map throws `.mapFull` naming the size flag.
    public func update<Key, Value>(_ key: Key, _ value: Value) throws(BPFMapError) {
        precondition(MemoryLayout<Key>.size == Int(kind.keySize) && MemoryLayout<Value>.size == Int(kind.valueSize))
        var k = key
        var v = value
        let ret = withUnsafeBytes(of: &k) { kp in
            withUnsafeBytes(of: &v) { vp in portway_map_update(fd, kp.baseAddress, vp.baseAddress) }
        }
        if ret == 0 { return }
        if ret == -E2BIG || ret == -ENOSPC {
            throw .mapFull(map: name, maxEntries: maxEntries, sizeFlag: kind.sizeFlag)
        }
        throw .syscall(map: name, operation: "update", errno: -ret)
    }

    /// Deletes `key`; false when it was absent.
    @discardableResult
    public func delete<Key>(_ key: Key) throws(BPFMapError) -> Bool {
        precondition(MemoryLayout<Key>.size == Int(kind.keySize))
        var k = key
        let ret = withUnsafeBytes(of: &k) { portway_map_delete(fd, $0.baseAddress) }
        if ret == 0 { return true }
        if ret == -ENOENT { return false }
        throw .syscall(map: name, operation: "delete", errno: -ret)
    }

    /// All keys, walked with get_next_key (entries changed meanwhile may be missed or seen twice).
    public func keys<Key>(_: Key.Type = Key.self) throws(BPFMapError) -> [Key] {
        precondition(MemoryLayout<Key>.size == Int(kind.keySize))
        var result: [Key] = []
        var seen = Set<[UInt8]>()
        var next = zeroed(Key.self)
        var ret = withUnsafeMutableBytes(of: &next) { portway_map_next_key(fd, nil, $0.baseAddress) }
        while ret == 0 {
            if seen.insert(bytes(of: next)).inserted { result.append(next) }
            var current = next
            ret = withUnsafeBytes(of: &current) { cp in
                withUnsafeMutableBytes(of: &next) { np in portway_map_next_key(fd, cp.baseAddress, np.baseAddress) }
            }
        }
        if ret != -ENOENT { throw .syscall(map: name, operation: "get_next_key", errno: -ret) }
        return result
    }

    /// All entries (key, value), skipping those deleted during the walk.
    public func entries<Key, Value>(
        _: Key.Type = Key.self, _: Value.Type = Value.self
    ) throws(BPFMapError) -> [(Key, Value)] {
        var result: [(Key, Value)] = []
        for key in try keys(Key.self) {
            if let value = try lookup(key, as: Value.self) { result.append((key, value)) }
        }
        return result
    }
}

/// A zero-filled value of a plain C struct (padding included), so keys compare bytewise in the kernel.
func zeroed<T>(_: T.Type) -> T {
    let raw = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<T>.size, alignment: MemoryLayout<T>.alignment)
    defer { raw.deallocate() }
    raw.initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<T>.size)
    return raw.load(as: T.self)
}

func bytes<T>(of value: T) -> [UInt8] {
    withUnsafeBytes(of: value) { Array($0) }
}
