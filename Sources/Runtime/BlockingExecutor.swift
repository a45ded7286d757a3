import Dispatch
import Synchronization

/// A `Mutex` in a class, for a value shared with a closure that outlives the scope (a thread).
public final class LockBox<Value: Sendable>: Sendable {
    public let value: Mutex<Value>
    public init(_ value: Value) { self.value = Mutex(value) }
}

/// The one executor type for blocking calls (bpf() syscalls, program loading, the verifier; file
/// reads and exec plugins): a serial dispatch queue, so they never run on Swift's cooperative pool
/// and, on one executor, never interleave (the agent's map writes use one; KubeAPI's file and
/// credential-plugin reads another, so a slow plugin never delays a map write).
///
/// A caller whose task is cancelled stops waiting at once (`CancellationError`) while the work
/// finishes on the queue: shutdown never waits for a long sync. Writes are ordered make-before-break
/// per frontend, so what a stopped process leaves is consistent.
public final class BlockingExecutor: Sendable {
    private let queue: DispatchQueue

    public init(label: String) { queue = DispatchQueue(label: label) }

    /// Runs `body` on the queue and returns its result, or throws `CancellationError` as soon as
    /// the calling task is cancelled.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await run { _ in try body() }
    }

    /// Like `run`, and `body` gets a check it can call between steps (between frontends of a map
    /// sync) to stop early once the caller is cancelled.
    public func run<T: Sendable>(_ body: @escaping @Sendable (_ isCancelled: @escaping @Sendable () -> Bool) throws -> T) async throws -> T {
        let waiter = Waiter<T>()
        let isCancelled: @Sendable () -> Bool = { waiter.cancelled }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                guard waiter.install(continuation) else { return }
                queue.async { waiter.resume(with: Result { try body(isCancelled) }) }
            }
        } onCancel: {
            waiter.cancel()
        }
    }

    /// Resumes a continuation once: with the result, or with cancellation, whichever comes first.
    private final class Waiter<T: Sendable>: Sendable {
        private struct State {
            var continuation: CheckedContinuation<T, any Error>?
            var early: Result<T, any Error>?
            var cancelled = false
        }
        private let state = Mutex(State())

        var cancelled: Bool { state.withLock { $0.cancelled } }

        func cancel() {
            state.withLock { $0.cancelled = true }
            resume(with: .failure(CancellationError()))
        }

        /// False when the result (cancellation) came first: the continuation was resumed with it.
        func install(_ continuation: CheckedContinuation<T, any Error>) -> Bool {
            state.withLock { s in
                if let early = s.early {
                    continuation.resume(with: early)
                    return false
                }
                s.continuation = continuation
                return true
            }
        }

        func resume(with result: Result<T, any Error>) {
            state.withLock { s in
                if let continuation = s.continuation {
                    s.continuation = nil
                    continuation.resume(with: result)
                } else if s.early == nil {
                    s.early = result
                }
            }
        }
    }
}
