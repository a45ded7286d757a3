import Foundation
import KubeAPI
import KubeAPITestSupport
import KubeModels
import Testing

private let config = LeaderElectionConfig(
    namespace: "kube-system", name: "portway-leader", identity: "node-a",
    leaseDuration: .seconds(15), renewDeadline: .seconds(10), retryPeriod: .seconds(2)
)

private func lease(holder: String?, renew: String = "t0", transitions: Int = 0, version: String = "1") -> Lease {
    Lease(
        metadata: ObjectMeta(name: "portway-leader", namespace: "kube-system", resourceVersion: version),
        spec: LeaseSpec(holderIdentity: holder, leaseDurationSeconds: 15, acquireTime: "t0", renewTime: renew, leaseTransitions: transitions)
    )
}

/// The state machine, driven with explicit times: no sleeping.
@Suite struct LeaderElectionMachineTests {
    @Test func createsAMissingLeaseAndLeadsOnceWritten() {
        var machine = LeaderElectionMachine(config: config)
        guard case .create(let created) = machine.decide(current: nil, now: .zero, wallTime: "w1") else {
            Issue.record("expected create")
            return
        }
        #expect(created.spec == LeaseSpec(holderIdentity: "node-a", leaseDurationSeconds: 15, acquireTime: "w1", renewTime: "w1", leaseTransitions: 0))
        #expect(machine.role == .follower(holder: nil))
        machine.written(created, now: .zero)
        #expect(machine.role == .leader)
    }

    @Test func renewsItsOwnLeaseKeepingAcquireTime() {
        var machine = LeaderElectionMachine(config: config)
        machine.written(lease(holder: "node-a"), now: .zero)
        guard case .update(let renewed) = machine.decide(current: lease(holder: "node-a", version: "7"), now: .seconds(2), wallTime: "w2") else {
            Issue.record("expected update")
            return
        }
        #expect(renewed.metadata.resourceVersion == "7")  // the precondition of the write
        #expect(renewed.spec?.acquireTime == "t0")
        #expect(renewed.spec?.renewTime == "w2")
        #expect(renewed.spec?.leaseTransitions == 0)
    }

    @Test func waitsWhileAnotherHolderRenewsAndTakesOverWhenItStops() {
        var machine = LeaderElectionMachine(config: config)
        #expect(machine.decide(current: lease(holder: "node-b", renew: "r1", transitions: 3), now: .seconds(0), wallTime: "w") == .wait)
        #expect(machine.role == .follower(holder: "node-b"))
        // node-b keeps renewing: each change restarts the wait.
        #expect(machine.decide(current: lease(holder: "node-b", renew: "r2", transitions: 3), now: .seconds(10), wallTime: "w") == .wait)
        #expect(machine.decide(current: lease(holder: "node-b", renew: "r2", transitions: 3), now: .seconds(24), wallTime: "w") == .wait)
        // No change for 15 s (our clock): expired.
        guard case .update(let taken) = machine.decide(current: lease(holder: "node-b", renew: "r2", transitions: 3), now: .seconds(25), wallTime: "w25") else {
            Issue.record("expected a takeover")
            return
        }
        #expect(taken.spec?.holderIdentity == "node-a")
        #expect(taken.spec?.acquireTime == "w25")
        #expect(taken.spec?.leaseTransitions == 4)
    }

    @Test func aReleasedLeaseIsTakenAtOnce() {
        var machine = LeaderElectionMachine(config: config)
        guard case .update(let taken) = machine.decide(current: lease(holder: nil, transitions: 1), now: .zero, wallTime: "w") else {
            Issue.record("expected update")
            return
        }
        #expect(taken.spec?.holderIdentity == "node-a")
        #expect(taken.spec?.leaseTransitions == 2)
    }

    @Test func aLeaderThatCannotRenewStepsDownAfterTheRenewDeadline() {
        var machine = LeaderElectionMachine(config: config)
        machine.written(lease(holder: "node-a"), now: .zero)
        machine.writeFailed(now: .seconds(4))
        #expect(machine.role == .leader)
        machine.writeFailed(now: .seconds(11))
        #expect(machine.role == .follower(holder: nil))
    }

