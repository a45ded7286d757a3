import Dispatch
import Glibc

/// Runs `body` until it returns or SIGINT/SIGTERM arrives; a signal cancels it (and a second one
/// gets the default action, so a stuck process can still be interrupted). The default actions are
/// restored when `body` has finished.
public func runUntilSignalled(_ body: @escaping @Sendable () async throws -> Void) async throws {
    let task = Task { try await body() }
    let signals = [SIGINT, SIGTERM]
    let sources = signals.map { sig -> DispatchSourceSignal in
        // Ignored, so the dispatch source (not the default action) sees the signal.
        signal(sig, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler {
            task.cancel()
            signal(sig, SIG_DFL)
        }
        source.resume()
        return source
    }
    defer {
        sources.forEach { $0.cancel() }
        signals.forEach { signal($0, SIG_DFL) }
    }
    try await task.value
}
