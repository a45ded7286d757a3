import Glibc
import Synchronization

/// One map operation as an `InMemoryMap` saw it, for tests that assert the exact write order.
public struct MapOperationRecord: Hashable, Sendable, CustomStringConvertible {
    public enum Operation: String, Hashable, Sendable {
        case update, delete
    }

    public var map: MapKind
    public var operation: Operation
    public var key: [UInt8]
    /// The value written (updates only).
    public var value: [UInt8]?
    /// Whether it came in an `updateBatch`.
    public var batched: Bool

    /// "update pw_lb4_services 10.0.0.1:80/TCP #1 -> backend 3": the entry decoded by its map's layout.
    public var description: String {
        "\(operation.rawValue) \(map.pinName) \(describeEntry(map, key: key, value: value))"
    }
}

/// An ordered log of the operations made on a group of in-memory maps (shared by the maps of one set).
public final class MapOperationLog: Sendable {
    private let records = Mutex<[MapOperationRecord]>([])

    public init() {}

    public var all: [MapOperationRecord] { records.withLock { $0 } }
    /// The records' descriptions, in order.
    public var lines: [String] { all.map(\.description) }

    public func clear() { records.withLock { $0.removeAll() } }

    func append(_ record: MapOperationRecord) { records.withLock { $0.append(record) } }
}

/// A BPF hash map kept in memory: the same semantics the writer relies on (update inserts or
/// replaces, a new key beyond `maxEntries` fails with `.mapFull`, delete of an absent key is false),
/// optionally logging every update and delete. For tests and benchmarks without root.
public final class InMemoryMap: MapOperations {
    public let kind: MapKind
    public let maxEntries: UInt32
    let log: MapOperationLog?
    private let storage = Mutex<[[UInt8]: [UInt8]]>([:])

    public init(kind: MapKind, maxEntries: UInt32, log: MapOperationLog? = nil) {
        self.kind = kind
        self.maxEntries = maxEntries
        self.log = log
    }

    /// How many entries it holds.
    public var count: Int { storage.withLock { $0.count } }

    /// A copy of the contents, by key bytes.
    public var contents: [[UInt8]: [UInt8]] { storage.withLock { $0 } }

    public func lookup(key: UnsafeRawBufferPointer, value: UnsafeMutableRawBufferPointer) throws(BPFMapError) -> Bool {
        let k = Array(key)
        guard let v = storage.withLock({ $0[k] }) else { return false }
        v.withUnsafeBytes { value.copyMemory(from: $0) }
        return true
    }

    public func update(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) throws(BPFMapError) {
        try update(key: Array(key), value: Array(value), batched: false)
    }

    func update(key: [UInt8], value: [UInt8], batched: Bool) throws(BPFMapError) {
        precondition(key.count == Int(kind.keySize) && value.count == Int(kind.valueSize))
        let full = storage.withLock { map -> Bool in
            if map[key] == nil && map.count >= Int(maxEntries) { return true }
            map[key] = value
            return false
        }
        if full { throw mapError(kind, maxEntries: maxEntries, operation: "update", errno: E2BIG) }
        log?.append(MapOperationRecord(map: kind, operation: .update, key: key, value: value, batched: batched))
    }

    public func delete(key: UnsafeRawBufferPointer) throws(BPFMapError) -> Bool {
        let k = Array(key)
        let existed = storage.withLock { $0.removeValue(forKey: k) != nil }
        if existed { log?.append(MapOperationRecord(map: kind, operation: .delete, key: k, value: nil, batched: false)) }
        return existed
    }

    public func allKeys() throws(BPFMapError) -> [[UInt8]] {
        storage.withLock { Array($0.keys) }
    }

