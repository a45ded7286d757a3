import Dispatch
import Glibc

/// Runs `body` until it returns or SIGINT/SIGTERM arrives; a signal cancels it (and a second one
/// is left to the default action, so a stuck process can still be interrupted).
public func runUntilSignalled(_ body: @escaping @Sendable () async throws -> Void) async throws {
    let task = Task { try await body() }
    let sources = [SIGINT, SIGTERM].map { sig -> DispatchSourceSignal in
        signal(sig, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler {
            task.cancel()
            signal(sig, SIG_DFL)
        }
        source.resume()
        return source
    }
    defer { sources.forEach { $0.cancel() } }
    try await task.value
}
