import Agent
import Foundation
import KubeAPI
import KubeModels
import LoadBalancer
import Logging
import Runtime
import ServiceLifecycle
import Synchronization
import Testing

/// An output that keeps what it was told in memory, with injectable failures and stalls.
final class MemoryOutput: L4MapOutput {
    let name: String
    struct State {
        var entries: [Frontend: FrontendEntry] = [:]
        var attempts: [Frontend: Int] = [:]
        /// Each frontend fails this many attempts before it is programmed.
        var failuresLeft: [Frontend: Int] = [:]
        /// This many calls to `apply` throw (an output's own error, not a cancellation).
        var throwsLeft = 0
        /// What failed, as last desired (the output owns its failures, as the map writer does).
        var failed: [Frontend: FrontendEntry?] = [:]
        var syncs = 0
        var repairs = 0
        var applies = 0
        /// Every call in order: `sync`, `repair`, or `apply` with the frontends it was given.
        var calls: [String] = []
    }
    let state = Mutex(State())
    /// When set, `apply` waits on this blocking call (a stuck output).
    let stall: (@Sendable () async throws -> Void)?

    init(name: String = "memory", stall: (@Sendable () async throws -> Void)? = nil) {
        self.name = name
        self.stall = stall
    }

    var entries: [Frontend: FrontendEntry] { state.withLock { $0.entries } }

    struct Broken: Error {}

    func apply(_ changes: FrontendChanges) async throws -> OutputReport {
        try await stall?()
        let fails = state.withLock { s in
            defer { s.throwsLeft = max(0, s.throwsLeft - 1) }
            return s.throwsLeft > 0
        }
        if fails { throw Broken() }
        return state.withLock { s in
            s.applies += 1
            s.calls.append("apply " + changes.keys.map(\.description).sorted().joined(separator: ","))
            var failed = Set<Frontend>()
            for (frontend, entry) in changes {
                s.attempts[frontend, default: 0] += 1
                if let left = s.failuresLeft[frontend], left > 0 {
                    s.failuresLeft[frontend] = left - 1
                    failed.insert(frontend)
                    s.failed[frontend] = entry
                    continue
                }
                s.failed[frontend] = nil
                s.entries[frontend] = entry
            }
            return OutputReport(failed: failed, summary: "\(changes.count) changes")
        }
    }

    func sync(_ state: DesiredL4State) async throws -> OutputReport {
        self.state.withLock { s in
            s.syncs += 1
            s.calls.append("sync")
            s.entries = Dictionary(state.entries.map { ($0.frontend, $0) }, uniquingKeysWith: { a, _ in a })
        }
        return OutputReport(summary: "\(state.entries.count) frontends")
    }

    func repair(_ state: DesiredL4State) async throws -> OutputReport {
        self.state.withLock {
            $0.repairs += 1
            $0.calls.append("repair")
        }
        return try await sync(state)
    }

    func retryFailed() async throws -> OutputReport {
        try await apply(state.withLock { $0.failed })
    }
}

final class Flag: Sendable {
    let value = Atomic<Bool>(false)
}

/// A source the test drives by hand.
struct ManualSource: ClusterStateSource {
    let events = Inbox<SourceEvent>()

    func run(sink: @escaping SourceSink) async {
        while let batch = await events.next() { for event in batch { sink(event) } }
    }
}

@Suite("Agent pipeline: changes -> keys -> translate -> allocate -> outputs (in memory)")
struct PipelineTests {
    let options = AgentOptions(
        nodeName: "node-a", nodeAddresses: [IPAddress("192.0.2.10")!], resyncInterval: nil,
        retry: BackoffPolicy.retries(initial: .milliseconds(5), cap: .milliseconds(40)))

    func start(_ source: ManualSource, outputs: [any L4MapOutput], options: AgentOptions? = nil) -> (ServiceGroup, Task<Void, any Error>) {
        let pipeline = AgentPipeline(options: options ?? self.options, logger: Logger(label: "test.pipeline"))
        let group = ServiceGroup(configuration: .init(
            services: pipeline.services(source: source, outputs: outputs).map { .init(service: $0) }, logger: Logger(label: "test.group")))
        return (group, Task { try await group.run() })
    }

