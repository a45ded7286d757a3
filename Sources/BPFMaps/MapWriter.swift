import CPortwayBPF
import LoadBalancer
import Synchronization

/// Programs a desired L4 state into the load-balancing maps, writing only what changed, in an
/// order that never lets the datapath see a master whose count points past written slots, nor a
/// slot whose backend is missing (make before break):
///
/// 1. removed frontends: master first, then its slots, then its reverse-NAT entry;
/// 2. per frontend: new/changed backends, slots 1...N, reverse NAT, then the master (slot 0);
///    stale slots beyond the new count only after the master shrank;
/// 3. backend entries whose state changed, stale reverse-NAT entries, then orphan backends last.
///
/// Many new frontends at once (a cold start) are written phase by phase with batch updates:
/// all their backends, then all their slots, their reverse NAT, and their masters last; many
/// removed ones with batch deletes, all their masters first. Maps that refuse batch commands get
/// the same operations one by one.
///
/// IDs are stable: one backend ID per (address, port, protocol), shared by all frontends (with a
/// reference count per ID, so orphans are found without scanning), and one reverse-NAT (service)
/// ID per frontend, 1...65535. A new writer re-adopts the IDs found in the maps and writes
/// nothing until its first call.
///
/// Capacity is planned before writing: when the desired entries do not fit, whole Services are
/// programmed in a stable order (Services already programmed first, then by namespace/name); the
/// rest fail with `.doesNotFit` and the summary's `shortfall` names the map and the flag to raise.
/// A frontend that still cannot be fully written is rolled back to what it was; the others are
/// still programmed. Every failure names its frontend (`SyncFailure.frontend`); the writer keeps
/// them (`failedFrontends`) for `retryFailed`.
///
/// Entry points — all return a `SyncSummary` and never throw:
/// - `sync(_:)`: the full desired state (start, relist, periodic resync); prunes everything else.
/// - `apply(_:)`: only the given frontends (nil removes one); cost proportional to the change.
/// - `repair(_:)`: re-reads the maps, rewrites what was changed outside the agent, reports it.
/// - `retryFailed()`: the frontends that failed before, again.
/// Each takes an `isCancelled` closure checked between frontends, so shutdown does not wait for a
/// long sync; frontends not reached are counted in `interrupted` and kept for `retryFailed`.
///
/// Thread-safe (one call at a time). The calls make blocking bpf() syscalls on pinned maps: run
/// them on a dedicated thread, not on Swift's cooperative pool.
public final class MapWriter: Sendable {
    /// The maps written.
    public let maps: LoadBalancerMaps
    private let core: Mutex<WriterCore>

    /// Opens the writer on `maps`, reading back what they hold. Writes nothing.
    public init(maps: LoadBalancerMaps) throws(BPFMapError) {
        self.maps = maps
        let programmed = try ProgrammedState.read(from: maps)
        core = Mutex(WriterCore(maps: maps, programmed: programmed))
    }

    /// Opens the writer on the pinned maps of `maps`.
    public convenience init(maps: MapSet) throws(BPFMapError) {
        try self.init(maps: LoadBalancerMaps(maps))
    }

    /// Makes the maps hold `desired` and prunes everything else.
    public func sync(_ desired: DesiredL4State, isCancelled: () -> Bool = { false }) -> SyncSummary {
        core.withLock { core in counted(core.sync(desired, isCancelled: isCancelled), core, full: true) }
    }

    /// Upserts (non-nil) or removes (nil) only the given frontends; everything else stays as it
    /// is. The frontends of one Service should come together (capacity is granted per Service).
    public func apply(_ changes: [Frontend: FrontendEntry?], isCancelled: () -> Bool = { false }) -> SyncSummary {
        core.withLock { core in counted(core.apply(changes, isCancelled: isCancelled), core) }
    }

    /// Re-reads the maps (the truth), rewrites every entry that differs from what this writer
    /// wrote (deleted, changed or added outside the agent), then syncs `desired`. The summary's
    /// `repaired` lists the entries that had drifted.
    public func repair(_ desired: DesiredL4State, isCancelled: () -> Bool = { false }) -> SyncSummary {
        core.withLock { core in counted(core.repair(desired, isCancelled: isCancelled), core, full: true) }
    }

    /// Programs again the desired frontends that failed (or were interrupted) before.
    public func retryFailed(isCancelled: () -> Bool = { false }) -> SyncSummary {
        core.withLock { core in counted(core.retryFailed(isCancelled: isCancelled), core) }
    }

    /// Desired frontends not programmed as desired, with the last error of each.
    public var failedFrontends: [Frontend: BPFMapError] {
        core.withLock { core in
            var result: [Frontend: BPFMapError] = [:]
            for (key, error) in core.failed {
                if let service = core.frontends[desired: key] { result[service.frontend] = error }
            }
            return result
        }
    }

    /// The backend ID of (address, port, protocol), if it has one.
    public func backendID(for backend: Backend) -> UInt32? {
        guard let v4 = backend.address.ipv4 else { return nil }
        let key = BackendKey(address: v4, port: backend.port, proto: backend.proto.ipProtocolNumber)
        return core.withLock { $0.backendID(key) }
    }

    /// The reverse-NAT (service) ID of a frontend, if it has one.
    public func revNatID(for frontend: Frontend) -> UInt16? {
        guard let key = ServiceMapKey(frontend) else { return nil }
        return core.withLock { $0.frontends[revNatID: key] }
    }

    /// The summary with what each map holds now and its capacity. The services map's entry count
    /// walks every frontend, so only the full path (`full`) counts it: an incremental call stays
    /// proportional to its change.
    private func counted(_ summary: SyncSummary, _ core: borrowing WriterCore, full: Bool = false) -> SyncSummary {
        var summary = summary
        if full {
            var n = 0
            for record in core.frontends.records where record.hasEntries {
                guard let entries = record.entries else { continue }
                n += (entries.master == nil ? 0 : 1) + entries.slots.count
            }
            summary.entries[.services] = n
        }
        summary.entries[.backends] = core.backendEntries.count
        summary.entries[.reverseNAT] = core.revNatEntries.count
        for kind in [MapKind.services, .backends, .reverseNAT] { summary.capacity[kind] = Int(maps[kind].maxEntries) }
        return summary
    }

    /// What the writer believes the maps hold (its mirror of every successful write).
    public var programmed: ProgrammedState { core.withLock { $0.programmed } }
}
