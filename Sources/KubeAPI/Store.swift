import Synchronization
import KubeModels

/// A change delivered by an informer.
public enum InformerEvent<R: KubeResource>: Sendable {
    case added(R)
    case updated(old: R, new: R)
    case deleted(R)
}

/// The objects an informer knows, by "namespace/name", plus whether the first list completed.
public final class Store<R: KubeResource>: Sendable {
    private struct State {
        var items: [String: R] = [:]
        var synced = false
    }
    private let state = Mutex(State())

    public init() {}

    /// True once the first list has been applied.
    public var hasSynced: Bool { state.withLock { $0.synced } }
    public var items: [R] { state.withLock { Array($0.items.values) } }
    public var count: Int { state.withLock { $0.items.count } }
    public func get(_ key: String) -> R? { state.withLock { $0.items[key] } }

    /// Applies one watch event; returns the informer event to deliver.
    func upsert(_ object: R) -> InformerEvent<R> {
        state.withLock { s in
            let key = object.storeKey
            let old = s.items.updateValue(object, forKey: key)
            return old.map { .updated(old: $0, new: object) } ?? .added(object)
        }
    }

    func remove(_ object: R) -> InformerEvent<R> {
        state.withLock { s in
            let removed = s.items.removeValue(forKey: object.storeKey)
            return .deleted(removed ?? object)
        }
    }

    /// Replaces the contents with a fresh list, returning the difference as events: objects gone
    /// from the list become deletes (they were deleted while the watch was down), new ones adds,
    /// and ones whose resourceVersion changed updates.
    func replace(with list: [R]) -> [InformerEvent<R>] {
        state.withLock { s in
            var events: [InformerEvent<R>] = []
            var fresh: [String: R] = [:]
            for object in list { fresh[object.storeKey] = object }
            for (key, old) in s.items.sorted(by: { $0.key < $1.key }) where fresh[key] == nil {
                events.append(.deleted(old))
            }
            for object in list {
                if let old = s.items[object.storeKey] {
                    if old.metadata.resourceVersion != object.metadata.resourceVersion { events.append(.updated(old: old, new: object)) }
                } else {
                    events.append(.added(object))
                }
            }
            s.items = fresh
            s.synced = true
            return events
        }
    }
}
