/// Hands out IDs from 1...limit. It moves forward from the last ID given (wrapping around), so a
/// freed ID is not reused at once: connection-tracking entries may still name it for a while.
/// IDs in use: a bitmap for 1...2^22 (512 KiB at most), a set above (backend IDs rarely get there).
struct IDAllocator {
    let limit: UInt32
    private var bitmap: [UInt64]
    private var set = Set<UInt32>()
    private(set) var count = 0
    private var next: UInt32 = 1

    init(limit: UInt32) {
        self.limit = limit
        bitmap = [UInt64](repeating: 0, count: Int(min(limit, 1 << 22)) / 64 + 1)
    }

    private func inBitmap(_ id: UInt32) -> Bool { Int(id / 64) < bitmap.count }

    func isUsed(_ id: UInt32) -> Bool {
        if !inBitmap(id) { return set.contains(id) }
        return bitmap[Int(id / 64)] & (1 << UInt64(id % 64)) != 0
    }

    private mutating func mark(_ id: UInt32, _ used: Bool) {
        guard isUsed(id) != used else { return }
        count += used ? 1 : -1
        if !inBitmap(id) {
            if used { set.insert(id) } else { set.remove(id) }
        } else if used {
            bitmap[Int(id / 64)] |= 1 << UInt64(id % 64)
        } else {
            bitmap[Int(id / 64)] &= ~(1 << UInt64(id % 64))
        }
    }

    /// Marks an ID read back from the maps as taken.
    mutating func adopt(_ id: UInt32) {
        guard id >= 1 && id <= limit else { return }
        mark(id, true)
        if id >= next { next = id == limit ? 1 : id + 1 }
    }

    mutating func allocate() -> UInt32? {
        guard count < Int(limit) else { return nil }
        var candidate = next
        while isUsed(candidate) { candidate = candidate == limit ? 1 : candidate + 1 }
        mark(candidate, true)
        next = candidate == limit ? 1 : candidate + 1
        return candidate
    }

    mutating func release(_ id: UInt32) {
        guard id >= 1 && id <= limit else { return }
        mark(id, false)
    }
}

/// How many slots point at each backend ID. IDs are handed out densely from 1 (`IDAllocator`), so
/// the counts live in an array indexed by ID — no hashing on the writer's hottest path — with a
/// dictionary for IDs beyond the allocator's bitmap range (adopted from maps written by others).
struct RefCounts: ExpressibleByDictionaryLiteral {
    private var dense: [Int32] = []
    private var sparse: [UInt32: Int] = [:]
    private static let denseLimit: UInt32 = 1 << 22

    init(dictionaryLiteral elements: (UInt32, Int)...) {
        for (id, n) in elements { self[id] = n }
    }

    /// The count of `id`; nil when no slot points at it.
    subscript(id: UInt32) -> Int? {
        get {
            guard id < Self.denseLimit else { return sparse[id] }
            guard Int(id) < dense.count, dense[Int(id)] > 0 else { return nil }
            return Int(dense[Int(id)])
        }
        set {
            guard id < Self.denseLimit else {
                sparse[id] = newValue
                return
            }
            if Int(id) >= dense.count {
                guard newValue != nil else { return }
                dense.append(contentsOf: repeatElement(0, count: max(Int(id) + 1, 2 * dense.count, 1024) - dense.count))
            }
            dense[Int(id)] = Int32(clamping: newValue ?? 0)
        }
    }

    subscript(id: UInt32, default value: Int) -> Int {
        get { self[id] ?? value }
        set { self[id] = newValue == 0 && value == 0 ? nil : newValue }
    }
}
