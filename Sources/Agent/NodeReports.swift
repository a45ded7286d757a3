import Foundation
import GatewayCore
import KubeAPI
import KubeModels
import Logging
import Runtime
import ServiceLifecycle

extension NodeProgramReport {
    /// Compact JSON with sorted keys: a report that did not change is the same bytes.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// Decodes the annotation's text; nil when it is not a report.
    public init?(json: String) {
        guard let report = try? JSONDecoder().decode(NodeProgramReport.self, from: Data(json.utf8)) else { return nil }
        self = report
    }

    /// The report a node's Lease carries, nil when it carries none.
    public init?(lease: Lease) {
        guard let text = lease.metadata.annotations?[NodeProgramReport.annotation] else { return nil }
        self.init(json: text)
    }
}

/// Publishes what this node's proxy serves (`NodeProgramReport`) in the Lease
/// `portway-node-<node>` of the agent's namespace: holderIdentity the node, the report in the
/// annotation `portway.io/programmed`, labelled `portway.io/node-report=<node>` for the leader's
/// informer. Written when the report changes, and renewed every `renewPeriod` so that a dead
/// node's report goes stale (`leaseDurationSeconds` = `NodeReportPublisher.staleAfter`, which the
/// leader reads). Why a Lease: docs/GATEWAY-API.md, "Programmed: what the nodes report".
public struct NodeReportPublisher: ServiceLifecycle.Service {
    let loop = CoalescingLoop<NodeProgramReport>()
    let client: KubeClient
    let namespace: String
    let node: String
    let renewPeriod: Duration
    let retry: BackoffPolicy
    let logger: Logger

    /// How long a report lives without a renewal, in renew periods (as the kubelet's node Lease:
    /// renewed every 10 s, 40 s of life).
    public static let staleAfterRenewals = 4
    /// The renew period unless `--node-report-period` says otherwise.
    public static let defaultRenewPeriod: Duration = .seconds(10)

    public init(
        client: KubeClient, namespace: String, node: String, renewPeriod: Duration = NodeReportPublisher.defaultRenewPeriod, retry: BackoffPolicy = .retries(),
        logger: Logger = Logger(label: "portway.node-report")
    ) {
        self.client = client
        self.namespace = namespace
        self.node = node
        self.renewPeriod = renewPeriod
        self.retry = retry
        self.logger = logger
    }

    /// The newest report (from any task or thread; later ones replace earlier ones not yet written).
    public func send(_ report: NodeProgramReport) { loop.send(report) }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await publish() }
    }

    private func publish() async {
        var wanted: NodeProgramReport?
        var written: NodeProgramReport?
        var failures = 0
        let clock = ContinuousClock()
        var renewAt = clock.now
        await loop.run { batch, _ in
            if let last = batch.last { wanted = last }
            guard let report = wanted else { return nil }
            guard report != written || clock.now >= renewAt else { return renewAt }
            do {
                try await write(report)
                if failures > 0 { logger.notice("node report: the Lease \(namespace)/\(NodeProgramReport.leaseName(node: node)) is written again") }
                written = report
                failures = 0
                renewAt = clock.now + renewPeriod
                return renewAt
            } catch {
                failures += 1
                if failures == 1 { logger.warning("node report: cannot write the Lease \(namespace)/\(NodeProgramReport.leaseName(node: node)): \(error)") }
                return clock.now + retry.retryDelay(attempt: failures)
            }
        }
    }

    /// Creates or replaces the Lease (PUT with the resourceVersion read).
    private func write(_ report: NodeProgramReport) async throws {
        let name = NodeProgramReport.leaseName(node: node)
        let seconds = Int(renewPeriod.components.seconds) * Self.staleAfterRenewals
        let now = LeaderElectionMachine.microTime(Date())
        var existing: Lease?
        do {
            existing = try await client.get(Lease.self, name: name, namespace: namespace)
        } catch let error as KubeAPIError where error.code == 404 {
            existing = nil
        }
        var lease = existing ?? Lease(metadata: ObjectMeta(name: name, namespace: namespace))
        lease.metadata.labels = (lease.metadata.labels ?? [:]).merging([NodeProgramReport.label: node]) { _, new in new }
        lease.metadata.annotations = (lease.metadata.annotations ?? [:]).merging([NodeProgramReport.annotation: report.json]) { _, new in new }
        lease.spec = LeaseSpec(
            holderIdentity: node, leaseDurationSeconds: max(1, seconds), acquireTime: lease.spec?.acquireTime ?? now, renewTime: now)
        if existing == nil {
            _ = try await client.create(lease, namespace: namespace)
        } else {
            _ = try await client.update(lease, namespace: namespace)
        }
    }
}
