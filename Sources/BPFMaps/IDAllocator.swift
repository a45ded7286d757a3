/// Hands out IDs from 1...limit. It moves forward from the last ID given (wrapping around), so a
/// freed ID is not reused at once: connection-tracking entries may still name it for a while.
struct IDAllocator {
    let limit: UInt32
    private(set) var used = Set<UInt32>()
    private var next: UInt32 = 1

    init(limit: UInt32) { self.limit = limit }

    /// Marks an ID read back from the maps as taken.
    mutating func adopt(_ id: UInt32) {
        guard id >= 1 && id <= limit else { return }
        used.insert(id)
        if id >= next { next = id == limit ? 1 : id + 1 }
    }

    mutating func allocate() -> UInt32? {
        guard used.count < Int(limit) else { return nil }
        var candidate = next
        while used.contains(candidate) { candidate = candidate == limit ? 1 : candidate + 1 }
        used.insert(candidate)
        next = candidate == limit ? 1 : candidate + 1
        return candidate
    }

    mutating func release(_ id: UInt32) { used.remove(id) }

    func isUsed(_ id: UInt32) -> Bool { used.contains(id) }
}
