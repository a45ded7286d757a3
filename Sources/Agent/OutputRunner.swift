import LoadBalancer
import Logging
import Runtime

/// What the pipeline hands an output.
enum OutputMessage: Sendable {
    case changes(FrontendChanges)
    case sync(DesiredL4State)
    case repair(DesiredL4State)
}

/// What an output holds of the L7LB redirects (the frontends flagged `l7-load-balancer` that hand
/// their connections to a proxy port), by proxy port: the node's report counts a Gateway port as
/// served only once its redirect is written (`L7ProxyOutput`).
public struct RedirectsWritten: Hashable, Sendable {
    /// Proxy port → how many frontends redirecting to it are written.
    public var written: [UInt16: Int] = [:]
    /// Proxy port → why a frontend redirecting to it could not be written (the first one).
    public var failed: [UInt16: String] = [:]

    public init(written: [UInt16: Int] = [:], failed: [UInt16: String] = [:]) {
        self.written = written
        self.failed = failed
    }
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
/// pipeline sent while the output was busy (later changes of a frontend replace earlier ones). The
/// output owns its failures (`L4MapOutput.retryFailed`); the runner decides when to retry them:
/// with capped exponential backoff while any fail. What a call throws, other than cancellation, is
/// logged and retried the same way: an output never ends by itself.
///
/// The log gets one summary line per pass, one line per cause of failure (however many frontends
/// share it; the same cause again within `repeatInterval` goes to the debug log), and one line when
/// the failed frontends are programmed.
final class OutputRunner: Sendable {
    let output: any L4MapOutput
    let loop = CoalescingLoop<OutputMessage>()
    let policy: BackoffPolicy
    let logger: Logger
    /// How often the same failure (or warning) is logged while it repeats.
    let repeatInterval: Duration
    /// Called after each step with the report (tests, metrics).
    let onReport: (@Sendable (OutputReport) -> Void)?
    /// Called after each step that may have changed them with the L7LB redirects written (the
    /// node's report to the leader).
    let onRedirects: (@Sendable (RedirectsWritten) -> Void)?

    init(
        output: any L4MapOutput, policy: BackoffPolicy, logger: Logger, repeatInterval: Duration = .seconds(60),
        onReport: (@Sendable (OutputReport) -> Void)? = nil, onRedirects: (@Sendable (RedirectsWritten) -> Void)? = nil
    ) {
        self.output = output
        self.policy = policy
        self.logger = logger
        self.repeatInterval = repeatInterval
        self.onReport = onReport
        self.onRedirects = onRedirects
    }

    func send(_ message: OutputMessage) { loop.send(message) }

    /// What the runner keeps between steps: when to retry, not what (the output knows).
    struct State {
        /// Retries since the failures began (0: nothing fails).
        var attempt = 0
        var due: ContinuousClock.Instant?
        /// Frontends failing now (for the log line when they recover).
        var failing = Set<Frontend>()
        /// A full pass whose call failed as a whole (an error, not a frontend): made again when due.
        var pendingFull: (state: DesiredL4State, repair: Bool)?
        /// Changes whose call failed as a whole: sent again when due (newer changes replace them).
        var pendingChanges: FrontendChanges = [:]
        var limiter: RepeatLimiter
        /// The L7LB frontends sent to the output, with their proxy port (few: a Gateway's Service ports).
        var redirects: [Frontend: UInt16] = [:]
        /// Why each failing frontend failed, as the output said.
        var failingBecause: [Frontend: String] = [:]
        /// What `onRedirects` was last told.
        var toldRedirects: RedirectsWritten?
    }

    func run() async {
        var state = State(limiter: RepeatLimiter(interval: repeatInterval))
        await loop.run { messages, _ in
            let due = await self.step(messages, &state)
            self.tellRedirects(&state)
            return due
        }
    }

    /// Tells `onRedirects` what of the L7LB redirects sent is written now: not a failing
    /// frontend, nor one of a call that threw (sent again when due).
    private func tellRedirects(_ state: inout State) {
        guard let onRedirects else { return }
        var out = RedirectsWritten()
        let unsent = state.pendingFull != nil
        for (frontend, port) in state.redirects.sorted(by: { $0.key.description < $1.key.description }) {
            if state.failing.contains(frontend) {
                if out.failed[port] == nil { out.failed[port] = "\(frontend): \(state.failingBecause[frontend] ?? "not written")" }
            } else if !unsent && state.pendingChanges.index(forKey: frontend) == nil {
                out.written[port, default: 0] += 1
            }
        }
        guard out != state.toldRedirects else { return }
        state.toldRedirects = out
        onRedirects(out)
    }

