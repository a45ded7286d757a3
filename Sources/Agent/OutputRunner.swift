import LoadBalancer
import Logging

/// Capped exponential backoff for frontends an output failed to program.
public struct RetryPolicy: Hashable, Sendable {
    public var initial: Duration
    public var cap: Duration

    public init(initial: Duration = .milliseconds(500), cap: Duration = .seconds(60)) {
        self.initial = initial
        self.cap = cap
    }

    /// The delay before attempt `attempt` (1 = the first retry): initial × 2^(attempt-1), at most `cap`.
    public func delay(attempt: Int) -> Duration {
        var delay = initial
        for _ in 1..<max(attempt, 1) {
            delay *= 2
            if delay >= cap { return cap }
        }
        return min(delay, cap)
    }
}

/// What the pipeline hands an output.
enum OutputMessage: Sendable {
    case changes(FrontendChanges)
    case sync(DesiredL4State)
    case repair(DesiredL4State)
    case retryDue
}

/// Runs one output in its own task: takes together what the pipeline sent while the output was
/// busy (later changes of a frontend replace earlier ones), and retries failed frontends with
/// capped exponential backoff until they succeed or their input changes (a new change resets the
/// backoff and is tried at once).
final class OutputRunner: Sendable {
    let output: any L4MapOutput
    let inbox = Inbox<OutputMessage>()
    let policy: RetryPolicy
    let logger: Logger
    /// Called after each step with the report (tests, metrics).
    let onReport: (@Sendable (OutputReport) -> Void)?

    init(output: any L4MapOutput, policy: RetryPolicy, logger: Logger, onReport: (@Sendable (OutputReport) -> Void)? = nil) {
        self.output = output
        self.policy = policy
        self.logger = logger
        self.onReport = onReport
    }

    func send(_ message: OutputMessage) { inbox.push(message) }

    struct Retry {
        var attempt: Int
        var due: ContinuousClock.Instant
    }

    func run() async {
        let clock = ContinuousClock()
        var desired: [Frontend: FrontendEntry] = [:]
        var retries: [Frontend: Retry] = [:]
        var timer: Task<Void, Never>?
        defer { timer?.cancel() }
        do {
            while let batch = await inbox.next() {
                var full: (state: DesiredL4State, repair: Bool)?
                var changes: FrontendChanges = [:]
                var retryDue = false
                for message in batch {
                    switch message {
                    case .sync(let state): full = (state, false); changes = [:]
                    case .repair(let state): full = (state, true); changes = [:]
                    case .changes(let more): changes.merge(more) { _, new in new }
                    case .retryDue: retryDue = true
                    }
                }
                var failedNow = Set<Frontend>()
                if let full {
                    desired = Dictionary(full.state.entries.map { ($0.frontend, $0) }, uniquingKeysWith: { first, _ in first })
                    retries = [:]
                    let report = full.repair ? try await output.repair(full.state) : try await output.sync(full.state)
                    log(report, full.repair ? "repair" : "sync")
                    failedNow.formUnion(report.failed)
                }
                if !changes.isEmpty {
                    for (frontend, entry) in changes {
                        desired[frontend] = entry
                        retries[frontend] = nil  // its input changed: tried now, backoff starts over
                    }
                    let report = try await output.apply(changes)
                    log(report, "sync")
                    failedNow.formUnion(report.failed)
                }
                let now = clock.now
                if retryDue {
                    let due = retries.filter { $0.value.due <= now }
                    if !due.isEmpty {
                        var again: FrontendChanges = [:]
                        for frontend in due.keys { again[frontend] = .some(desired[frontend]) }
                        let report = try await output.apply(again)
                        log(report, "retry of \(due.count) frontends")
                        for (frontend, retry) in due {
                            if report.failed.contains(frontend) {
                                retries[frontend] = Retry(attempt: retry.attempt + 1, due: clock.now + policy.delay(attempt: retry.attempt + 1))
                            } else {
                                retries[frontend] = nil
                                logger.notice("\(output.name): \(frontend) programmed after \(retry.attempt) retries")
                            }
                        }
                    }
                }
                for frontend in failedNow where retries[frontend] == nil {
                    retries[frontend] = Retry(attempt: 1, due: clock.now + policy.delay(attempt: 1))
                }
                timer?.cancel()
                timer = nil
                if let next = retries.values.map(\.due).min() {
                    let inbox = inbox
                    timer = Task {
                        do { try await clock.sleep(until: next) } catch { return }
                        inbox.push(.retryDue)
                    }
                }
            }
        } catch {
            // Cancelled while the output worked: shutdown does not wait for it.
        }
    }

    private func log(_ report: OutputReport, _ what: String) {
        logger.info("\(output.name) \(what): \(report.summary)")
        for error in report.errors { logger.error("\(output.name): \(error)") }
        for warning in report.warnings { logger.warning("\(output.name): \(warning)") }
        for note in report.notes { logger.debug("\(output.name): skipped \(note)") }
        for line in report.debug { logger.debug("\(output.name): \(line)") }
        onReport?(report)
    }
}