    @Test("random changes through the whole pipeline: the output equals a from-scratch translation")
    func modelCheck() async throws {
        let source = ManualSource()
        let output = MemoryOutput()
        let (group, task) = start(source, outputs: [output])
        var services: [String: KubeModels.Service] = [:]
        var slices: [String: EndpointSlice] = [:]
        var rng = SeededRandom()
        source.events.push(.snapshot(ClusterSnapshot()))
        for round in 0..<20 {
            var batch: [ClusterChange] = []
            for _ in 0..<Int.random(in: 1...15, using: &rng) {
                let name = ["a", "b", "c", "d"].randomElement(using: &rng)!
                if Bool.random(using: &rng) {
                    let s = service(name, clusterIP: "10.96.0.\(Int.random(in: 1...3, using: &rng))", nodePort: Bool.random(using: &rng) ? 30000 + round % 2 : nil)
                    services[name] = Int.random(in: 0..<4, using: &rng) == 0 ? nil : s
                    batch.append(.services(ObjectKey(namespace: "demo", name: name), services[name].map { [$0] } ?? []))
                } else {
                    let owner = ["a", "b", "c", "d"].randomElement(using: &rng)!
                    let endpoints = slice("\(name)-1", service: owner, addresses: ["10.244.0.\(Int.random(in: 1...3, using: &rng))"])
                    slices[name] = endpoints
                    batch.append(.endpointSlices(ObjectKey(namespace: "demo", name: "\(name)-1"), [endpoints]))
                }
            }
            // Sometimes as one event, sometimes as many (the inbox takes together what is waiting).
            if Bool.random(using: &rng) { source.events.push(.changes(batch)) } else { for c in batch { source.events.push(.changes([c])) } }
            let expected = Translator.translate(
                ClusterSnapshot(services: Array(services.values), endpointSlices: Array(slices.values)), options: options.translatorOptions)
            try await eventually("round \(round) programmed (seed \(rng.seed))") {
                DesiredL4State(entries: Array(output.entries.values)).entries == expected.entries
            }
        }
        await group.triggerGracefulShutdown()
        try await task.value
    }

    @Test("a failed frontend is retried with backoff until it succeeds; the others are programmed at once")
    func retry() async throws {
        let source = ManualSource()
        let output = MemoryOutput()
        let failing = Frontend(address: IPAddress("10.96.0.2")!, port: 80, proto: .tcp)
        output.state.withLock { $0.failuresLeft[failing] = 3 }
        let (group, task) = start(source, outputs: [output])
        source.events.push(.snapshot(ClusterSnapshot()))
        source.events.push(.changes([
            .services(ObjectKey(namespace: "demo", name: "a"), [service("a", clusterIP: "10.96.0.1")]),
            .services(ObjectKey(namespace: "demo", name: "b"), [service("b", clusterIP: "10.96.0.2")]),
        ]))
        try await eventually("retried until programmed") { output.entries[failing] != nil }
        #expect(output.entries.count == 2)
        #expect(output.state.withLock { $0.attempts[failing] } == 4, "3 failures, then success")
        await group.triggerGracefulShutdown()
        try await task.value
    }

    @Test("one stuck output does not stall another; shutdown does not wait for it")
    func independentOutputs() async throws {
        let source = ManualSource()
        let finishedStuckWork = Flag()
        let executor = BlockingExecutor(label: "test.stuck")
        // The stuck call blocks until the test releases it after shutdown (at most 120 s), so a slow,
        // loaded machine cannot let it finish early: shutdown must not wait for it.
        let release = DispatchSemaphore(value: 0)
        let stuck = MemoryOutput(name: "stuck", stall: {
            _ = try await executor.run {
                _ = release.wait(timeout: .now() + 120)
                finishedStuckWork.value.store(true, ordering: .relaxed)
            }
        })
        let healthy = MemoryOutput(name: "healthy")
        let (group, task) = start(source, outputs: [stuck, healthy])
        source.events.push(.snapshot(ClusterSnapshot()))
        for i in 1...5 {
            source.events.push(.changes([.services(ObjectKey(namespace: "demo", name: "s\(i)"), [service("s\(i)", clusterIP: "10.96.1.\(i)")])]))
        }
        try await eventually("healthy output programmed") { healthy.entries.count == 5 }
        #expect(stuck.entries.isEmpty)
        await group.triggerGracefulShutdown()
        try await task.value
        let finished = finishedStuckWork.value.load(ordering: .relaxed)
        #expect(!finished)
        release.signal()
    }

