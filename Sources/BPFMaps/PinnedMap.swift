import CPortwayBPF
import Glibc

/// One pinned BPF map, opened by file descriptor. Its operations are single bpf() syscalls:
/// short and blocking, so call them from a dedicated thread, not from an async context running a long loop.
public final class PinnedMap: MapOperations {
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

    public func lookup(key: UnsafeRawBufferPointer, value: UnsafeMutableRawBufferPointer) throws(BPFMapError) -> Bool {
        let ret = portway_map_lookup(fd, key.baseAddress, value.baseAddress)
        if ret == 0 { return true }
        if ret == -ENOENT { return false }
        throw .syscall(map: name, operation: "lookup", errno: -ret)
    }

    public func update(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) throws(BPFMapError) {
        let ret = portway_map_update(fd, key.baseAddress, value.baseAddress)
        if ret != 0 { throw mapError(kind, maxEntries: maxEntries, operation: "update", errno: -ret) }
    }

    public func delete(key: UnsafeRawBufferPointer) throws(BPFMapError) -> Bool {
        let ret = portway_map_delete(fd, key.baseAddress)
        if ret == 0 { return true }
        if ret == -ENOENT { return false }
        throw .syscall(map: name, operation: "delete", errno: -ret)
    }

    /// Walks the keys with get_next_key (entries changed meanwhile may be missed or seen twice; duplicates are dropped).
    public func allKeys() throws(BPFMapError) -> [[UInt8]] {
        let size = Int(kind.keySize)
        var result: [[UInt8]] = []
        var seen = Set<[UInt8]>()
        var next = [UInt8](repeating: 0, count: size)
        var ret = next.withUnsafeMutableBytes { portway_map_next_key(fd, nil, $0.baseAddress) }
        while ret == 0 {
            if seen.insert(next).inserted { result.append(next) }
            let current = next
            ret = current.withUnsafeBytes { cp in next.withUnsafeMutableBytes { np in portway_map_next_key(fd, cp.baseAddress, np.baseAddress) } }
        }
        if ret != -ENOENT { throw .syscall(map: name, operation: "get_next_key", errno: -ret) }
        return result
    }

    /// One BPF_MAP_UPDATE_BATCH syscall (the kernel stops at the first failing pair).
    public func updateBatch(keys: UnsafeRawBufferPointer, values: UnsafeRawBufferPointer, count: Int) -> MapBatchResult {
        guard count > 0 else { return MapBatchResult(written: 0, error: nil) }
        var n = UInt32(count)
        let ret = portway_map_update_batch(fd, keys.baseAddress, values.baseAddress, &n)
        if ret == 0 { return MapBatchResult(written: count, error: nil) }
        if ret == -EINVAL || ret == -EOPNOTSUPP || ret == -ENOTSUPP {
            // A kernel without batch support for this map type: fall back to one call per pair.
            return updateOneByOne(keys: keys, values: values, count: count)
        }
        return MapBatchResult(written: Int(min(n, UInt32(count))), error: mapError(kind, maxEntries: maxEntries, operation: "batch update", errno: -ret))
    }
}

/// ENOTSUPP (524), the kernel-internal "operation not supported" some bpf() commands return.
let ENOTSUPP: Int32 = 524

/// A zero-filled value of a plain C struct (padding included), so keys compare bytewise in the kernel.
/// (On the stack: the writer makes one per entry.)
func zeroed<T>(_: T.Type) -> T {
    withUnsafeTemporaryAllocation(byteCount: MemoryLayout<T>.size, alignment: MemoryLayout<T>.alignment) { raw in
        raw.initializeMemory(as: UInt8.self, repeating: 0)
        return raw.load(as: T.self)
    }
}

func bytes<T>(of value: T) -> [UInt8] {
    withUnsafeBytes(of: value) { Array($0) }
}
