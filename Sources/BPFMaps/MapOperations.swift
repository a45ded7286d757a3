import Glibc

/// The operations the writer needs from one BPF hash map, on raw key and value bytes (the C
/// layouts of portway_maps.h). Three implementations: `PinnedMap` (bpf() syscalls on a pin),
/// `InMemoryMap` (a dictionary, with an optional operation log) and `FaultInjectingMap` (fails
/// chosen operations of another map). The typed helpers in the extension below sit on top.
///
/// Batches: each implementation makes one native batch call (`BPF_MAP_UPDATE_BATCH`,
/// `BPF_MAP_DELETE_BATCH`, `BPF_MAP_LOOKUP_BATCH` for a pin) or says the map refuses them (nil:
/// an older kernel, a map type without batch operations); `updateBatch`, `deleteBatch` and
/// `allEntries` below then fall back to one call per element, so callers never see the difference.
///
/// Errors follow `PinnedMap`: a full map throws `.mapFull`, other failures `.syscall` with the errno.
public protocol MapOperations: AnyObject, Sendable {
    /// Which of Portway's maps this is (layout, pin name, size flag).
    var kind: MapKind { get }
    /// The most entries the map holds.
    var maxEntries: UInt32 { get }
    /// Copies the value of `key` into `value`; false when the key is absent.
    func lookup(key: UnsafeRawBufferPointer, value: UnsafeMutableRawBufferPointer) throws(BPFMapError) -> Bool
    /// Inserts or replaces `key`.
    func update(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) throws(BPFMapError)
    /// Deletes `key`; false when it was absent.
    func delete(key: UnsafeRawBufferPointer) throws(BPFMapError) -> Bool
    /// Every key, as bytes (entries changed during the walk may be missed).
    func allKeys() throws(BPFMapError) -> [[UInt8]]
    /// One native batch update of `count` pairs from packed key and value arrays, in order,
    /// stopping at the first error (how many were written, and that error); nil when the map
    /// refuses batch updates, before writing anything.
    func nativeUpdateBatch(keys: UnsafeRawBufferPointer, values: UnsafeRawBufferPointer, count: Int) -> MapBatchResult?
    /// One native batch delete of `count` packed keys, in order, stopping at the first failure —
    /// an absent key included (`.syscall` with ENOENT), as the kernel does; nil when the map
    /// refuses batch deletes, before deleting anything.
    func nativeDeleteBatch(keys: UnsafeRawBufferPointer, count: Int) -> MapBatchResult?
    /// Every entry, read with native batch lookups; nil when the map refuses them.
    func nativeEntries() throws(BPFMapError) -> PackedEntries?
}

/// The outcome of a batch: the first `written` elements were done (written, or deleted or found
/// absent), then `error` stopped it, if any. `calls` is how many map calls (syscalls for a pin) it took.
public struct MapBatchResult: Sendable {
    public var written: Int
    public var error: BPFMapError?
    public var calls: Int

    public init(written: Int, error: BPFMapError?, calls: Int = 1) {
        self.written = written
        self.error = error
        self.calls = calls
    }
}

/// A map's entries as packed key and value arrays (the C layouts, `count` of each).
public struct PackedEntries: Sendable {
    public var keys: [UInt8]
    public var values: [UInt8]
    public var count: Int
    /// How many map calls reading them took.
    public var calls: Int

    public init(keys: [UInt8] = [], values: [UInt8] = [], count: Int = 0, calls: Int = 0) {
        self.keys = keys
        self.values = values
        self.count = count
        self.calls = calls
    }
}

/// Whether a failed batch call means the kernel or map type has no such batch operation (then the
/// caller goes element by element) rather than an element failing: EINVAL (a kernel without the
/// command), ENOTSUPP/EOPNOTSUPP (a map type without it).
func refusesBatch(errno code: Int32) -> Bool {
    code == EINVAL || code == EOPNOTSUPP || code == ENOTSUPP
}

/// ENOTSUPP (524), the kernel-internal "operation not supported" some bpf() commands return.
let ENOTSUPP: Int32 = 524

