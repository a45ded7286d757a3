import Foundation
import Synchronization

/// A `Mutex` in a class, for a value shared with a closure that outlives the scope (a thread).
final class LockedBox<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
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
