import Foundation
import Glibc
import ServiceLifecycle
import Synchronization

/// The write end of the signal pipe, read by the async-signal-safe handler.
private let signalPipeWriter = Atomic<Int32>(-1)

/// SIGINT/SIGTERM handling for the agent: the first signal asks for a graceful shutdown, a second
/// one exits at once (128 + signal), so a stuck process can still be stopped.
///
/// The handlers are installed with sigaction and stay installed until the process exits. A signal
/// only writes its number to a pipe (async-signal-safe); a dedicated thread reads the pipe. No
/// signal ever gets the default action while the agent runs or after it has stopped, whichever
/// thread the kernel delivers it to. (The earlier design ignored the signals for a dispatch
/// source and restored the default action when done: a signal arriving around that restore
/// killed the finished process, exit 143, about once in 20 runs.)
public final class ShutdownSignals: Sendable {
    private let received = Atomic<Int>(0)

    /// Installs the handlers; `onFirst` runs (on the watcher thread) when the first signal arrives.
    public init(signals: [Int32] = [SIGINT, SIGTERM], onFirst: @escaping @Sendable (Int32) -> Void) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { fatalError("pipe() failed: \(errno)") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        signalPipeWriter.store(fds[1], ordering: .sequentiallyConsistent)
        for sig in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { sig in
                var byte = UInt8(truncatingIfNeeded: sig)
                _ = write(signalPipeWriter.load(ordering: .relaxed), &byte, 1)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(sig, &action, nil)
        }
        let reader = fds[0]
        let thread = Thread { [self] in
            var byte: UInt8 = 0
            while true {
                let n = read(reader, &byte, 1)
                if n < 0 && errno == EINTR { continue }
                guard n == 1 else { return }
                let count = self.received.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue
                if count == 1 {
                    onFirst(Int32(byte))
                } else {
                    // A second signal: the graceful shutdown is stuck; leave now.
                    _exit(128 + Int32(byte))
                }
            }
        }
        thread.name = "portway-signals"
        thread.start()
    }
}

/// Connects a shutdown request (a signal) to whatever the agent is doing: the setup before the
/// services run (cancelled), or the ServiceGroup (a graceful shutdown).
public final class ShutdownTrigger: Sendable {
    private struct State {
        var triggered = false
        var cancelSetup: (@Sendable () -> Void)?
        var group: ServiceGroup?
    }
    private let state = Mutex(State())

    public init() {}

    /// How long a graceful shutdown may take before the ServiceGroup cancels what is still running
    /// (an API request to a server that does not answer, say): well inside Kubernetes' default
    /// 30 s grace period. The L7 proxy bounds its own stop (drain + 1 s) far below this.
    public static let gracefulShutdownLimit: Duration = .seconds(10)

    /// Asks for shutdown; safe from any thread, any number of times.
    public func trigger() {
        let (cancel, group) = state.withLock { s -> ((@Sendable () -> Void)?, ServiceGroup?) in
            s.triggered = true
            return (s.cancelSetup, s.group)
        }
        cancel?()
        if let group { Task { await group.triggerGracefulShutdown() } }
    }

    /// Runs setup work, cancelled (`CancellationError`) if shutdown is asked for meanwhile.
    public func unlessTriggered<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let task = Task { try await body() }
        let triggered = state.withLock { s -> Bool in
            if !s.triggered { s.cancelSetup = { task.cancel() } }
            return s.triggered
        }
        if triggered { task.cancel() }
        defer { state.withLock { $0.cancelSetup = nil } }
        return try await task.value
    }

    /// Runs `group` until its services end; a trigger (before or during) shuts it down gracefully.
    public func run(_ group: ServiceGroup) async throws {
        let triggered = state.withLock { s -> Bool in
            s.group = group
            return s.triggered
        }
        if triggered { await group.triggerGracefulShutdown() }
        try await group.run()
    }
}
