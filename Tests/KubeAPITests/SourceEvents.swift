import Agent
import KubeModels
import LoadBalancer

/// Folds a source's events into the cluster state they describe, one event at a time.
struct FoldedEvents {
    var iterator: AsyncStream<SourceEvent>.Iterator
    var index = ClusterIndex()
    /// The changes of the last event (empty for a snapshot).
    var lastChanges: [ClusterChange] = []
    var lastWasSnapshot = false

    init(_ source: some ClusterStateSource) { iterator = source.events().makeAsyncIterator() }

    /// The state after the next event, as a snapshot (objects in name order).
    mutating func next() async -> ClusterSnapshot? {
        guard let event = await iterator.next() else { return nil }
        switch event {
        case .snapshot(let snapshot):
            index = ClusterIndex(snapshot)
            lastChanges = []
            lastWasSnapshot = true
        case .changes(let changes):
            for change in changes { index.apply(change) }
            lastChanges = changes
            lastWasSnapshot = false
        }
        return index.snapshot
    }
}
