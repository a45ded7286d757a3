import KubeModels
import LoadBalancer
import Runtime

/// What a source tells the pipeline.
public enum SourceEvent: Sendable {
    /// A complete state: the first one once the source has fully synced (the first full sync, which
    /// also prunes), or a whole reload (a directory of files). The pipeline diffs it by key.
    case snapshot(ClusterSnapshot)
    /// Changes since the previous event, each naming the keys it touches.
    case changes([ClusterChange])
}

/// Where a source's events go: straight into the consumer's loop (no relay in between).
public typealias SourceSink = @Sendable (SourceEvent) -> Void

/// Where the agent learns the cluster's state: a directory of YAML files (`--from-dir`) or the
/// Kubernetes API (informers). A source sends a complete `.snapshot` only once it has fully synced,
/// so the agent never prunes maps from a partial view, and `.changes` after that.
public protocol ClusterStateSource: Sendable {
    /// Runs until the task is cancelled, handing each event to `sink` as it happens.
    func run(sink: @escaping SourceSink) async
}

extension ClusterStateSource {
    /// The events as a stream (tests, tools); the source stops when the stream is dropped.
    public func events() -> AsyncStream<SourceEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: SourceEvent.self)
        let source = self
        let producer = Task {
            await source.run { continuation.yield($0) }
            continuation.finish()
        }
        continuation.onTermination = { _ in producer.cancel() }
        return stream
    }
}
