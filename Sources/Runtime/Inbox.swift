import Synchronization

/// A multi-producer, single-consumer queue that hands the consumer everything that has arrived
/// since it last looked: the coalescing of the pipeline. There is no fixed debounce: a lone item is
/// handed over at once, and items that arrive while the consumer works are taken together next.
public final class Inbox<Element: Sendable>: Sendable {
    private struct State {
        var items: [Element] = []
        var waiter: CheckedContinuation<[Element]?, Never>?
        var finished = false
    }
    private let state = Mutex(State())

    public init() {}

    /// Adds an item (ignored once finished).
    public func push(_ item: Element) {
        state.withLock { s in
            guard !s.finished else { return }
            s.items.append(item)
            guard let waiter = s.waiter else { return }
            s.waiter = nil
            let items = s.items
            s.items = []
            waiter.resume(returning: items)
        }
    }

    /// Ends the inbox: the consumer gets what is left, then nil.
    public func finish() {
        state.withLock { s in
            s.finished = true
            if let waiter = s.waiter {
                s.waiter = nil
                waiter.resume(returning: nil)
            }
        }
    }

    /// Everything that has arrived, waiting for at least one item; nil when finished and empty,
    /// or when the calling task is cancelled. One consumer at a time.
    public func next() async -> [Element]? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[Element]?, Never>) in
                state.withLock { s in
                    if !s.items.isEmpty {
                        defer { s.items = [] }
                        continuation.resume(returning: s.items)
                    } else if s.finished || Task.isCancelled {
                        continuation.resume(returning: nil)
                    } else {
                        s.waiter = continuation
                    }
                }
            }
        } onCancel: {
            state.withLock { s in
                if let waiter = s.waiter {
                    s.waiter = nil
                    waiter.resume(returning: nil)
                }
            }
        }
    }
}
