import LoadBalancer
import Logging
import Runtime

/// What the pipeline hands an output.
enum OutputMessage: Sendable {
    case changes(FrontendChanges)
    case sync(DesiredL4State)
    case repair(DesiredL4State)
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

/// Runs one output in its own task (a step function of `CoalescingLoop`): takes together what the
/// pipeline sent while the output was busy (later changes of a frontend replace earlier ones), and
/// retries failed frontends with capped exponential backoff until they succeed or their input
/// changes (a new change resets the backoff and is tried at once). What a call throws, other than
/// cancellation, is logged and retried with the same backoff: an output never ends by itself.
///
/// The log gets one summary line per pass, one line per cause of failure (however many frontends
/// share it; the same cause again within `repeatInterval` goes to the debug log), and one line for
/// the frontends a retry programmed.
final class OutputRunner: Sendable {
    let output: any L4MapOutput
    let loop = CoalescingLoop<OutputMessage>()
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

    func send(_ message: OutputMessage) { loop.send(message) }

    struct Retry {
        var attempt: Int
        var due: ContinuousClock.Instant
    }

    /// What the runner keeps between steps.
    struct State {
        /// The last desired entry of every frontend (what a retry programs again).
        var desired: [Frontend: FrontendEntry] = [:]
        var retries: [Frontend: Retry] = [:]
        /// A full pass whose call failed as a whole (an error, not a frontend): tried again when due.
        var pendingFull: (state: DesiredL4State, repair: Bool, retry: Retry)?
        var limiter: RepeatLimiter
    }

    func run() async {
        var state = State(limiter: RepeatLimiter(interval: repeatInterval))
        await loop.run { messages, _ in
            await self.step(messages, &state)
        }
    }

    /// One pass over what arrived: full passes, changes, then the retries that are due. Returns the
    /// earliest retry deadline.
    private func step(_ messages: [OutputMessage], _ state: inout State) async -> ContinuousClock.Instant? {
        let clock = ContinuousClock()
        var full: (state: DesiredL4State, repair: Bool)?
        var changes: FrontendChanges = [:]
        for message in messages {
            switch message {
            case .sync(let desired): full = (desired, false); changes = [:]
            case .repair(let desired): full = (desired, true); changes = [:]
            case .changes(let more): changes.merge(more) { _, new in new }
            }
        }
        if full == nil, let pending = state.pendingFull, pending.retry.due <= clock.now { full = (pending.state, pending.repair) }
        var failedNow = Set<Frontend>()
        if let full {
            state.desired = Dictionary(full.state.entries.map { ($0.frontend, $0) }, uniquingKeysWith: { first, _ in first })
            state.retries = [:]
            let attempt = state.pendingFull.map { $0.retry.attempt + 1 } ?? 1
            state.pendingFull = nil
            do {
                let report = full.repair ? try await output.repair(full.state) : try await output.sync(full.state)
                log(report, full.repair ? "repair" : "sync", &state.limiter)
                failedNow.formUnion(report.failed)
            } catch {
                guard !Self.isCancellation(error) else { return nil }
                logger.error("\(output.name) \(full.repair ? "repair" : "sync") failed: \(error); trying again")
                state.pendingFull = (full.state, full.repair, Retry(attempt: attempt, due: clock.now + policy.retryDelay(attempt: attempt)))
            }
        }
        if !changes.isEmpty {
            for (frontend, entry) in changes {
                state.desired[frontend] = entry
                state.retries[frontend] = nil  // its input changed: tried now, backoff starts over
            }
            do {
                let report = try await output.apply(changes)
                log(report, "sync", &state.limiter)
                failedNow.formUnion(report.failed)
            } catch {
                guard !Self.isCancellation(error) else { return nil }
                logger.error("\(output.name): applying \(changes.count) changes failed: \(error); trying again")
                failedNow.formUnion(changes.keys)
            }
        }
        let now = clock.now
        let due = state.retries.filter { $0.value.due <= now }
        if !due.isEmpty {
            var again: FrontendChanges = [:]
            for frontend in due.keys { again[frontend] = .some(state.desired[frontend]) }
            var failedAgain = Set(due.keys)
            do {
                let report = try await output.apply(again)
                log(report, "retry of \(due.count) frontends", &state.limiter)
                failedAgain = report.failed
            } catch {
                guard !Self.isCancellation(error) else { return nil }
                logger.error("\(output.name): retrying \(due.count) frontends failed: \(error); trying again")
            }
            var recovered: [(frontend: Frontend, attempts: Int)] = []
            for (frontend, retry) in due {
                if failedAgain.contains(frontend) {
                    state.retries[frontend] = Retry(attempt: retry.attempt + 1, due: clock.now + policy.retryDelay(attempt: retry.attempt + 1))
                } else {
                    state.retries[frontend] = nil
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
        for frontend in failedNow where state.retries[frontend] == nil {
            state.retries[frontend] = Retry(attempt: 1, due: clock.now + policy.retryDelay(attempt: 1))
        }
        return ([state.pendingFull?.retry.due].compactMap { $0 } + state.retries.values.map(\.due)).min()
    }

    /// Shutdown cancels the task: a call that ends with that is not a failure to retry.
    private static func isCancellation(_ error: any Error) -> Bool {
        error is CancellationError || Task.isCancelled
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
