import Foundation
import KubeAPI
import KubeAPITestSupport
import KubeModels
import Synchronization
import Testing

@Suite("Informers against the test API server")
struct InformerTests {
    struct Running<R: KubeResource>: Sendable {
        let informer: Informer<R>
        let log: EventLog<R>
        let task: Task<Void, Never>
        func stop() async {
            task.cancel()
            await task.value
        }
    }

    func start<R: KubeResource>(_ type: R.Type, _ server: TestAPIServer, _ recorder: SleepRecorder, watchTimeout: Int = 30, list: ListOptions = ListOptions()) -> Running<R> {
        let log = EventLog<R>()
        let informer = Informer<R>(
            client: KubeClient(config: server.clusterConfig()), options: fastOptions(recorder, watchTimeout: watchTimeout, list: list),
            onStateChange: { log.record($0) }, handler: { log.record($0) })
        let task = Task { await informer.run() }
        return Running(informer: informer, log: log, task: task)
    }

    @Test("waitForSync ends without a sync: for a cancelled waiter, and for one that starts after the informer stopped")
    func waitForSyncEndsWithoutSync() async throws {
        let server = try await TestAPIServer.started()
        server.inject(.status(500), verb: "list", resource: "services", count: 1_000_000)
        let run = start(Service.self, server, SleepRecorder())
        try await eventually("lists refused") { server.requests(verb: "list", resource: "services").count >= 2 }
        /// Waits in its own task; `returned` says whether that wait has ended.
        func waiter(cancel: Bool) -> (task: Task<Void, Never>, returned: @Sendable () -> Bool) {
            let done = Mutex(false)
            let task = Task {
                await run.informer.waitForSync()
                done.withLock { $0 = true }
            }
            if cancel { task.cancel() }
            return (task, { done.withLock { $0 } })
        }
        // The informer runs and never syncs: a cancelled waiter stops waiting.
        let cancelled = waiter(cancel: true)
        try await eventually("the cancelled waiter returned") { cancelled.returned() }
        // The informer stopped (as a source stopping before its first sync stops them one by one):
        // a wait that starts afterwards returns at once (it used to wait for a resume nobody sends).
        await run.stop()
        let late = waiter(cancel: false)
        try await eventually("the wait after the stop returned") { late.returned() }
        #expect(!run.informer.hasSynced)
        try await server.stop()
    }

    @Test("lists (paginated), syncs, then watches: adds, updates, deletes, bookmarks advance the resourceVersion")
    func listThenWatch() async throws {
        let server = try await TestAPIServer.started()
        for i in 1...3 { try server.create("services", object: service("s\(i)")) }
        let recorder = SleepRecorder()
        let run = start(Service.self, server, recorder)
        await run.informer.waitForSync()
        #expect(run.informer.store.count == 3)
        #expect(server.requests(verb: "list", resource: "services").count == 2, "pageSize 2: two pages")
        try await eventually("watching") { server.openWatches == 1 }
        let watch = try #require(server.requests(verb: "watch", resource: "services").first)
        #expect(watch.query["allowWatchBookmarks"] == "true")
        #expect(watch.query["resourceVersion"] == server.resourceVersion)
        #expect(watch.query["timeoutSeconds"] == "30")

        try server.create("services", object: service("s4"))
        try server.patch("services", namespace: "demo", name: "s1", .object(["metadata": .object(["labels": .object(["a": .string("b")])])]))
        try server.delete("services", namespace: "demo", name: "s2")
        try await eventually("events seen") { run.log.all.count == 6 }
        #expect(run.log.all.suffix(3) == ["added demo/s4", "updated demo/s1@\(Int(server.resourceVersion)! - 1)", "deleted demo/s2"])
        #expect(run.informer.store.get("demo/s1")?.metadata.labels == ["a": "b"])

        server.sendBookmarks()
        // No object changes with a bookmark, only the position; the next watch starts from it.
        try server.create("nodes", object: Node(metadata: ObjectMeta(name: "n1")))  // bumps the global rv, not this watch
        server.sendBookmarks()
        let bookmarkRV = server.resourceVersion
        try await eventually("rv advanced by bookmark") { run.informer.state == .watching(resourceVersion: bookmarkRV) }
        #expect(run.log.all.count == 6)
        server.dropWatches()
        try await eventually("rewatch from bookmark rv") { server.requests(verb: "watch", resource: "services").count == 2 }
        #expect(server.requests(verb: "watch", resource: "services").last?.query["resourceVersion"] == bookmarkRV)
        #expect(server.requests(verb: "list", resource: "services").count == 2, "a dropped stream is re-watched, not relisted")
        await run.stop()
        #expect(run.informer.state == .stopped)
        try await server.stop()
    }