    @Test func aLeaderThatSeesAnotherHolderFollows() {
        var machine = LeaderElectionMachine(config: config)
        machine.written(lease(holder: "node-a"), now: .zero)
        #expect(machine.decide(current: lease(holder: "node-b", renew: "r9"), now: .seconds(2), wallTime: "w") == .wait)
        #expect(machine.role == .follower(holder: "node-b"))
    }

    @Test func stoppingReleasesOnlyALeaseItHolds() {
        var leader = LeaderElectionMachine(config: config)
        leader.written(lease(holder: "node-a"), now: .zero)
        guard case .update(let released) = leader.stop(current: lease(holder: "node-a", version: "9"), wallTime: "w") else {
            Issue.record("expected a release")
            return
        }
        #expect(released.spec?.holderIdentity == nil)
        #expect(released.spec?.leaseDurationSeconds == 1)
        #expect(released.metadata.resourceVersion == "9")
        #expect(leader.role == .stopped)
        #expect(leader.decide(current: nil, now: .seconds(1), wallTime: "w") == .wait)

        var follower = LeaderElectionMachine(config: config)
        _ = follower.decide(current: lease(holder: "node-b"), now: .zero, wallTime: "w")
        #expect(follower.stop(current: lease(holder: "node-b"), wallTime: "w") == .wait)
    }

    @Test func microTimeHasSixFractionDigits() {
        #expect(LeaderElectionMachine.microTime(Date(timeIntervalSince1970: 1_795_000_000.25)) == "2026-11-18T11:06:40.250000Z")
        #expect(LeaderElectionMachine.microTime(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000000Z")
    }
}

/// Two electors against the test API server: exactly one leads; stopping it hands over. No upper
/// time bounds (the machine may be loaded): the lease duration is far longer than the test waits,
/// so a hand-over seen in time can only come from the release, not from expiry.
@Suite struct LeaderElectionAgainstAPIServerTests {
    /// Every role change of each candidate, in order.
    final class Roles: @unchecked Sendable {
        private let lock = NSLock()
        private var history: [String: [LeaderRole]] = [:]
        func set(_ id: String, _ role: LeaderRole) { lock.withLock { history[id, default: []].append(role) } }
        func get(_ id: String) -> LeaderRole? { lock.withLock { history[id]?.last } }
        func all(_ id: String) -> [LeaderRole] { lock.withLock { history[id] ?? [] } }
    }

    static func config(_ id: String, leaseDuration: Duration = .seconds(60)) -> LeaderElectionConfig {
        LeaderElectionConfig(namespace: "kube-system", name: "portway-leader", identity: id,
                             leaseDuration: leaseDuration, renewDeadline: leaseDuration * 2 / 3, retryPeriod: .milliseconds(100))
    }

    @Test func exactlyOneLeadsAndStoppingHandsOver() async throws {
        let server = try await TestAPIServer.started()
        let roles = Roles()
        func elector(_ id: String) -> LeaderElector {
            LeaderElector(client: KubeClient(config: server.clusterConfig()), config: Self.config(id), onChange: { roles.set(id, $0) })
        }
        let a = elector("node-a")
        let b = elector("node-b")
        let runA = Task { await a.run() }
        try await eventually("node-a leads") { roles.get("node-a") == .leader }
        #expect(roles.get("node-a") == .leader)
        let runB = Task { await b.run() }
        try await eventually("node-b follows node-a") { roles.get("node-b") == .follower(holder: "node-a") }
        #expect(await b.role == .follower(holder: "node-a"))
        #expect(await a.role == .leader)

        // Stopping the leader releases the Lease: the other takes over long before the 60 s lease
        // duration could have run out.
        let stoppedAt = ContinuousClock.now
        await a.stop()
        await runA.value
        #expect(roles.all("node-a") == [.leader, .stopped])
        try await eventually("node-b leads: \(roles.all("node-b"))") { roles.get("node-b") == .leader }
        #expect(roles.all("node-b") == [.follower(holder: "node-a"), .leader])
        #expect(ContinuousClock.now - stoppedAt < .seconds(60))
        let stored = try await KubeClient(config: server.clusterConfig()).get(Lease.self, name: "portway-leader", namespace: "kube-system")
        #expect(stored.spec?.holderIdentity == "node-b")
        #expect(stored.spec?.leaseTransitions == 1)  // created by a (0), released by a, taken by b (1)

        await b.stop()
        await runB.value
        try await server.stop()
    }