    /// Pair by pair, logged as batched, stopping at the first error (as the kernel's batch does).
    public func nativeUpdateBatch(keys: UnsafeRawBufferPointer, values: UnsafeRawBufferPointer, count: Int) -> MapBatchResult? {
        let ks = Int(kind.keySize), vs = Int(kind.valueSize)
        for i in 0..<count {
            do {
                try update(key: Array(keys[(i * ks)..<((i + 1) * ks)]), value: Array(values[(i * vs)..<((i + 1) * vs)]), batched: true)
            } catch {
                return MapBatchResult(written: i, error: error)
            }
        }
        return MapBatchResult(written: count, error: nil)
    }

    /// Key by key, logged as batched, stopping at the first absent key with ENOENT (as the kernel's batch does).
    public func nativeDeleteBatch(keys: UnsafeRawBufferPointer, count: Int) -> MapBatchResult? {
        let ks = Int(kind.keySize)
        for i in 0..<count {
            let k = Array(keys[(i * ks)..<((i + 1) * ks)])
            guard storage.withLock({ $0.removeValue(forKey: k) != nil }) else {
                return MapBatchResult(written: i, error: .syscall(map: name, operation: "batch delete", errno: ENOENT))
            }
            log?.append(MapOperationRecord(map: kind, operation: .delete, key: k, value: nil, batched: true))
        }
        return MapBatchResult(written: count, error: nil)
    }

    public func nativeEntries() throws(BPFMapError) -> PackedEntries? {
        storage.withLock { map in
            var out = PackedEntries(count: map.count, calls: 1)
            out.keys.reserveCapacity(map.count * Int(kind.keySize))
            out.values.reserveCapacity(map.count * Int(kind.valueSize))
            for (k, v) in map {
                out.keys += k
                out.values += v
            }
            return out
        }
    }
}

/// Which operations a `FaultPlan` fails, and how.
public struct FaultPlan: Sendable {
    /// What a failing operation reports.
    public enum Fault: Sendable, Hashable {
        /// EBUSY (a transient kernel error).
        case busy
        /// The map is full (E2BIG/ENOSPC).
        case mapFull
        /// Any errno.
        case errno(Int32)
    }

    /// The 1-based number of the first operation to fail, counting the updates and deletes of the
    /// maps sharing the plan (each pair of a batch counts as one), restricted to `map` when set.
    public var failAt: Int
    public var fault: Fault
    /// Only operations on this map count.
    public var map: MapKind?
    /// Only these operations count.
    public var operations: Set<MapOperationRecord.Operation>
    /// Fail this many operations from `failAt` on (Int.max: every one).
    public var times: Int
    /// Refuse every batch command, as a kernel without them (EINVAL) or a map type without them
    /// (ENOTSUPP) does: batches then go element by element, each element counted as above.
    public var refusingBatches: Bool

    public init(
        failAt: Int, fault: Fault, map: MapKind? = nil, operations: Set<MapOperationRecord.Operation> = [.update, .delete],
        times: Int = 1, refusingBatches: Bool = false
    ) {
        self.failAt = failAt
        self.fault = fault
        self.map = map
        self.operations = operations
        self.times = times
        self.refusingBatches = refusingBatches
    }

    /// No fault, only every batch command refused.
    public static var refusingBatches: FaultPlan { FaultPlan(failAt: Int.max, fault: .busy, times: 0, refusingBatches: true) }
}

/// The counter of a fault plan shared by the maps of one set.
public final class FaultInjector: Sendable {
    private let state: Mutex<(plan: FaultPlan?, seen: Int, failed: Int)>

    public init(_ plan: FaultPlan? = nil) { state = Mutex((plan, 0, 0)) }

    /// Replaces the plan and resets the counters.
    public func arm(_ plan: FaultPlan?) { state.withLock { $0 = (plan, 0, 0) } }

    /// How many operations failed so far.
    public var failures: Int { state.withLock { $0.failed } }

    /// Whether batch commands are refused.
    var refusesBatches: Bool { state.withLock { $0.plan?.refusingBatches ?? false } }

