import LoadBalancer

/// What `portway bpf lb list` prints: the frontends as the pinned maps hold them (not the agent's
/// memory), with their IDs and slots, plus anything inconsistent found on the way.
public struct LBListing: Hashable, Sendable {
    /// One frontend: its master and the slots the datapath reads (1...count+qcount).
    public struct Frontend: Hashable, Sendable {
        public var key: ServiceMapKey
        public var master: MasterEntry
        public var slots: [Slot]
    }

    public struct Slot: Hashable, Sendable {
        public var slot: UInt16
        public var backendID: UInt32
        /// nil when the slot points at an ID missing from the backends map.
        public var backend: BackendEntry?
    }

    /// Frontends in frontend order.
    public var frontends: [Frontend]
    /// Inconsistencies (missing slots or backends, slots without master), in the translate warning shape.
    public var warnings: [TranslationWarning]

    /// Reads the listing from the pinned maps.
    public static func read(from maps: MapSet) throws(BPFMapError) -> LBListing {
        LBListing(try ProgrammedState.read(from: maps))
    }

    /// Builds the listing from a state read back from the maps.
    public init(_ state: ProgrammedState) {
        frontends = []
        warnings = []
        for (key, entries) in state.services.sorted(by: { $0.key < $1.key }) {
            let object = "\(MapKind.services.pinName) \(key)"
            guard let master = entries.master else {
                warnings.append(TranslationWarning(object: object, field: "slots", message: "backend slots without a master entry (slot 0)"))
                continue
            }
            if key.frontend == nil {
                warnings.append(TranslationWarning(object: object, field: "key", message: "unknown protocol \(key.proto) or scope \(key.scope): not listed"))
            }
            // Maps may hold anything (a foreign writer, a half-written sync, corruption): nothing here
            // may trap, and one bad master must not produce 65,535 warnings.
            if master.slotCount > Int(UInt16.max) {
                warnings.append(TranslationWarning(object: object, field: "count", message: "count+qcount is \(master.count)+\(master.qcount) = \(master.slotCount), more than the \(UInt16.max) slots a key can address"))
            }
            let lastSlot = UInt16(min(master.slotCount, Int(UInt16.max)))
            var slots: [Slot] = []
            var missing: [ClosedRange<UInt16>] = []
            // Walk the slots present (not 1...count+qcount, which may be 131,070 long), noting the gaps.
            var expected = 1
            for slot in entries.slots.keys.filter({ $0 >= 1 && $0 <= lastSlot }).sorted() {
                if Int(slot) > expected { missing.append(UInt16(expected)...(slot - 1)) }
                expected = Int(slot) + 1
                let id = entries.slots[slot] ?? 0
                let backend = state.backends[id]
                if let backend {
                    if L4Protocol(ipProtocolNumber: backend.proto) == nil {
                        warnings.append(TranslationWarning(object: object, field: "slot \(slot)", message: "backend \(id) has unknown protocol \(backend.proto): not listed"))
                    } else if backend.backendState == nil {
                        warnings.append(TranslationWarning(object: object, field: "slot \(slot)", message: "backend \(id) has unknown state \(backend.state): listed as active"))
                    }
                } else {
                    warnings.append(TranslationWarning(object: object, field: "slot \(slot)", message: "backend \(id) is not in \(MapKind.backends.pinName)"))
                }
                slots.append(Slot(slot: slot, backendID: id, backend: backend))
            }
            if expected <= Int(lastSlot) { missing.append(UInt16(expected)...lastSlot) }
            for run in missing {
                let field = run.count == 1 ? "slot \(run.lowerBound)" : "slots \(run.lowerBound)...\(run.upperBound)"
                warnings.append(TranslationWarning(object: object, field: field, message: "missing, but the master counts \(master.count)+\(master.qcount) backends"))
            }
            let stray = entries.slots.keys.filter { $0 > lastSlot }.sorted()
            if !stray.isEmpty {
                let shown = stray.prefix(10).map(String.init).joined(separator: ", ") + (stray.count > 10 ? ", ..." : "")
                warnings.append(TranslationWarning(object: object, field: "slots", message: "\(stray.count) slot(s) past count+qcount (\(shown)): the datapath never reads them"))
            }
            if state.reverseNAT[master.revNatID] == nil {
                warnings.append(TranslationWarning(object: object, field: "rev_nat_index", message: "reverse-NAT entry \(master.revNatID) is not in \(MapKind.reverseNAT.pinName)"))
            }
            frontends.append(Frontend(key: key, master: master, slots: slots))
        }
    }

    /// The listing in the model's terms: one entry per frontend whose protocol and scope are known,
    /// with its reverse-NAT ID and the slot and backend ID of each backend. Backends of slots
    /// count+1... are terminating (that is how the datapath treats them); missing backends are left out.
    public var rows: [(row: LBTableRow, backendIDs: [UInt32])] {
        frontends.compactMap { f in
            guard let frontend = f.key.frontend else { return nil }
            var backends: [Backend] = [], slots: [Int] = [], ids: [UInt32] = []
            for s in f.slots {
                guard let b = s.backend, let proto = L4Protocol(ipProtocolNumber: b.proto) else { continue }
                let state: BackendState = s.slot > f.master.count ? .terminating : (b.backendState ?? .active)
                backends.append(Backend(address: .v4(b.address), port: b.port, proto: proto, state: state))
                slots.append(Int(s.slot))
                ids.append(s.backendID)
            }
            let m = f.master
            let flags = m.serviceFlags
            let entry = FrontendEntry(
                frontend: frontend, type: m.frontendType, flags: flags,
                l7ProxyPort: m.isL7LB ? UInt16(truncatingIfNeeded: m.union) : nil,
                affinityTimeoutSeconds: !m.isL7LB && flags.contains(.sessionAffinity) ? m.union : nil,
                service: ServiceReference(namespace: "", name: "", port: 0), backends: backends)
            return (LBTableRow(entry: entry, revNatID: m.revNatID, slots: slots), ids)
        }
    }
}
