import CPortwayBPF
import Glibc
import Synchronization

/// One pinned BPF map, opened by file descriptor. Its operations are single bpf() syscalls:
/// short and blocking, so call them from a dedicated thread, not from an async context running a long loop.
public final class PinnedMap: MapOperations {
    public let kind: MapKind
    /// The pin path (`<bpffs>/<name>`).
    public let path: String
    /// max_entries of the pinned map.
    public let maxEntries: UInt32
    let fd: Int32
    /// Set once the kernel refused a batch command on this map: later batches go element by element at once.
    private let batchRefused = Atomic<Bool>(false)

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

    /// One BPF_MAP_UPDATE_BATCH syscall (the kernel stops at the first failing pair and says how
    /// many it wrote); nil when the kernel refuses the command for this map.
    public func nativeUpdateBatch(keys: UnsafeRawBufferPointer, values: UnsafeRawBufferPointer, count: Int) -> MapBatchResult? {
        guard count > 0 else { return MapBatchResult(written: 0, error: nil, calls: 0) }
        guard !batchRefused.load(ordering: .relaxed) else { return nil }
        var n = UInt32(count)
        let ret = portway_map_update_batch(fd, keys.baseAddress, values.baseAddress, &n)
        if ret == 0 { return MapBatchResult(written: count, error: nil) }
        if refusesBatch(errno: -ret) {
            // Refused before any element (the kernel leaves the count as given then): element by element.
            batchRefused.store(true, ordering: .relaxed)
            return nil
        }
        return MapBatchResult(written: Int(min(n, UInt32(count))), error: mapError(kind, maxEntries: maxEntries, operation: "batch update", errno: -ret))
    }

    /// One BPF_MAP_DELETE_BATCH syscall (stops at the first failing key, an absent one included:
    /// ENOENT); nil when the kernel refuses the command for this map.
    public func nativeDeleteBatch(keys: UnsafeRawBufferPointer, count: Int) -> MapBatchResult? {
        guard count > 0 else { return MapBatchResult(written: 0, error: nil, calls: 0) }
        guard !batchRefused.load(ordering: .relaxed) else { return nil }
        var n = UInt32(count)
        let ret = portway_map_delete_batch(fd, keys.baseAddress, &n)
        if ret == 0 { return MapBatchResult(written: count, error: nil) }
        if refusesBatch(errno: -ret) {
            batchRefused.store(true, ordering: .relaxed)
            return nil
        }
        return MapBatchResult(written: Int(min(n, UInt32(count))), error: .syscall(map: name, operation: "batch delete", errno: -ret))
    }

    /// BPF_MAP_LOOKUP_BATCH calls of up to 4,096 entries each (more when one hash bucket holds
    /// more); nil when the kernel refuses the command for this map. Entries changed during the
    /// read may be missed, as with a get_next_key walk.
    public func nativeEntries() throws(BPFMapError) -> PackedEntries? {
        guard !batchRefused.load(ordering: .relaxed) else { return nil }
        let ks = Int(kind.keySize), vs = Int(kind.valueSize)
        var chunk = 4096
        var keys: [UInt8] = [], values: [UInt8] = [], count = 0, calls = 0
        // The position tokens: a bucket index for hash maps, a key for others.
        var token = [UInt64](repeating: 0, count: 2 * max(1, (ks + 7) / 8))
        let half = token.count / 2
        var first = true
        while true {
            keys.append(contentsOf: repeatElement(0, count: chunk * ks))
            values.append(contentsOf: repeatElement(0, count: chunk * vs))
            var n = UInt32(chunk)
            let offset = count
            let ret = keys.withUnsafeMutableBytes { k in
                values.withUnsafeMutableBytes { v in
                    token.withUnsafeMutableBufferPointer { t in
                        portway_map_lookup_batch(
                            fd, first ? nil : UnsafeMutableRawPointer(t.baseAddress!), UnsafeMutableRawPointer(t.baseAddress! + half),
                            k.baseAddress! + offset * ks, v.baseAddress! + offset * vs, &n)
                    }
                }
            }
            calls += 1
            let got = (ret == 0 || ret == -ENOENT) ? Int(min(n, UInt32(chunk))) : 0
            count += got
            keys.removeLast((chunk - got) * ks)
            values.removeLast((chunk - got) * vs)
            if ret == -ENOENT { return PackedEntries(keys: keys, values: values, count: count, calls: calls) }
            if ret == 0 {
                // Continue from where this call stopped.
                for i in 0..<half { token[i] = token[half + i] }
                first = false
                continue
            }
            if ret == -ENOSPC && chunk < Int(maxEntries) {
                chunk *= 2  // one hash bucket holds more entries than asked for
                continue
            }
            if first && refusesBatch(errno: -ret) {
                batchRefused.store(true, ordering: .relaxed)
                return nil
            }
            throw .syscall(map: name, operation: "batch lookup", errno: -ret)
        }
    }
}

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