    @Test("an event split at every byte position arrives intact")
    func splitEverywhere() async throws {
        let server = try await TestAPIServer.started()
        try server.create("services", object: service("s1"))
        let recorder = SleepRecorder()
        let run = start(Service.self, server, recorder)
        await run.informer.waitForSync()
        try await eventually("watching") { server.openWatches == 1 }
        // Measure one MODIFIED line for this object (rv digits stay the same over the loop).
        let sample = try #require(server.get("services", namespace: "demo", name: "s1"))
        let length = sample.serialized().count + "{\"type\":\"MODIFIED\",\"object\":}\n".count
        for cut in 1..<length {
            server.splitNextEvent(at: [cut])
            try server.patch("services", namespace: "demo", name: "s1", .object(["metadata": .object(["labels": .object(["cut": .string(String(cut % 10))])])]))
            let want = server.resourceVersion
            try await eventually("event split at \(cut)") { run.informer.store.get("demo/s1")?.metadata.resourceVersion == want }
        }
        // And one event cut into many pieces.
        server.splitNextEvent(at: Array(stride(from: 3, to: length, by: 17)))
        try server.patch("services", namespace: "demo", name: "s1", .object(["metadata": .object(["labels": .object(["many": .string("pieces")])])]))
        try await eventually("many pieces") { run.informer.store.get("demo/s1")?.metadata.labels?["many"] == "pieces" }
        #expect(run.log.relists == 0)
        await run.stop()
        try await server.stop()
    }

    @Test("an ERROR 410 in the stream triggers a relist; objects deleted in the gap become deletes")
    func expiredInStreamRelists() async throws {
        let server = try await TestAPIServer.started()
        for i in 1...3 { try server.create("services", object: service("s\(i)")) }
        let recorder = SleepRecorder()
        let run = start(Service.self, server, recorder)
        await run.informer.waitForSync()
        try await eventually("watching") { server.openWatches == 1 }
        // The gap: the watch goes away, changes happen, history is compacted.
        server.inject(.status(503), verb: "watch", resource: "services", count: 1_000_000)
        server.dropWatches()
        try await eventually("re-watch refused") { server.requests(verb: "watch", resource: "services").count >= 2 }
        try server.delete("services", namespace: "demo", name: "s2")
        try server.create("services", object: service("s9"))
        server.compact()
        server.clearFaults()
        // The relist is counted when the informer decides it; the store holds its result only once
        // the list pages are in, and a watch is open again after that: wait for those, not the count.
        do {
            try await eventually("relisted after ERROR 410, and watching again") {
                run.log.relists == 1 && Set(run.informer.store.items.map(\.metadata.name)) == ["s1", "s3", "s9"] && server.openWatches == 1
            }
        } catch {
            print("DEBUG states", run.log.allStates.suffix(10), server.requests.suffix(6), run.log.all)
            throw error
        }
        #expect(run.log.all.contains("deleted demo/s2"))
        #expect(run.log.all.contains("added demo/s9"))
        #expect(run.log.all.filter { $0.hasPrefix("updated") }.isEmpty, "unchanged objects produce no updates on relist")
        #expect(server.requests(verb: "list", resource: "services").count == 4, "two pages on start, two on relist")
        await run.stop()
        try await server.stop()
    }

