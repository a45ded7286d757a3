/// Values by map ID (backend IDs, reverse-NAT IDs), read and written like a `[ID: Value]`. IDs
/// are handed out densely from 1 (`IDAllocator`), so the values live in an array indexed by ID —
/// no hashing — with a dictionary for IDs past `denseLimit` (adopted from maps written by others).
/// The writer's mirror of the backends and reverse-NAT maps.
struct IDTable<ID: FixedWidthInteger & UnsignedInteger, Value> {
    private var dense: [Value?] = []
    private var sparse: [ID: Value] = [:]
    private(set) var count = 0
    private static var denseLimit: Int { 1 << 22 }

    init() {}

    init(_ values: [ID: Value]) {
        for (id, value) in values { updateValue(value, forKey: id) }
    }

    subscript(id: ID) -> Value? {
        get {
            let i = Int(id)
            guard i < Self.denseLimit else { return sparse.isEmpty ? nil : sparse[id] }
            return i < dense.count ? dense[i] : nil
        }
        set {
            if let newValue { updateValue(newValue, forKey: id) } else { removeValue(forKey: id) }
        }
    }

    /// Sets a value; returns the one it replaced.
    @discardableResult
    mutating func updateValue(_ value: Value, forKey id: ID) -> Value? {
        let i = Int(id)
        guard i < Self.denseLimit else {
            let old = sparse.updateValue(value, forKey: id)
            if old == nil { count += 1 }
            return old
        }
        if i >= dense.count { grow(to: i + 1) }
        let old = dense[i]
        dense[i] = value
        if old == nil { count += 1 }
        return old
    }

    /// Clears a value; returns it.
    @discardableResult
    mutating func removeValue(forKey id: ID) -> Value? {
        let i = Int(id)
        guard i < Self.denseLimit else {
            let old = sparse.isEmpty ? nil : sparse.removeValue(forKey: id)
            if old != nil { count -= 1 }
            return old
        }
        guard i < dense.count, let old = dense[i] else { return nil }
        dense[i] = nil
        count -= 1
        return old
    }

    /// Room for IDs below `n` without growing.
    mutating func reserveCapacity(_ n: Int) {
        let n = min(n, Self.denseLimit)
        if n > dense.count { grow(to: n) }
    }

    private mutating func grow(to n: Int) {
        dense.append(contentsOf: repeatElement(nil, count: max(n, 2 * dense.count, 1024) - dense.count))
    }

    /// The IDs that hold a value, in ascending order.
    var keys: [ID] {
        var out: [ID] = []
        out.reserveCapacity(count)
        for i in dense.indices where dense[i] != nil { out.append(ID(i)) }
        return sparse.isEmpty ? out : out + sparse.keys.sorted()
    }

    /// Calls `body` with every (ID, value), in ascending order of ID.
    func forEach(_ body: (ID, Value) throws -> Void) rethrows {
        for i in dense.indices { if let v = dense[i] { try body(ID(i), v) } }
        for id in sparse.keys.sorted() { try body(id, sparse[id]!) }
    }

    /// The same values as a dictionary (the public `ProgrammedState` view).
    var dictionary: [ID: Value] {
        var out: [ID: Value] = [:]
        out.reserveCapacity(count)
        forEach { out[$0] = $1 }
        return out
    }
}

extension IDTable: Sendable where ID: Sendable, Value: Sendable {}