    @Test func aCrashedLeaderIsReplacedAfterTheLeaseDuration() async throws {
        let server = try await TestAPIServer.started()
        let client = KubeClient(config: server.clusterConfig())
        // A Lease held by a node that no longer renews.
        _ = try await client.create(Lease(
            metadata: ObjectMeta(name: "portway-leader", namespace: "kube-system"),
            spec: LeaseSpec(holderIdentity: "node-gone", leaseDurationSeconds: 1, acquireTime: "2026-11-26T00:00:00.000000Z", renewTime: "2026-11-26T00:00:00.000000Z", leaseTransitions: 0)
        ))
        let roles = Roles()
        let b = LeaderElector(client: client, config: Self.config("node-b", leaseDuration: .seconds(1)), onChange: { roles.set("node-b", $0) })
        let started = ContinuousClock.now
        let run = Task { await b.run() }
        try await eventually("node-b leads: \(roles.all("node-b"))") { roles.get("node-b") == .leader }
        // It first followed the old holder, and waited a whole lease duration on its own clock.
        #expect(roles.all("node-b") == [.follower(holder: "node-gone"), .leader])
        #expect(ContinuousClock.now - started >= .seconds(1))
        await b.stop()
        await run.value
        try await server.stop()
    }
}

/// The same hand-over against a real kube-apiserver (its Lease validation, MicroTime parsing and
/// resourceVersion preconditions). Skipped, saying why, without KUBEBUILDER_ASSETS.
@Suite("envtest: leader election", .serialized, .enabled(if: EnvtestControlPlane.availableOrPrintSkip(), "needs KUBEBUILDER_ASSETS with kube-apiserver and etcd"))
struct LeaderElectionEnvtestTests {
    @Test func exactlyOneLeadsAndStoppingHandsOver() async throws {
        let plane = try await EnvtestControlPlane.start(crdDirectory: crdDirectory)
        defer { plane.stop() }
        let roles = LeaderElectionAgainstAPIServerTests.Roles()
        func elector(_ id: String) -> LeaderElector {
            LeaderElector(client: KubeClient(config: plane.clusterConfig()), config: LeaderElectionAgainstAPIServerTests.config(id), onChange: { roles.set(id, $0) })
        }
        let a = elector("node-a")
        let b = elector("node-b")
        let runA = Task { await a.run() }
        let runB = Task { await b.run() }
        try await eventually("exactly one of node-a and node-b leads") {
            let roleA = await a.role
            let roleB = await b.role
            return (roleA == .leader && roleB == .follower(holder: "node-a")) || (roleB == .leader && roleA == .follower(holder: "node-b"))
        }
        let aLeads = await a.role == .leader
        #expect(await b.role == (aLeads ? .follower(holder: "node-a") : .leader), "exactly one leader")
        let (leader, leaderRun, other, otherID) = aLeads ? (a, runA, b, "node-b") : (b, runB, a, "node-a")
        let client = KubeClient(config: plane.clusterConfig())
        let held = try await client.get(Lease.self, name: "portway-leader", namespace: "kube-system")
        #expect(held.spec?.holderIdentity == (aLeads ? "node-a" : "node-b"))
        #expect(held.spec?.renewTime?.count == 27)  // MicroTime, accepted by the API server

        // Released on stop: taken over long before the 60 s lease duration.
        await leader.stop()
        await leaderRun.value
        try await eventually("the other elector leads") { await other.role == .leader }
        #expect(await other.role == .leader)
        #expect(try await client.get(Lease.self, name: "portway-leader", namespace: "kube-system").spec?.holderIdentity == otherID)
        await other.stop()
        await (aLeads ? runB : runA).value
    }
}
