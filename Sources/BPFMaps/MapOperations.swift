import Glibc

/// The operations the writer needs from one BPF hash map, on raw key and value bytes (the C
/// layouts of portway_maps.h). Three implementations: `PinnedMap` (bpf() syscalls on a pin),
/// `InMemoryMap` (a dictionary, with an optional operation log) and `FaultInjectingMap` (fails
/// chosen operations of another map). The typed helpers in the extension below sit on top.
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
    /// Inserts or replaces `count` pairs from packed key and value arrays, in order, stopping at the
    /// first error. Returns how many were written and that error, if any.
    func updateBatch(keys: UnsafeRawBufferPointer, values: UnsafeRawBufferPointer, count: Int) -> MapBatchResult
}

/// The outcome of `MapOperations.updateBatch`: the first `written` pairs are in the map.
public struct MapBatchResult: Sendable {
    public var written: Int
    public var error: BPFMapError?

    public init(written: Int, error: BPFMapError?) {
        self.written = written
        self.error = error
    }
}

extension MapOperations {
    /// The pin name (PW_MAP_*), used in messages.
    public var name: String { kind.pinName }

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

    /// All entries (key, value), skipping those deleted during the walk.
    public func entries<Key, Value>(_: Key.Type = Key.self, _: Value.Type = Value.self) throws(BPFMapError) -> [(Key, Value)] {
        var result: [(Key, Value)] = []
        for key in try keys(Key.self) {
            if let value = try lookup(key, as: Value.self) { result.append((key, value)) }
        }
        return result
    }

    /// Writes typed pairs with one `updateBatch`.
    public func updateBatch<Key, Value>(_ keys: [Key], _ values: [Value]) -> MapBatchResult {
        precondition(keys.count == values.count)
        precondition(MemoryLayout<Key>.stride == Int(kind.keySize) && MemoryLayout<Value>.stride == Int(kind.valueSize))
        return keys.withUnsafeBytes { kp in values.withUnsafeBytes { vp in updateBatch(keys: kp, values: vp, count: keys.count) } }
    }

    /// The loop every implementation without a native batch uses: one `update` per pair.
    func updateOneByOne(keys: UnsafeRawBufferPointer, values: UnsafeRawBufferPointer, count: Int) -> MapBatchResult {
        let ks = Int(kind.keySize), vs = Int(kind.valueSize)
        for i in 0..<count {
            do {
                try update(
                    key: UnsafeRawBufferPointer(rebasing: keys[(i * ks)..<((i + 1) * ks)]),
                    value: UnsafeRawBufferPointer(rebasing: values[(i * vs)..<((i + 1) * vs)]))
            } catch {
                return MapBatchResult(written: i, error: error)
            }
        }
        return MapBatchResult(written: count, error: nil)
    }
}

/// The error a map operation gets for a failed call with `errno`: E2BIG/ENOSPC mean the map is full.
func mapError(_ kind: MapKind, maxEntries: UInt32, operation: String, errno code: Int32) -> BPFMapError {
    if code == E2BIG || code == ENOSPC { return .mapFull(map: kind.pinName, maxEntries: maxEntries, sizeFlag: kind.sizeFlag) }
    return .syscall(map: kind.pinName, operation: operation, errno: code)
}