    @Test("HTTP 410 on the watch request (and the recorded ERROR event form) both relist")
    func expiredForms() async throws {
        let server = try await TestAPIServer.started()
        try server.create("services", object: service("s1"))
        let recorder = SleepRecorder()
        let run = start(Service.self, server, recorder)
        await run.informer.waitForSync()
        try await eventually("watching") { server.openWatches == 1 }
        server.inject(.status(410), verb: "watch", resource: "services")
        server.dropWatches()
        try await eventually("relist after HTTP 410") { run.log.relists == 1 }
        try await eventually("watching again") { server.openWatches == 1 }
        server.inject(.watchExpired, verb: "watch", resource: "services")
        server.dropWatches()
        try await eventually("relist after ERROR event") { run.log.relists == 2 }
        #expect(recorder.recorded.count == 2, "one backoff per broken stream; a 410 relists at once, without backoff")
        await run.stop()
        try await server.stop()
    }

    @Test("429 and 5xx back off (growing delays) and re-watch from the last resourceVersion without relisting")
    func throttledBacksOff() async throws {
        let server = try await TestAPIServer.started()
        try server.create("services", object: service("s1"))
        let recorder = SleepRecorder()
        let run = start(Service.self, server, recorder)
        await run.informer.waitForSync()
        try await eventually("watching") { server.openWatches == 1 }
        let rv = server.resourceVersion
        server.inject(.status(429), verb: "watch", resource: "services", count: 2)
        server.inject(.status(500), verb: "watch", resource: "services", count: 1)
        server.dropWatches()
        try await eventually("watching after backoff") { server.requests(verb: "watch", resource: "services").count == 5 && server.openWatches == 1 }
        #expect(server.requests(verb: "list", resource: "services").count == 1)
        #expect(run.log.relists == 0)
        #expect(server.requests(verb: "watch", resource: "services").allSatisfy { $0.query["resourceVersion"] == rv })
        let delays = recorder.recorded
        // Transport error (dropped stream) + 429 + 429 + 500: four backoffs, each at least the base for its attempt.
        #expect(delays.count == 4)
        for (i, d) in delays.enumerated() {
            let base = Duration.milliseconds(800) * Int(1 << i)
            #expect(d >= base && d <= min(base * 2, .seconds(30)), "attempt \(i): \(d)")
        }
        await run.stop()
        try await server.stop()
    }

    @Test("a stalled stream (nothing past its timeout) is closed and restarted")
    func stalledStream() async throws {
        let server = try await TestAPIServer.started()
        try server.create("services", object: service("s1"))
        let recorder = SleepRecorder()
        let run = start(Service.self, server, recorder, watchTimeout: 1)
        await run.informer.waitForSync()
        try await eventually("first watch") { server.requests(verb: "watch", resource: "services").count >= 1 }
        server.inject(.stall, verb: "watch", resource: "services")
        // The first watch ends at its 1 s timeout; the next one stalls; the client must give up on it
        // after timeout + margin and start another, which then delivers events.
        try await eventually("stalled watch replaced") { server.requests(verb: "watch", resource: "services").count >= 3 }
        try server.create("services", object: service("s2"))
        try await eventually("events flow again") { run.informer.store.count == 2 }
        #expect(run.log.relists == 0)
        await run.stop()
        try await server.stop()
    }