extension MapOperations {
    /// The pin name (PW_MAP_*), used in messages.
    public var name: String { kind.pinName }

    /// Inserts or replaces `count` pairs from packed key and value arrays, in order, stopping at the
    /// first error: one native batch, or one update per pair when the map refuses batches.
    public func updateBatch(keys: UnsafeRawBufferPointer, values: UnsafeRawBufferPointer, count: Int) -> MapBatchResult {
        guard count > 0 else { return MapBatchResult(written: 0, error: nil, calls: 0) }
        if let result = nativeUpdateBatch(keys: keys, values: values, count: count) { return result }
        return updateOneByOne(keys: keys, values: values, count: count)
    }

    /// Deletes `count` packed keys, in order; an absent key counts as deleted. Stops at the first
    /// other error: `written` keys are gone. Native batches (resumed after an absent key), or one
    /// delete per key when the map refuses batches.
    public func deleteBatch(keys: UnsafeRawBufferPointer, count: Int) -> MapBatchResult {
        let ks = Int(kind.keySize)
        var done = 0, calls = 0
        while done < count {
            let rest = UnsafeRawBufferPointer(rebasing: keys[(done * ks)..<(count * ks)])
            guard let r = nativeDeleteBatch(keys: rest, count: count - done) else {
                var result = deleteOneByOne(keys: rest, count: count - done)
                result.written += done
                result.calls += calls
                return result
            }
            calls += r.calls
            done += r.written
            guard let error = r.error else { break }
            if case .syscall(_, _, ENOENT) = error, done < count {
                done += 1  // absent: as good as deleted
                continue
            }
            return MapBatchResult(written: done, error: error, calls: calls)
        }
        return MapBatchResult(written: count, error: nil, calls: calls)
    }

    /// Every entry: native batch lookups, or a get_next_key walk and one lookup per key when the
    /// map refuses them (entries changed during the read may be missed).
    public func allEntries() throws(BPFMapError) -> PackedEntries {
        if let entries = try nativeEntries() { return entries }
        let keyList = try allKeys()
        let ks = Int(kind.keySize), vs = Int(kind.valueSize)
        var out = PackedEntries(calls: keyList.count + 1)
        out.keys.reserveCapacity(keyList.count * ks)
        out.values.reserveCapacity(keyList.count * vs)
        var value = [UInt8](repeating: 0, count: vs)
        for key in keyList {
            var failure: BPFMapError?
            let found = key.withUnsafeBytes { k in
                value.withUnsafeMutableBytes { v in
                    do throws(BPFMapError) { return try lookup(key: k, value: v) } catch {
                        failure = error
                        return false
                    }
                }
            }
            if let failure { throw failure }
            out.calls += 1
            guard found else { continue }
            out.keys += key
            out.values += value
            out.count += 1
        }
        return out
    }

    /// Looks `key` up; nil when absent.
    public func lookup<Key, Value>(_ key: Key, as: Value.Type = Value.self) throws(BPFMapError) -> Value? {
        precondition(MemoryLayout<Key>.size == Int(kind.keySize) && MemoryLayout<Value>.size == Int(kind.valueSize))
        var value = zeroed(Value.self)
        let found = try withUnsafeBytes(of: key) { (kp) throws(BPFMapError) -> Bool in
            try withUnsafeMutableBytes(of: &value) { (vp) throws(BPFMapError) -> Bool in try lookup(key: kp, value: vp) }
        }
        return found ? value : nil
    }

    /// Inserts or replaces `key`. A full map throws `.mapFull` naming the size flag.
    public func update<Key, Value>(_ key: Key, _ value: Value) throws(BPFMapError) {
        precondition(MemoryLayout<Key>.size == Int(kind.keySize) && MemoryLayout<Value>.size == Int(kind.valueSize))
        try withUnsafeBytes(of: key) { (kp) throws(BPFMapError) in
            try withUnsafeBytes(of: value) { (vp) throws(BPFMapError) in try update(key: kp, value: vp) }
        }
    }

