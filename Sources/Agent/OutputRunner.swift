import LoadBalancer
import Logging
import Runtime

/// What the pipeline hands an output.
enum OutputMessage: Sendable {
    case changes(FrontendChanges)
    case sync(DesiredL4State)
    case repair(DesiredL4State)
    case retryDue
}

/// Lets a log line of a given cause through once per `interval`; the repeats in between go to the
/// debug log and are counted, and the next line let through says how many there were. What fails
/// on every retry pass (a map too small) is then logged once a minute, not once a pass.
struct RepeatLimiter {
    let interval: Duration
    private var seen: [String: (last: ContinuousClock.Instant, held: Int)] = [:]

    init(interval: Duration) { self.interval = interval }

    /// nil: hold this one back. Else how many of this cause were held back since the last one.
    mutating func admit(_ cause: String, now: ContinuousClock.Instant) -> Int? {
        if let entry = seen[cause], now - entry.last < interval {
            seen[cause]?.held += 1
            return nil
        }
        let held = seen[cause]?.held ?? 0
        if seen.count >= 256 { seen = seen.filter { now - $0.value.last < interval } }  // stays small
        seen[cause] = (now, 0)
        return held
    }
}

/// Runs one output in its own task: takes together what the pipeline sent while the output was
/// busy (later changes of a frontend replace earlier ones), and retries failed frontends with
/// capped exponential backoff until they succeed or their input changes (a new change resets the
/// backoff and is tried at once).
///
/// The log gets one summary line per pass, one line per cause of failure (however many frontends
/// share it; the same cause again within `repeatInterval` goes to the debug log), and one line for
/// the frontends a retry programmed.
final class OutputRunner: Sendable {
    let output: any L4MapOutput
    let inbox = Inbox<OutputMessage>()
    let policy: BackoffPolicy
    let logger: Logger
    /// How often the same failure (or warning) is logged while it repeats.
    let repeatInterval: Duration
    /// Called after each step with the report (tests, metrics).
    let onReport: (@Sendable (OutputReport) -> Void)?

    init(
        output: any L4MapOutput, policy: BackoffPolicy, logger: Logger, repeatInterval: Duration = .seconds(60),
        onReport: (@Sendable (OutputReport) -> Void)? = nil
    ) {
        self.output = output
        self.policy = policy
        self.logger = logger
        self.repeatInterval = repeatInterval
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
        var limiter = RepeatLimiter(interval: repeatInterval)
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
                    log(report, full.repair ? "repair" : "sync", &limiter)
                    failedNow.formUnion(report.failed)
                }
                if !changes.isEmpty {
                    for (frontend, entry) in changes {
                        desired[frontend] = entry
                        retries[frontend] = nil  // its input changed: tried now, backoff starts over
                    }
                    let report = try await output.apply(changes)
                    log(report, "sync", &limiter)
                    failedNow.formUnion(report.failed)
                }
                let now = clock.now
                if retryDue {
                    let due = retries.filter { $0.value.due <= now }
                    if !due.isEmpty {
                        var again: FrontendChanges = [:]
                        for frontend in due.keys { again[frontend] = .some(desired[frontend]) }
                        let report = try await output.apply(again)
                        log(report, "retry of \(due.count) frontends", &limiter)
                        var recovered: [(frontend: Frontend, attempts: Int)] = []
                        for (frontend, retry) in due {
                            if report.failed.contains(frontend) {
                                retries[frontend] = Retry(attempt: retry.attempt + 1, due: clock.now + policy.retryDelay(attempt: retry.attempt + 1))
                            } else {
                                retries[frontend] = nil
                                recovered.append((frontend, retry.attempt))
                            }
                        }
                        if !recovered.isEmpty {
                            recovered.sort { $0.frontend.description < $1.frontend.description }
                            let named = recovered.prefix(3).map { "\($0.frontend) after \($0.attempts) retries" }.joined(separator: ", ")
                            let more = recovered.count > 3 ? " and \(recovered.count - 3) more" : ""
                            logger.notice("\(output.name): \(recovered.count) frontends programmed: \(named)\(more)")
                        }
                    }
                }
                for frontend in failedNow where retries[frontend] == nil {
                    retries[frontend] = Retry(attempt: 1, due: clock.now + policy.retryDelay(attempt: 1))
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

    private func log(_ report: OutputReport, _ what: String, _ limiter: inout RepeatLimiter) {
        logger.info("\(output.name) \(what): \(report.summary)")
        let now = ContinuousClock.now
        let problems = report.errors.map { ($0, Logger.Level.error) } + report.warnings.map { (OutputReport.Problem(cause: $0, line: $0), Logger.Level.warning) }
        for (problem, level) in problems {
            if let held = limiter.admit(problem.cause, now: now) {
                let repeated = held > 0 ? " (\(held) times more since it was last logged)" : ""
                logger.log(level: level, "\(output.name): \(problem.line)\(repeated)")
            } else {
                logger.debug("\(output.name): again: \(problem.line)")
            }
        }
        for note in report.notes { logger.debug("\(output.name): skipped \(note)") }
        for line in report.debug { logger.debug("\(output.name): \(line)") }
        onReport?(report)
    }
}
