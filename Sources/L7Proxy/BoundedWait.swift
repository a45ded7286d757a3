import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// A wait for something the event loops do (a channel closing, a task submitted to a loop, the
/// loops stopping) that gives up at a deadline kept on Swift's clock, or when the waiting task is
/// cancelled. The shutdown path waits only this way: an event loop that is busy (a long request,
/// a blocked thread) can delay the proxy's own work, never the agent's lifecycle.
public enum BoundedWait {
    /// Waits until `register`'s callback runs, `deadline` passes (nil: no deadline) or the task
    /// is cancelled, whichever comes first. True when the callback ran in time.
    public static func until(
        _ deadline: ContinuousClock.Instant?, _ register: (_ done: @escaping @Sendable () -> Void) -> Void
    ) async -> Bool {
        let wait = Once()
        register { wait.finish(true) }
        let timer = deadline.map { deadline in
            Task {
                try? await Task.sleep(until: deadline, clock: .continuous)
                wait.finish(false)
            }
        }
        let completed = await withTaskCancellationHandler {
            await wait.value()
        } onCancel: {
            wait.finish(false)
        }
        timer?.cancel()
        return completed
    }

    /// Waits for `future` (its success or failure) until `deadline`, or until cancelled.
    @discardableResult
    public static func until<T: Sendable>(_ deadline: ContinuousClock.Instant?, _ future: EventLoopFuture<T>) async -> Bool {
        await until(deadline) { done in future.whenComplete { _ in done() } }
    }

    /// The first of the callback, the deadline and cancellation; the others find it finished.
    private final class Once: Sendable {
        private enum State {
            case pending
            case waiting(CheckedContinuation<Bool, Never>)
            case finished(Bool)
        }

        private let state = Mutex(State.pending)

        func value() async -> Bool {
            await withCheckedContinuation { continuation in
                let early: Bool? = state.withLock { state in
                    if case .finished(let value) = state { return value }
                    state = .waiting(continuation)
                    return nil
                }
                if let early { continuation.resume(returning: early) }
            }
        }

        func finish(_ value: Bool) {
            let waiting: CheckedContinuation<Bool, Never>? = state.withLock { state in
                switch state {
                case .pending:
                    state = .finished(value)
                    return nil
                case .waiting(let continuation):
                    state = .finished(value)
                    return continuation
                case .finished:
                    return nil
                }
            }
            waiting?.resume(returning: value)
        }
    }
}
