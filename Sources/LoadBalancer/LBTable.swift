/// One frontend of the Cilium-style `bpf lb list` table, with the IDs its printer knows.
public struct LBTableRow: Hashable, Sendable {
    public var entry: FrontendEntry
    /// The reverse-NAT ID; nil when not known (`portway translate` has no IDs), printed as `-`.
    public var revNatID: UInt16?
    /// The slot of each of `entry.backends`, in order; nil means 1, 2, 3… in that order.
    public var slots: [Int]?

    public init(entry: FrontendEntry, revNatID: UInt16? = nil, slots: [Int]? = nil) {
        self.entry = entry
        self.revNatID = revNatID
        self.slots = slots
    }
}