    /// `redirects` after `message`: the L7LB frontends it sends, with their proxy ports.
    static func track(_ message: OutputMessage, _ redirects: inout [Frontend: UInt16]) {
        func port(_ entry: FrontendEntry?) -> UInt16? {
            guard let entry, entry.flags.contains(.l7LoadBalancer), let port = entry.l7ProxyPort, port != 0 else { return nil }
            return port
        }
        switch message {
        case .sync(let desired), .repair(let desired):
            redirects = [:]
            for entry in desired.entries { if let p = port(entry) { redirects[entry.frontend] = p } }
        case .changes(let changes):
            for (frontend, entry) in changes { redirects[frontend] = port(entry) }
        }
    }

    /// One pass over what arrived: the full pass, the changes, then the retry when due. Returns
    /// when to retry (nil: nothing fails).
    private func step(_ messages: [OutputMessage], _ state: inout State) async -> ContinuousClock.Instant? {
        let clock = ContinuousClock()
        var full: (state: DesiredL4State, repair: Bool)?
        var changes: FrontendChanges = [:]
        for message in messages {
            if onRedirects != nil { Self.track(message, &state.redirects) }
            switch message {
            case .sync(let desired): full = (desired, false); changes = [:]
            case .repair(let desired): full = (desired, true); changes = [:]
            case .changes(let more): changes.merge(more) { _, new in new }
            }
        }
        let retryDue = state.due.map { $0 <= clock.now } ?? false
        if full == nil, retryDue, let pending = state.pendingFull { full = pending }
        if full != nil { state.pendingChanges = [:] }
        if retryDue || !changes.isEmpty {
            // A call that threw reached nothing: its changes go again, under newer ones.
            changes = state.pendingChanges.merging(changes) { _, new in new }
            state.pendingChanges = [:]
        }
        var failedNow: Set<Frontend>?
        var thrown = false
        if let full {
            state.pendingFull = nil
            do {
                let report = full.repair ? try await output.repair(full.state) : try await output.sync(full.state)
                log(report, full.repair ? "repair" : "sync", &state.limiter)
                failedNow = report.failed
                state.failingBecause.merge(report.failedBecause) { _, new in new }
            } catch {
                guard !Self.isCancellation(error) else { return nil }
                logger.error("\(output.name) \(full.repair ? "repair" : "sync") failed: \(error); trying again")
                state.pendingFull = full
                thrown = true
            }
        }
        if !changes.isEmpty {
            do {
                let report = try await output.apply(changes)
                log(report, "sync", &state.limiter)
                state.failingBecause.merge(report.failedBecause) { _, new in new }
                // Frontends of these changes that fail join the failing; the others left them.
                var failing = (failedNow ?? state.failing).subtracting(changes.keys)
                failing.formUnion(report.failed)
                failedNow = failing
            } catch {
                guard !Self.isCancellation(error) else { return nil }
                logger.error("\(output.name): applying \(changes.count) changes failed: \(error); trying again")
                state.pendingChanges = changes
                thrown = true
            }
        }
        if let failedNow { state.failing = failedNow }
        state.failingBecause = state.failingBecause.filter { state.failing.contains($0.key) }
        if retryDue, !state.failing.isEmpty {
            // The output programs its own failures again (and what a thrown call did not reach).
            do {
                let report = try await output.retryFailed()
                log(report, "retry of \(state.failing.count) frontends", &state.limiter)
                state.failingBecause.merge(report.failedBecause) { _, new in new }
                let recovered = state.failing.subtracting(report.failed)
                if !recovered.isEmpty {
                    let named = recovered.sorted { $0.description < $1.description }.prefix(3).map(\.description).joined(separator: ", ")
                    let more = recovered.count > 3 ? " and \(recovered.count - 3) more" : ""
                    logger.notice("\(output.name): \(recovered.count) frontends programmed after \(state.attempt) retries: \(named)\(more)")
                }
                state.failing = report.failed
            } catch {
                guard !Self.isCancellation(error) else { return nil }
                logger.error("\(output.name): retrying failed: \(error); trying again")
                thrown = true
            }
        }
        guard !state.failing.isEmpty || thrown || state.pendingFull != nil || !state.pendingChanges.isEmpty else {
            state.attempt = 0
            state.due = nil
            return nil
        }
        // Backoff while anything fails: the first retry soon, later ones further apart.
        if state.due == nil || retryDue {
            state.attempt += 1
            state.due = clock.now + policy.retryDelay(attempt: state.attempt)
        }
        return state.due
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
