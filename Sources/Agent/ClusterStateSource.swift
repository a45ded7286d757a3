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

/// Where the agent learns the cluster's state: a directory of YAML files (`--from-dir`) or the
/// Kubernetes API (informers). A source sends a complete `.snapshot` only once it has fully synced,
/// so the agent never prunes maps from a partial view, and `.changes` after that.
public protocol ClusterStateSource: Sendable {
    /// Runs until the task is cancelled, pushing events into `sink`.
    func run(sink: Inbox<SourceEvent>) async
}

extension ClusterStateSource {
    /// The events as a stream (tests, tools); the source stops when the stream is dropped.
    public func events() -> AsyncStream<SourceEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: SourceEvent.self)
        let inbox = Inbox<SourceEvent>()
        let source = self
        let producer = Task { await source.run(sink: inbox) }
        let forwarder = Task {
            while let batch = await inbox.next() { for event in batch { continuation.yield(event) } }
            continuation.finish()
        }
        continuation.onTermination = { _ in
            producer.cancel()
            forwarder.cancel()
        }
        return stream
    }
}
