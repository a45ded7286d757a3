import KubeModels

/// Where the agent learns the cluster's state: a directory of YAML files (`--from-dir`) or the
/// Kubernetes API (informers). A source yields a complete snapshot each time something changed,
/// coalescing bursts; the first snapshot is yielded only once the source has fully synced, so the
/// agent never prunes maps from a partial view.
public protocol ClusterStateSource: Sendable {
    /// A stream of complete snapshots. It finishes when the source is shut down.
    func snapshots() -> AsyncStream<ClusterSnapshot>
}
