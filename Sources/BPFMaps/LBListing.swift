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
            var slots: [Slot] = []
            for n in 0..<master.slotCount {
                let slot = UInt16(n + 1)
                guard let id = entries.slots[slot] else {
                    warnings.append(TranslationWarning(object: object, field: "slot \(slot)", message: "missing, but the master counts \(master.count)+\(master.qcount) backends"))
                    continue
                }
                let backend = state.backends[id]
                if backend == nil {
                    warnings.append(TranslationWarning(object: object, field: "slot \(slot)", message: "backend \(id) is not in \(MapKind.backends.pinName)"))
                }
                slots.append(Slot(slot: slot, backendID: id, backend: backend))
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

    /// The Cilium-style table (docs/CLI-JSON.md).
    public var table: String { renderLBTable(rows.map(\.row)) }

    /// The JSON document: translate's entries plus `serviceID`, `revNatID`, and per backend
    /// `backendID` and `slot`; `service` is null (the maps do not hold it).
    public var json: JSONObject {
        let services: [JSONValue] = rows.map { row, ids in
            var object = LoadBalancer.json(for: row.entry) { i, backend in
                var b = LoadBalancer.json(for: backend)
                b["backendID"] = .integer(ids[i])
                b["slot"] = .integer(row.slots?[i])
                return b
            }
            object.insert("serviceID", .integer(row.revNatID), before: "type")
            object.insert("revNatID", .integer(row.revNatID), before: "type")
            object["service"] = .null
            return .object(object)
        }
        return ["services": .array(services), "warnings": .array(warnings.map { .object(LoadBalancer.json(for: $0)) })]
    }
}
