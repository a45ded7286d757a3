import Foundation
import KubeModels

// Leader election over a coordination.k8s.io Lease, as client-go does it: the holder renews the
// Lease every retry period; the others watch it and take it over once they have seen no change
// for a whole lease duration (measured on their own monotonic clock, so clock skew between nodes
// does not matter); a leader that cannot renew within the renew deadline steps down; a leader
// that stops releases the Lease so the next one need not wait. Writes carry the resourceVersion
// read, so two candidates never both win (the loser gets 409 and stays a follower).

/// Timing and identity of one candidate.
public struct LeaderElectionConfig: Hashable, Sendable {
    public var namespace: String
    /// The Lease's name.
    public var name: String
    /// This candidate's identity (e.g. the node name); unique among candidates.
    public var identity: String
    /// How long followers wait, after the last change they saw, before taking over.
    public var leaseDuration: Duration
    /// How long a leader keeps leading without a successful renewal.
    public var renewDeadline: Duration
    /// How often everyone reads (and the leader renews) the Lease.
    public var retryPeriod: Duration

    public init(namespace: String, name: String, identity: String, leaseDuration: Duration = .seconds(15), renewDeadline: Duration = .seconds(10), retryPeriod: Duration = .seconds(2)) {
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.leaseDuration = leaseDuration
        self.renewDeadline = renewDeadline
        self.retryPeriod = retryPeriod
    }
}

/// The role of this candidate.
public enum LeaderRole: Hashable, Sendable {
    /// Another candidate holds the Lease (nil: nobody, or not known yet).
    case follower(holder: String?)
    case leader
    /// Stopped; released the Lease if it held it.
    case stopped
}

/// What the driver must do next.
public enum LeaseAction: Hashable, Sendable {
    /// Create the Lease (it does not exist).
    case create(Lease)
    /// Replace the Lease (its metadata carries the resourceVersion that was read).
    case update(Lease)
    /// Nothing to write; read again after the retry period.
    case wait
}

/// The leader election state machine. Pure: times come in as arguments (`now` from a monotonic
/// clock, `wallTime` the RFC 3339 time written into the Lease), so it is tested without sleeping.
public struct LeaderElectionMachine: Hashable, Sendable {
    public let config: LeaderElectionConfig
    public private(set) var role: LeaderRole = .follower(holder: nil)
    /// The last Lease spec read, and when (monotonic) it was first seen with that content.
    private var observed: LeaseSpec?
    private var observedAt: Duration?
    /// When the leader last renewed successfully.
    private var lastRenewal: Duration?

    public init(config: LeaderElectionConfig) { self.config = config }

    /// Decides what to do with the Lease just read (`nil`: it does not exist).
    public mutating func decide(current: Lease?, now: Duration, wallTime: String) -> LeaseAction {
        guard role != .stopped else { return .wait }
        guard let current else {
            return .create(Lease(
                metadata: ObjectMeta(name: config.name, namespace: config.namespace),
                spec: record(acquireTime: wallTime, renewTime: wallTime, transitions: 0)
            ))
        }
        let spec = current.spec ?? LeaseSpec()
        if spec != observed {
            observed = spec
            observedAt = now
        }
        let holder = spec.holderIdentity.flatMap { $0.isEmpty ? nil : $0 }
        if let holder, holder != config.identity {
            // Expired only after a whole lease duration without a change, on our own clock.
            let duration = spec.leaseDurationSeconds.map { Duration.seconds($0) } ?? config.leaseDuration
            if now < (observedAt ?? now) + duration {
                role = .follower(holder: holder)
                return .wait
            }
        }
        if role == .leader, let lastRenewal, now - lastRenewal > config.renewDeadline {
            // Too long without a renewal: another candidate may have taken over; step down first.
            role = .follower(holder: nil)
        }
        let ours = holder == config.identity
        var lease = current
        lease.spec = record(
            acquireTime: ours ? (spec.acquireTime ?? wallTime) : wallTime,
            renewTime: wallTime,
            transitions: (spec.leaseTransitions ?? 0) + (ours ? 0 : 1)
        )
        return .update(lease)
    }

