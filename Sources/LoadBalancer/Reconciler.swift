import KubeModels

/// What a reconcile step changed in the desired L4 state, by frontend: the new entry, or nil when
/// the frontend is gone. Only frontends whose entry differs from before appear.
public typealias FrontendChanges = [Frontend: FrontendEntry?]

/// The result of applying input changes.
public struct ReconcileStep: Sendable {
    public var changes: FrontendChanges
    /// The Service keys translated again.
    public var translated: Set<ObjectKey>
    /// Warnings of the translated keys (and of keys whose frontend conflicts they moved) that were
    /// not there before: what to log.
    public var newWarnings: [TranslationWarning]
    /// What the applied input changes touched (empty for the full path, which touches everything):
    /// later stages (the Gateway stage) decide from it whether they have work.
    public var touched = TouchedKeys()
}

/// Reconcile by key: keeps the translator's input indexed and the last translation of every
/// Service key, and turns input changes into frontend changes by translating only the keys a change
/// touches and diffing their frontends against the previous result.
///
/// A frontend claimed by several Services goes to the first in namespace/name order (a claim that
/// loses is reported as a warning), in this path and the full one alike: `Translator.translate`
/// is this type built from a whole snapshot, so both paths give identical results by construction
/// and `ReconcilerModelTests` checks the incremental bookkeeping against it.
public struct L4Reconciler: Sendable {
    public let options: TranslatorOptions
    public private(set) var index = ClusterIndex()
    /// The desired entry of every frontend (the winner's claim).
    public private(set) var desired: [Frontend: FrontendEntry] = [:]
    /// The IPv4 addresses NodePort frontends are made for (deduplicated, in order).
    public private(set) var nodeIPv4: [IPv4Address] = []
    private var results: [ObjectKey: KeyResult] = [:]
    /// Frontend → the keys claiming it, ascending (the first wins).
    private var claimants: [Frontend: [ObjectKey]] = [:]
    private var nodePortKeys: Set<ObjectKey> = []

    /// An empty state for `options`.
    public init(options: TranslatorOptions) {
        self.options = options
        nodeIPv4 = Self.nodeIPv4(options: options, index: index)
    }

    /// The full path: `snapshot` translated from scratch.
    public init(options: TranslatorOptions, snapshot: ClusterSnapshot) {
        self.init(options: options)
        index = ClusterIndex(snapshot)
        nodeIPv4 = Self.nodeIPv4(options: options, index: index)
        retranslate(Set(index.services.keys), incremental: false)
    }

    /// True when no `--node-ip` was given and there is no Node object named `options.nodeName`:
    /// node-IP NodePort frontends cannot be made (the agent warns).
    public var nodeObjectMissing: Bool {
        options.nodeAddresses.isEmpty && index.nodes[options.nodeName] == nil
    }

    /// Applies input changes: stores them, translates the touched keys again and returns the
    /// frontends whose desired entry changed.
    public mutating func apply(_ changes: [ClusterChange]) -> ReconcileStep {
        var touched = TouchedKeys()
        for change in changes { touched.formUnion(index.apply(change)) }
        var keys = touched.services
        if touched.nodes.contains(options.nodeName) {
            let addresses = Self.nodeIPv4(options: options, index: index)
            if addresses != nodeIPv4 {
                nodeIPv4 = addresses
                keys.formUnion(nodePortKeys)
            }
        }
        var step = retranslate(keys, incremental: true)
        step.touched = touched
        return step
    }

    /// The full path (start, relist, periodic resync): `snapshot` translated from scratch, and the
    /// frontends that differ from the current state.
    public mutating func replaceAll(with snapshot: ClusterSnapshot) -> ReconcileStep {
        let fresh = L4Reconciler(options: options, snapshot: snapshot)
        var changes: FrontendChanges = [:]
        for (frontend, entry) in fresh.desired where desired[frontend] != entry { changes[frontend] = entry }
        for frontend in desired.keys where fresh.desired[frontend] == nil { changes[frontend] = .some(nil) }
        let before = Set(warnings)
        let newWarnings = fresh.warnings.filter { !before.contains($0) }
        self = fresh
        return ReconcileStep(changes: changes, translated: Set(index.services.keys), newWarnings: newWarnings)
    }

