import BPFMaps
import KubeModels
import LoadBalancer
import Logging

/// Installs the datapath programs onto the pinned maps (h2a's `Datapath.install`), returning a
/// description of what was attached for the log. Blocking: it is run on a dedicated queue.
public typealias DatapathInstaller = @Sendable (_ maps: MapSet) throws -> [String]

/// The node-local pipeline: source snapshots → translator → map writer, one log line per sync.
///
/// On start it opens (or creates) the pinned maps, installs the datapath if an installer is given,
/// and re-adopts the IDs in the pins without writing; the first snapshot of the source is the first
/// full sync, which also prunes what is stale. It runs until the source's stream ends or the task is
/// cancelled (SIGINT/SIGTERM), and leaves the pinned maps and attached programs in place.
public struct MapSyncPipeline: Sendable {
    public let options: AgentOptions
    let logger: Logger
    let installer: DatapathInstaller?
    /// Called after every sync (tests and metrics).
    let onSync: (@Sendable (SyncSummary) -> Void)?

    public init(
        options: AgentOptions, logger: Logger = Logger(label: "portway.agent"), installer: DatapathInstaller? = nil,
        onSync: (@Sendable (SyncSummary) -> Void)? = nil
    ) {
        self.options = options
        self.logger = logger
        self.installer = installer
        self.onSync = onSync
    }

    public func run(source: some ClusterStateSource) async throws {
        let queue = BlockingQueue(label: "portway.map-writer")
        let options = options
        let maps = try await queue.run { () throws -> MapSet in try MapSet.openOrCreate(bpffs: options.bpffs, sizes: options.mapSizes) }
        logger.info("pinned maps ready in \(maps.directory)")
        if let installer {
            let attached = try await queue.run { () throws -> [String] in try installer(maps) }
            logger.info("datapath attached: \(attached.joined(separator: ", "))")
        }
        let writer = try await queue.run { () throws -> MapWriter in try MapWriter(maps: maps) }
        let adopted = writer.programmed
        logger.info(
            "re-adopted \(adopted.services.values.filter { $0.master != nil }.count) frontends and \(adopted.backends.count) backends from the pins; no change until the first full sync")

        var lastWarnings: [TranslationWarning] = []
        for await snapshot in source.snapshots() {
            let clock = ContinuousClock()
            let start = clock.now
            let state = Translator.translate(snapshot, options: translatorOptions(for: snapshot))
            if state.warnings != lastWarnings {
                for warning in state.warnings where !lastWarnings.contains(warning) { logger.warning("\(warning)") }
                lastWarnings = state.warnings
            }
            let summary = await queue.run { writer.sync(state) }
            let total = (clock.now - start).components
            let totalMs = Double(total.seconds) * 1000 + Double(total.attoseconds) / 1e15
            logger.info("sync: \(summary) (with translation \((totalMs * 10).rounded() / 10)ms)")
            for failure in summary.failures { logger.error("sync failed for \(failure)") }
            for skipped in summary.skipped { logger.debug("skipped \(skipped)") }
            onSync?(summary)
        }
        logger.info("stopped; pinned maps (and attached programs) stay in place")
    }

    /// Node addresses from the options, else from the Node object named like this node.
    func translatorOptions(for snapshot: ClusterSnapshot) -> TranslatorOptions {
        var addresses = options.nodeAddresses
        if addresses.isEmpty, let node = snapshot.nodes.first(where: { $0.metadata.name == options.nodeName }) {
            addresses = (node.status?.addresses ?? [])
                .filter { $0.type == "InternalIP" || $0.type == "ExternalIP" }
                .compactMap { IPAddress($0.address) }
        }
        return TranslatorOptions(nodeName: options.nodeName, nodeAddresses: addresses, endpointsSource: options.endpointsSource)
    }
}