    /// The write of `decide`'s action succeeded; `stored` is what the server returned.
    public mutating func written(_ stored: Lease, now: Duration) {
        guard role != .stopped else { return }
        observed = stored.spec
        observedAt = now
        lastRenewal = now
        role = .leader
    }

    /// The write failed (409 Conflict: someone else wrote first; or any other error).
    public mutating func writeFailed(now: Duration) {
        guard role == .leader else { return }
        if let lastRenewal, now - lastRenewal > config.renewDeadline {
            role = .follower(holder: nil)
        }
    }

    /// Stops; returns the write that releases the Lease when this candidate holds it: no
    /// holder, a one-second duration, so the next candidate takes over at once.
    public mutating func stop(current: Lease?, wallTime: String) -> LeaseAction {
        let wasLeader = role == .leader
        role = .stopped
        guard wasLeader, var lease = current, lease.spec?.holderIdentity == config.identity else { return .wait }
        lease.spec?.holderIdentity = nil
        lease.spec?.leaseDurationSeconds = 1
        lease.spec?.renewTime = wallTime
        return .update(lease)
    }

    private func record(acquireTime: String, renewTime: String, transitions: Int) -> LeaseSpec {
        LeaseSpec(
            holderIdentity: config.identity, leaseDurationSeconds: Int(config.leaseDuration.components.seconds),
            acquireTime: acquireTime, renewTime: renewTime, leaseTransitions: transitions
        )
    }

    /// `2026-11-24T11:13:15.123456Z` (MicroTime, as Leases carry it).
    public static func microTime(_ date: Date) -> String {
        let seconds = date.timeIntervalSince1970
        var whole = time_t(seconds.rounded(.down))
        let micros = Int(((seconds - Double(whole)) * 1_000_000).rounded(.down))
        var parts = tm()
        gmtime_r(&whole, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let s = String(value)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        let micro = String(micros)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))."
            + String(repeating: "0", count: max(0, 6 - micro.count)) + micro + "Z"
    }
}

extension KubeClient {
    /// PUT an object (replace), with its `metadata.resourceVersion` as the precondition: 409 when
    /// someone else changed it since it was read.
    public func update<R: KubeResource>(_ object: R, namespace: String? = nil) async throws -> R {
        let ns = namespace ?? object.metadata.namespace
        let what = RequestDescription(verb: "update", resource: R.resource, namespace: ns, name: object.metadata.name)
        let body = try Self.encodeWithKind(object)
        let data = try await perform(what, method: "PUT", path: Self.path(R.resource, namespace: ns, name: object.metadata.name), body: body, contentType: "application/json")
        return try Self.decode(R.self, data, what)
    }
}

/// What a candidate knows about its part in the election: its role, and why it cannot take part
/// when the API server refuses (for logs, readiness and metrics).
public struct LeaderElectionStatus: Hashable, Sendable {
    public var role: LeaderRole
    /// The API's answer to the last round's failed Lease read or write, e.g. `notFound: create
    /// leases (coordination.k8s.io) "portway-gateway-leader" in namespace portway-system: namespaces
    /// "portway-system" not found`; nil once a round succeeds. A 409 Conflict (another candidate
    /// wrote first) is the election working, not an error.
    public var error: String?
    /// The HTTP code of that answer (nil for transport errors, or no error).
    public var errorCode: Int?
    /// Rounds refused in a row (0 after a round that succeeded).
    public var refusedRounds: Int

    public init(role: LeaderRole = .follower(holder: nil), error: String? = nil, errorCode: Int? = nil, refusedRounds: Int = 0) {
        self.role = role
        self.error = error
        self.errorCode = errorCode
        self.refusedRounds = refusedRounds
    }

    /// The API said that the Lease's namespace does not exist: no candidate can ever lead.
    public var namespaceMissing: Bool { errorCode == 404 && error?.contains("namespaces \"") == true }
}

