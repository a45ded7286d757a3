import Foundation

/// A value behind a lock, for state shared between the curl thread, informer tasks and readers.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    @discardableResult
    func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

/// Runs blocking work (file reads, child processes) on a fresh thread, never on the cooperative pool.
func runBlocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, any Error>) in
        let thread = Thread {
            do { cont.resume(returning: try work()) } catch { cont.resume(throwing: error) }
        }
        thread.name = "portway-blocking"
        thread.start()
    }
}