    @Test("the API server restarting (same data, then new data) -> the informer recovers and converges")
    func serverRestart() async throws {
        let server = try await TestAPIServer.started()
        for i in 1...2 { try server.create("services", object: service("s\(i)")) }
        let recorder = SleepRecorder()
        let run = start(Service.self, server, recorder)
        await run.informer.waitForSync()
        try await eventually("watching") { server.openWatches == 1 }
        try await server.stop()
        try server.create("services", object: service("s3"))
        try await eventually("failed while down") { !recorder.recorded.isEmpty }
        try await server.start()
        try await eventually("caught up after restart") { run.informer.store.count == 3 }
        #expect(run.log.relists == 0, "same data: the watch resumes from its resourceVersion")

        try await server.restart(keepData: false)
        try server.create("services", object: service("fresh"))
        try await eventually("converged on new data") { Set(run.informer.store.items.map(\.metadata.name)) == ["fresh"] }
        #expect(run.log.relists == 1)
        #expect(run.log.all.contains("deleted demo/s1"))
        await run.stop()
        try await server.stop()
    }

    @Test("field selector: the agent's own Node only")
    func nodeFieldSelector() async throws {
        let server = try await TestAPIServer.started()
        try server.create("nodes", object: node("node-a", internalIP: "192.168.1.10"))
        try server.create("nodes", object: Node(metadata: ObjectMeta(name: "node-b")))
        let recorder = SleepRecorder()
        let run = start(Node.self, server, recorder, list: ListOptions(fieldSelector: "metadata.name=node-a"))
        await run.informer.waitForSync()
        #expect(run.informer.store.items.map(\.metadata.name) == ["node-a"])
        try await eventually("watching") { server.openWatches == 1 }
        try server.patch("nodes", namespace: nil, name: "node-b", .object(["metadata": .object(["labels": .object(["x": .string("1")])])]))
        try server.patch("nodes", namespace: nil, name: "node-a", .object(["metadata": .object(["labels": .object(["x": .string("1")])])]))
        try await eventually("node-a updated") { run.informer.store.get("node-a")?.metadata.labels?["x"] == "1" }
        #expect(run.log.all.filter { $0.contains("node-b") }.isEmpty)
        await run.stop()
        try await server.stop()
    }

    @Test("Gateway API resources and Leases have working informers")
    func gatewayResources() async throws {
        let server = try await TestAPIServer.started()
        try server.create("gatewayclasses", object: GatewayClass(metadata: ObjectMeta(name: "lbgw"), spec: GatewayClassSpec(controllerName: "portway.io/gateway")))
        try server.create("httproutes", object: HTTPRoute(metadata: ObjectMeta(name: "mail", namespace: "demo"), spec: HTTPRouteSpec(hostnames: ["mail.example.com"])))
        try server.create("referencegrants", object: ReferenceGrant(metadata: ObjectMeta(name: "g", namespace: "demo"), spec: ReferenceGrantSpec(from: [ReferenceGrantFrom(group: "gateway.networking.k8s.io", kind: "HTTPRoute", namespace: "other")], to: [ReferenceGrantTo(group: "", kind: "Service")])))
        try server.create("leases", object: Lease(metadata: ObjectMeta(name: "portway", namespace: "kube-system"), spec: LeaseSpec(holderIdentity: "node-a", leaseDurationSeconds: 15)))
        let recorder = SleepRecorder()
        let classes = start(GatewayClass.self, server, recorder)
        let routes = start(HTTPRoute.self, server, recorder)
        let grants = start(ReferenceGrant.self, server, recorder)
        let leases = start(Lease.self, server, recorder)
        let gateways = start(Gateway.self, server, recorder)
        await classes.informer.waitForSync()
        await routes.informer.waitForSync()
        await grants.informer.waitForSync()
        await leases.informer.waitForSync()
        await gateways.informer.waitForSync()
        #expect(classes.informer.store.get("lbgw")?.spec.controllerName == "portway.io/gateway")
        #expect(routes.informer.store.get("demo/mail")?.spec.hostnames == ["mail.example.com"])
        #expect(grants.informer.store.get("demo/g")?.spec.from.first?.namespace == "other")
        #expect(leases.informer.store.get("kube-system/portway")?.spec?.holderIdentity == "node-a")
        #expect(gateways.informer.store.count == 0)
        for r in [classes.task, routes.task, grants.task, leases.task, gateways.task] { r.cancel() }
        try await server.stop()
    }
}