    /// Deletes `key`; false when it was absent.
    @discardableResult
    public func delete<Key>(_ key: Key) throws(BPFMapError) -> Bool {
        precondition(MemoryLayout<Key>.size == Int(kind.keySize))
        return try withUnsafeBytes(of: key) { (kp) throws(BPFMapError) -> Bool in try delete(key: kp) }
    }

    /// All keys, typed.
    public func keys<Key>(_: Key.Type = Key.self) throws(BPFMapError) -> [Key] {
        precondition(MemoryLayout<Key>.size == Int(kind.keySize))
        return try allKeys().map { bytes in bytes.withUnsafeBytes { $0.loadUnaligned(as: Key.self) } }
    }

    /// All entries (key, value), read with `allEntries`.
    public func entries<Key, Value>(_: Key.Type = Key.self, _: Value.Type = Value.self) throws(BPFMapError) -> [(Key, Value)] {
        precondition(MemoryLayout<Key>.size == Int(kind.keySize) && MemoryLayout<Value>.size == Int(kind.valueSize))
        let packed = try allEntries()
        let ks = Int(kind.keySize), vs = Int(kind.valueSize)
        var result: [(Key, Value)] = []
        result.reserveCapacity(packed.count)
        packed.keys.withUnsafeBytes { k in
            packed.values.withUnsafeBytes { v in
                for i in 0..<packed.count {
                    result.append((k.loadUnaligned(fromByteOffset: i * ks, as: Key.self), v.loadUnaligned(fromByteOffset: i * vs, as: Value.self)))
                }
            }
        }
        return result
    }

    /// Writes typed pairs with one `updateBatch`.
    public func updateBatch<Key, Value>(_ keys: [Key], _ values: [Value]) -> MapBatchResult {
        precondition(keys.count == values.count)
        precondition(MemoryLayout<Key>.stride == Int(kind.keySize) && MemoryLayout<Value>.stride == Int(kind.valueSize))
        return keys.withUnsafeBytes { kp in values.withUnsafeBytes { vp in updateBatch(keys: kp, values: vp, count: keys.count) } }
    }

    /// Deletes typed keys with one `deleteBatch`.
    public func deleteBatch<Key>(_ keys: [Key]) -> MapBatchResult {
        precondition(MemoryLayout<Key>.stride == Int(kind.keySize))
        return keys.withUnsafeBytes { deleteBatch(keys: $0, count: keys.count) }
    }

    /// The fallback of `updateBatch`: one `update` per pair.
    func updateOneByOne(keys: UnsafeRawBufferPointer, values: UnsafeRawBufferPointer, count: Int) -> MapBatchResult {
        let ks = Int(kind.keySize), vs = Int(kind.valueSize)
        for i in 0..<count {
            do {
                try update(
                    key: UnsafeRawBufferPointer(rebasing: keys[(i * ks)..<((i + 1) * ks)]),
                    value: UnsafeRawBufferPointer(rebasing: values[(i * vs)..<((i + 1) * vs)]))
            } catch {
                return MapBatchResult(written: i, error: error, calls: i + 1)
            }
        }
        return MapBatchResult(written: count, error: nil, calls: count)
    }

    /// The fallback of `deleteBatch`: one `delete` per key (absent keys count as deleted).
    func deleteOneByOne(keys: UnsafeRawBufferPointer, count: Int) -> MapBatchResult {
        let ks = Int(kind.keySize)
        for i in 0..<count {
            do {
                _ = try delete(key: UnsafeRawBufferPointer(rebasing: keys[(i * ks)..<((i + 1) * ks)]))
            } catch {
                return MapBatchResult(written: i, error: error, calls: i + 1)
            }
        }
        return MapBatchResult(written: count, error: nil, calls: count)
    }
}

/// The error a map operation gets for a failed call with `errno`: E2BIG/ENOSPC mean the map is full.
func mapError(_ kind: MapKind, maxEntries: UInt32, operation: String, errno code: Int32) -> BPFMapError {
    if code == E2BIG || code == ENOSPC { return .mapFull(map: kind.pinName, maxEntries: maxEntries, sizeFlag: kind.sizeFlag) }
    return .syscall(map: kind.pinName, operation: operation, errno: code)
}