    /// Issue 18: a catch-all ended an output on any error, silently; now only cancellation does.
    @Test("an output that throws is retried with backoff and goes on serving later changes")
    func throwingOutputIsRetried() async throws {
        let source = ManualSource()
        let output = MemoryOutput()
        let (group, task) = start(source, outputs: [output])
        source.events.push(.snapshot(ClusterSnapshot(services: [service("a", clusterIP: "10.96.0.1")])))
        try await eventually("first sync") { output.entries.count == 1 }
        output.state.withLock { $0.throwsLeft = 2 }
        source.events.push(.changes([.services(ObjectKey(namespace: "demo", name: "b"), [service("b", clusterIP: "10.96.0.2")])]))
        try await eventually("programmed after two failed calls") { output.entries.count == 2 }
        #expect(output.state.withLock { $0.applies } >= 1)
        source.events.push(.changes([.services(ObjectKey(namespace: "demo", name: "c"), [service("c", clusterIP: "10.96.0.3")])]))
        try await eventually("the output still serves") { output.entries.count == 3 }
        await group.triggerGracefulShutdown()
        try await task.value
    }

    @Test("the periodic resync repairs an output that drifted")
    func resyncRepairs() async throws {
        let source = ManualSource()
        let output = MemoryOutput()
        var options = options
        options.resyncInterval = .milliseconds(30)
        let (group, task) = start(source, outputs: [output], options: options)
        source.events.push(.snapshot(ClusterSnapshot(services: [service("a", clusterIP: "10.96.0.1")])))
        try await eventually("programmed") { output.entries.count == 1 }
        output.state.withLock { $0.entries = [:] }  // drift: an entry deleted behind the agent's back
        try await eventually("repaired") { output.entries.count == 1 }
        #expect(output.state.withLock { $0.repairs } >= 1)
        await group.triggerGracefulShutdown()
        try await task.value
    }

    @Test("nothing is programmed before the source's first complete snapshot")
    func waitsForFirstSnapshot() async throws {
        let source = ManualSource()
        let output = MemoryOutput()
        let (group, task) = start(source, outputs: [output])
        source.events.push(.changes([.services(ObjectKey(namespace: "demo", name: "a"), [service("a", clusterIP: "10.96.0.1")])]))
        source.events.push(.snapshot(ClusterSnapshot(services: [service("b", clusterIP: "10.96.0.2")])))
        // The positive signal: a change pushed after the snapshot is programmed. Events travel in
        // order (source inbox, pipeline inbox, output), so everything pushed before it, the early
        // change to "a" included, has had its chance to reach the output by then.
        source.events.push(.changes([.services(ObjectKey(namespace: "demo", name: "c"), [service("c", clusterIP: "10.96.0.3")])]))
        try await eventually("the change after the snapshot programmed") { output.entries.keys.contains { $0.address.description == "10.96.0.3" } }
        #expect(output.entries.keys.map(\.description).sorted() == ["10.96.0.2:80/TCP", "10.96.0.3:80/TCP"], "the early change to a is dropped")
        let calls = output.state.withLock { $0.calls }
        #expect(calls.first == "sync", "the first call is the snapshot's sync: \(calls)")
        #expect(!calls.contains { $0.contains("10.96.0.1") }, "a was never handed to the output: \(calls)")
        await group.triggerGracefulShutdown()
        try await task.value
    }
}

@Suite struct InboxTests {
    @Test func takesTogetherWhatHasArrived() async {
        let inbox = Inbox<Int>()
        inbox.push(1)
        inbox.push(2)
        inbox.push(3)
        #expect(await inbox.next() == [1, 2, 3])
        let waiter = Task { await inbox.next() }
        try? await Task.sleep(for: .milliseconds(20))
        inbox.push(4)
        #expect(await waiter.value == [4], "a lone item is handed over at once")
        inbox.finish()
        #expect(await inbox.next() == nil)
    }

    @Test func cancellationEndsTheWait() async {
        let inbox = Inbox<Int>()
        let waiter = Task { await inbox.next() }
        waiter.cancel()
        #expect(await waiter.value == nil)
    }
}

@Suite struct RetryBackoffTests {
    @Test func doublesUpToTheCap() {
        let policy = BackoffPolicy.retries(initial: .milliseconds(100), cap: .seconds(1))
        #expect((1...6).map { policy.retryDelay(attempt: $0) } == [
            .milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1),
        ])
    }
}

