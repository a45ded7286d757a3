/// Keys at stable positions, for the writer's tables of records (`FrontendTable`,
/// `BackendTable`): a key keeps its position while it is in the index, so the batch paths read and
/// write the records by position (an array index) instead of probing a dictionary again. Freed
/// positions are reused; the records themselves are the table's own array, one per position.
struct PositionIndex<Key: Hashable & Sendable>: Sendable {
    private var positions: [Key: Int32] = [:]
    /// Per position: the key, nil when the position is free.
    private(set) var keys: [Key?] = []
    private var free: [Int32] = []

    /// Keys in the index.
    var count: Int { positions.count }

    /// The position of a key, if it is in the index (one probe).
    func position(of key: Key) -> Int? { positions[key].map { Int($0) } }

    /// The position of a key, given one when it has none (one probe): a free position, or a new one
    /// at the end (`appended`: the table appends its empty record for it; a reused position's
    /// record was left empty when it was freed).
    mutating func insert(_ key: Key) -> (position: Int, appended: Bool) {
        let next = free.last ?? Int32(keys.count)
        let p = Self.fill(&positions[key, default: -1], with: next)
        guard p == next, keys.count <= Int(p) || keys[Int(p)] == nil else { return (Int(p), false) }
        if Int(p) == keys.count {
            keys.append(key)
            return (Int(p), true)
        }
        free.removeLast()
        keys[Int(p)] = key
        return (Int(p), false)
    }

    /// Sets a missing position in place: one hash of the key for the lookup and the insert.
    private static func fill(_ slot: inout Int32, with next: Int32) -> Int32 {
        if slot < 0 { slot = next }
        return slot
    }

    /// The key at a position in use.
    func key(at p: Int) -> Key { keys[p]! }

    /// Frees a position in use (the table empties its record); false when it was free.
    @discardableResult
    mutating func remove(at p: Int) -> Bool {
        guard let key = keys[p] else { return false }
        positions[key] = nil
        keys[p] = nil
        free.append(Int32(p))
        return true
    }

    /// The positions in use.
    var live: [Int] { keys.indices.filter { keys[$0] != nil } }

    mutating func reserveCapacity(_ n: Int) {
        positions.reserveCapacity(n)
        keys.reserveCapacity(n)
    }
}