    /// The whole desired state, entries sorted by frontend, warnings in key order.
    public var state: DesiredL4State {
        DesiredL4State(entries: Array(desired.values), warnings: warnings)
    }

    /// Every warning, in namespace/name order of the Services (the order of a full translation).
    public var warnings: [TranslationWarning] {
        results.keys.sorted().flatMap { warnings(of: $0) }
    }

    /// The Services whose last translation claims a node port (re-translated when the node's addresses change).
    public var servicesWithNodePorts: Set<ObjectKey> { nodePortKeys }

    // MARK: - Internals

    static func nodeIPv4(options: TranslatorOptions, index: ClusterIndex) -> [IPv4Address] {
        var addresses = options.nodeAddresses
        if addresses.isEmpty, let node = index.nodes[options.nodeName]?.first {
            addresses = NodeAddresses.of(node)
        }
        var seen = Set<IPv4Address>()
        return addresses.compactMap(\.ipv4).filter { seen.insert($0).inserted }
    }

    @discardableResult
    private mutating func retranslate(_ keys: Set<ObjectKey>, incremental: Bool) -> ReconcileStep {
        var affected = Set<Frontend>()
        var warningKeys = keys
        var oldWarnings: [ObjectKey: [TranslationWarning]] = [:]
        if incremental {
            for key in keys { oldWarnings[key] = warnings(of: key) }
        }
        for key in keys {
            let old = results[key]
            let new = ServiceTranslation.translate(key, index: index, options: options, nodeIPv4: nodeIPv4)
            if old == new { continue }
            for frontend in Set((old?.claims ?? []).map(\.entry.frontend)) {
                claimants[frontend]?.removeAll { $0 == key }
                if claimants[frontend]?.isEmpty == true { claimants[frontend] = nil }
                affected.insert(frontend)
            }
            for frontend in Set(new.claims.map(\.entry.frontend)) {
                var list = claimants[frontend] ?? []
                list.insert(key, at: list.firstIndex { $0 > key } ?? list.endIndex)
                claimants[frontend] = list
                affected.insert(frontend)
            }
            results[key] = new.isEmpty ? nil : new
            if new.usesNodeAddresses { nodePortKeys.insert(key) } else { nodePortKeys.remove(key) }
        }
        var changes: FrontendChanges = [:]
        for frontend in affected {
            let winner = claimants[frontend]?.first.flatMap { key in results[key]?.claims.first { $0.entry.frontend == frontend }?.entry }
            if incremental, let keys = claimants[frontend] { warningKeys.formUnion(keys) }
            guard desired[frontend] != winner else { continue }
            desired[frontend] = winner
            // From scratch nothing is reported (replaceAll diffs whole states).
            if incremental { changes[frontend] = .some(winner) }
        }
        var newWarnings: [TranslationWarning] = []
        if incremental {
            for key in warningKeys.sorted() {
                let before = Set(oldWarnings[key] ?? [])
                newWarnings += warnings(of: key).filter { !before.contains($0) }
            }
        }
        return ReconcileStep(changes: changes, translated: keys, newWarnings: newWarnings)
    }

    /// The warnings of one key in emission order, conflict warnings rendered against the current owners.
    private func warnings(of key: ObjectKey) -> [TranslationWarning] {
        guard let result = results[key] else { return [] }
        var out: [TranslationWarning] = []
        var claimed = Set<Frontend>()
        result.forEachNote { note in
            switch note {
            case .warning(let warning):
                out.append(warning)
            case .claim(let i):
                let claim = result.claims[i]
                let frontend = claim.entry.frontend
                let owner = claimants[frontend]?.first ?? key
                // A second claim within one Service loses to the first, like a claim of another Service.
                if owner != key || !claimed.insert(frontend).inserted {
                    out.append(TranslationWarning(
                        object: claim.object, field: claim.field,
                        message: "frontend \(frontend) is already used by Service \(owner.description); skipped"))
                }
            }
        }
        return out
    }
}