/// Runs the state machine against the API server: reads the Lease every retry period, writes
/// what the machine says, and reports role changes and changes of the API's refusal (`status`).
public actor LeaderElector {
    private let client: KubeClient
    private var machine: LeaderElectionMachine
    private let monotonic: @Sendable () -> Duration
    private let sleep: @Sendable (Duration) async throws -> Void
    private let wallClock: @Sendable () -> Date
    private let onChange: @Sendable (LeaderRole) -> Void
    private let onError: @Sendable (LeaderElectionStatus) -> Void
    private var stopRequested = false
    private var lastError: (description: String, code: Int?)?
    private var refusedRounds = 0

    /// `monotonic` and `sleep` pace the loop (tests may inject their own); `wallClock` stamps the Lease.
    /// `onError` runs when the API's answer to a round changes: a new error, another error, or
    /// none any more (the status then has `error == nil`); never again for the same error.
    public init(
        client: KubeClient, config: LeaderElectionConfig, monotonic: @escaping @Sendable () -> Duration = LeaderElector.continuousClock(),
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
        wallClock: @escaping @Sendable () -> Date = { Date() }, onChange: @escaping @Sendable (LeaderRole) -> Void,
        onError: @escaping @Sendable (LeaderElectionStatus) -> Void = { _ in }
    ) {
        self.client = client
        machine = LeaderElectionMachine(config: config)
        self.monotonic = monotonic
        self.sleep = sleep
        self.wallClock = wallClock
        self.onChange = onChange
        self.onError = onError
    }

    public var role: LeaderRole { machine.role }

    /// The role and the API's last refusal, if the last round had one.
    public var status: LeaderElectionStatus {
        LeaderElectionStatus(role: machine.role, error: lastError?.description, errorCode: lastError?.code, refusedRounds: refusedRounds)
    }

    private var now: Duration { monotonic() }

    /// Time elapsed on the continuous clock since this function was called.
    public static func continuousClock() -> @Sendable () -> Duration {
        let start = ContinuousClock.now
        return { ContinuousClock.now - start }
    }

    /// Runs until `stop()` or cancellation, then releases the Lease if it holds it.
    public func run() async {
        let config = machine.config
        while !stopRequested && !Task.isCancelled {
            let before = machine.role
            let failure = await step()
            if machine.role != before { onChange(machine.role) }
            record(failure)
            try? await sleep(config.retryPeriod)
        }
        await release()
    }

    /// One read-decide-write round; returns the API's refusal, if any (409 Conflict is none: the
    /// race between candidates the resourceVersion precondition decides).
    func step() async -> (any Error)? {
        let config = machine.config
        let current: Lease?
        do {
            current = try await client.get(Lease.self, name: config.name, namespace: config.namespace)
        } catch let error as KubeAPIError where error.code == 404 {
            current = nil
        } catch {
            machine.writeFailed(now: now)
            return error
        }
        let action = machine.decide(current: current, now: now, wallTime: LeaderElectionMachine.microTime(wallClock()))
        do {
            switch action {
            case .create(let lease): machine.written(try await client.create(lease), now: now)
            case .update(let lease): machine.written(try await client.update(lease), now: now)
            case .wait: break
            }
        } catch {
            machine.writeFailed(now: now)
            if let error = error as? KubeAPIError, error.code == 409 { return nil }
            return error
        }
        return nil
    }

    /// Keeps the round's refusal and reports it when it differs from the last one.
    private func record(_ failure: (any Error)?) {
        refusedRounds = failure == nil ? 0 : refusedRounds + 1
        let next = failure.map { ("\($0)", ($0 as? KubeAPIError)?.code) }
        guard next?.0 != lastError?.description || next?.1 != lastError?.code else { return }
        lastError = next.map { (description: $0.0, code: $0.1) }
        onError(status)
    }

    /// Asks `run()` to stop after its current round.
    public func stop() { stopRequested = true }

    private func release() async {
        let config = machine.config
        let current = try? await client.get(Lease.self, name: config.name, namespace: config.namespace)
        if case .update(let lease) = machine.stop(current: current, wallTime: LeaderElectionMachine.microTime(wallClock())) {
            _ = try? await client.update(lease)
        }
        onChange(.stopped)
    }
}