    /// The error for this operation, or nil to let it through.
    func check(_ map: MapKind, _ operation: MapOperationRecord.Operation) -> BPFMapError? {
        state.withLock { s -> BPFMapError? in
            guard let plan = s.plan, plan.operations.contains(operation), plan.map == nil || plan.map == map else { return nil }
            s.seen += 1
            guard s.seen >= plan.failAt, s.seen - plan.failAt < plan.times else { return nil }
            s.failed += 1
            let code: Int32
            switch plan.fault {
            case .busy: code = EBUSY
            case .mapFull: code = ENOSPC
            case .errno(let e): code = e
            }
            return operation == .update
                ? mapError(map, maxEntries: UInt32.max, operation: "update", errno: code)
                : .syscall(map: map.pinName, operation: "delete", errno: code)
        }
    }
}

/// Wraps another map and fails the operations its `FaultInjector` picks, before they reach it.
public final class FaultInjectingMap: MapOperations {
    public let base: any MapOperations
    public let injector: FaultInjector

    public init(_ base: any MapOperations, injector: FaultInjector) {
        self.base = base
        self.injector = injector
    }

    public var kind: MapKind { base.kind }
    public var maxEntries: UInt32 { base.maxEntries }

    public func lookup(key: UnsafeRawBufferPointer, value: UnsafeMutableRawBufferPointer) throws(BPFMapError) -> Bool {
        try base.lookup(key: key, value: value)
    }

    public func update(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) throws(BPFMapError) {
        if let error = injector.check(kind, .update) { throw fixed(error) }
        try base.update(key: key, value: value)
    }

    public func delete(key: UnsafeRawBufferPointer) throws(BPFMapError) -> Bool {
        if let error = injector.check(kind, .delete) { throw error }
        return try base.delete(key: key)
    }

    public func allKeys() throws(BPFMapError) -> [[UInt8]] { try base.allKeys() }

    /// The base map's batch up to the pair the plan fails (each pair counted as one operation),
    /// so a fault lands on exactly the planned pair, mid-batch; nil when the plan refuses batches.
    public func nativeUpdateBatch(keys: UnsafeRawBufferPointer, values: UnsafeRawBufferPointer, count: Int) -> MapBatchResult? {
        guard !injector.refusesBatches else { return nil }
        let ks = Int(kind.keySize), vs = Int(kind.valueSize)
        for i in 0..<count {
            guard let error = injector.check(kind, .update) else { continue }
            var r = base.updateBatch(
                keys: UnsafeRawBufferPointer(rebasing: keys[..<(i * ks)]), values: UnsafeRawBufferPointer(rebasing: values[..<(i * vs)]), count: i)
            if r.error == nil { r.error = fixed(error) }
            r.calls = max(r.calls, 1)
            return r
        }
        return base.updateBatch(keys: keys, values: values, count: count)
    }

    /// As `nativeUpdateBatch`, for deletes; the base's own batch reports absent keys (ENOENT).
    public func nativeDeleteBatch(keys: UnsafeRawBufferPointer, count: Int) -> MapBatchResult? {
        guard !injector.refusesBatches else { return nil }
        let ks = Int(kind.keySize)
        for i in 0..<count {
            guard let error = injector.check(kind, .delete) else { continue }
            var r = base.nativeDeleteBatch(keys: UnsafeRawBufferPointer(rebasing: keys[..<(i * ks)]), count: i)
                ?? base.deleteOneByOne(keys: UnsafeRawBufferPointer(rebasing: keys[..<(i * ks)]), count: i)
            if r.error == nil { r.error = error }
            r.calls = max(r.calls, 1)
            return r
        }
        return base.nativeDeleteBatch(keys: keys, count: count) ?? base.deleteOneByOne(keys: keys, count: count)
    }

    public func nativeEntries() throws(BPFMapError) -> PackedEntries? {
        injector.refusesBatches ? nil : try base.allEntries()
    }

    /// A "map full" names this map's real size.
    private func fixed(_ error: BPFMapError) -> BPFMapError {
        if case .mapFull(let map, _, let flag) = error { return .mapFull(map: map, maxEntries: maxEntries, sizeFlag: flag) }
        return error
    }
}
