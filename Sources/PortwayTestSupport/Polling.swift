import Testing

/// Why `eventually` gave up: what it waited for, for how long, and where it was called.
public struct EventuallyFailed: Error, CustomStringConvertible {
    public var what: String
    public var timeout: Duration
    public var sourceLocation: SourceLocation
    public var description: String { "not within \(timeout): \(what) (\(sourceLocation))" }
}

/// Polls `condition` until it holds: the way tests wait for something to happen. A deadline (a
/// generous one: at the start of a full run, hundreds of tests share two cores and a test's first
/// steps have waited 35 s for a thread) only keeps a broken test from hanging; it is never a
/// timing assertion. On timeout the test fails with `what` (evaluated then, so it can describe the
/// state at that moment) at the caller's line, and `EventuallyFailed` is thrown so the test stops.
///
/// To assert that something does *not* happen, wait first for a positive signal that it had its
/// chance (a later event in the same order, a log line of the process), never on a sleep.
public func eventually(
    _ what: @autoclosure () -> String, timeout: Duration = .seconds(60), every interval: Duration = .milliseconds(10),
    sourceLocation: SourceLocation = #_sourceLocation, _ condition: () async throws -> Bool
) async throws {
    if try await waitUntil(timeout: timeout, every: interval, condition) { return }
    let failure = EventuallyFailed(what: what(), timeout: timeout, sourceLocation: sourceLocation)
    Issue.record("\(failure.what): not within \(timeout)", sourceLocation: sourceLocation)
    throw failure
}

/// The poll under `eventually`, without failing: whether `condition` held before `timeout`. For a
/// caller that asserts the answer itself or must go on (clean up) after a timeout; prefer
/// `eventually`.
@discardableResult
public func waitUntil(
    timeout: Duration = .seconds(20), every interval: Duration = .milliseconds(10), _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        do { try await Task.sleep(for: interval) } catch { break }  // cancelled: one last look
    }
    return try await condition()
}
