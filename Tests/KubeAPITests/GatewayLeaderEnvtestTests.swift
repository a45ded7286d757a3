import Agent
import Foundation
import GatewayCore
import KubeAPI
import KubeAPITestSupport
import KubeModels
import LoadBalancer
import Runtime
import Synchronization
import Testing

/// Two agents' Gateway control planes (source → controller, leader election) against a real
/// kube-apiserver with the Gateway API CRDs: exactly one writes, status is right and shared
/// entries survive, stopping the leader hands over. Skipped, saying why, without KUBEBUILDER_ASSETS.
@Suite("envtest: the Gateway leader's Services and status", .serialized, .enabled(if: EnvtestControlPlane.availableOrPrintSkip(), "needs KUBEBUILDER_ASSETS with kube-apiserver and etcd"))
struct GatewayLeaderEnvtestTests {
    static let otherController = "example.com/other-controller"

    /// What each agent's controller wrote, pass by pass.
    final class Passes: Sendable {
        private let passes = Mutex<[String: [GatewayWriteReport]]>([:])
        func record(_ id: String, _ report: GatewayWriteReport) { passes.withLock { $0[id, default: []].append(report) } }
        func of(_ id: String) -> [GatewayWriteReport] { passes.withLock { $0[id] ?? [] } }
        func writes(_ id: String) -> Int { of(id).reduce(0) { $0 + $1.servicesCreated.count + $1.servicesUpdated.count + $1.statusWrites.count } }
    }

    /// One agent's Gateway half: its own informers, controller and election.
    struct RunningAgent {
        let id: String
        let leadership: GatewayLeadership
        let tasks: [Task<Void, Never>]

        static func start(_ id: String, plane: EnvtestControlPlane, passes: Passes) -> RunningAgent {
            let client = KubeClient(config: plane.clusterConfig())
            let settings = GatewayLeaderSettings(
                leaseNamespace: "portway-system", leaseDuration: .seconds(4), renewDeadline: .seconds(3), retryPeriod: .seconds(1))
            let leadership = GatewayLeadership(client: client, identity: id, settings: settings, onPass: { passes.record(id, $0) })
            let kube = KubeClusterSource(client: client, scope: WatchScope(nodeName: id, watchNode: false), informerOptions: fastOptions(SleepRecorder()))
            let source = ForwardingSource(kube) { leadership.controller.send(.source($0)) }
            let controller = leadership.controller, elector = leadership.election.elector
            return RunningAgent(id: id, leadership: leadership, tasks: [
                Task { await source.run { _ in } },
                Task { try? await controller.run() },
                Task { await elector.run() },
            ])
        }

        var role: LeaderRole { get async { await leadership.election.elector.role } }

        /// As on SIGTERM: the election releases the Lease, then the rest stops.
        func stop() async {
            await leadership.election.elector.stop()
            await tasks[2].value
            for task in tasks { task.cancel() }
            for task in tasks { await task.value }
        }
    }

    static func condition(_ conditions: [Condition]?, _ type: String) -> Condition? { conditions?.first { $0.type == type } }

    /// The passes of `id` made from the state where Gateway `gateway` had `version`.
    static func passes(_ passes: Passes, _ id: String, saw gateway: String, at version: String?) -> @Sendable () -> [GatewayWriteReport] {
        { passes.of(id).filter { version != nil && $0.gatewayVersions[gateway] == version } }
    }

    @Test func oneLeaderWritesServicesAndStatusAndHandsOver() async throws {
        let plane = try await EnvtestControlPlane.start(crdDirectory: crdDirectory)
        defer { plane.stop() }
        let admin = KubeClient(config: plane.clusterConfig())
        for name in ["demo", "portway-system"] { _ = try await admin.create(Namespace(metadata: ObjectMeta(name: name))) }
        _ = try await admin.create(GatewayClass(metadata: ObjectMeta(name: "portway"), spec: GatewayClassSpec(controllerName: GatewayOptions.defaultControllerName)))
        _ = try await admin.create(GatewayClass(metadata: ObjectMeta(name: "other"), spec: GatewayClassSpec(controllerName: Self.otherController)))
        let gw = try await admin.create(Gateway(
            metadata: ObjectMeta(name: "gw", namespace: "demo"),
            spec: GatewaySpec(gatewayClassName: "portway", listeners: [Listener(name: "http", port: 80, protocol: "HTTP")])))
        _ = try await admin.create(Gateway(
            metadata: ObjectMeta(name: "other-gw", namespace: "demo"),
            spec: GatewaySpec(gatewayClassName: "other", listeners: [Listener(name: "http", port: 80, protocol: "HTTP")])))
        _ = try await admin.create(Service(
            metadata: ObjectMeta(name: "web", namespace: "demo"), spec: ServiceSpec(ports: [ServicePort(protocol: "TCP", port: 8080)])))
        var route = try await admin.create(HTTPRoute(
            metadata: ObjectMeta(name: "shop", namespace: "demo"),
            spec: HTTPRouteSpec(parentRefs: [ParentReference(name: "gw"), ParentReference(name: "other-gw")], rules: [
                HTTPRouteRule(backendRefs: [HTTPBackendRef(name: "web", port: 8080)]),
            ])))
        // The other controller's entry, written before Portway runs.
        let otherEntry = RouteParentStatus(
            parentRef: ParentReference(group: GatewayAPI.group, kind: "Gateway", namespace: "demo", name: "other-gw"), controllerName: Self.otherController,
            conditions: [Condition(type: "Accepted", status: "True", reason: "Accepted", message: "theirs", lastTransitionTime: "2026-01-01T00:00:00Z", observedGeneration: 1)])
        route.status = HTTPRouteStatus(parents: [otherEntry])
        route = try await admin.updateStatus(route)

        let passes = Passes()
        let a = RunningAgent.start("node-a", plane: plane, passes: passes)
        let b = RunningAgent.start("node-b", plane: plane, passes: passes)
        var agents = [a, b]
        defer { for agent in agents { for task in agent.tasks { task.cancel() } } }

        // Exactly one leads.
        try await eventually("one leader") {
            let roles = [await a.role, await b.role]
            return roles.filter { $0 == .leader }.count == 1 && roles.contains { if case .follower(.some) = $0 { true } else { false } }
        }
        let leader = await a.role == .leader ? a : b
        let follower = leader.id == a.id ? b : a

        // The Service, owned by the Gateway.
        let serviceName = GatewayServices.serviceName(gateway: "gw")
        var service: Service?
        try await eventually("the Gateway's Service") {
            service = try? await admin.get(Service.self, name: serviceName, namespace: "demo")
            return service != nil
        }
        #expect(service?.metadata.ownerReferences?.first?.uid == gw.metadata.uid)
        #expect(service?.metadata.ownerReferences?.first?.controller == true)
        #expect(service?.metadata.labels?[GatewayAPI.gatewayNameLabel] == "gw")
        #expect(service?.spec.type == "NodePort")
        #expect(service?.spec.ports?.map(\.port) == [80])

        // Status: the class, the Gateway and its listener, the route's entry beside the other one.
        try await eventually("GatewayClass accepted") {
            let c = try await admin.get(GatewayClass.self, name: "portway")
            return Self.condition(c.status?.conditions, "Accepted")?.status == "True"
        }
        let portwayClass = try await admin.get(GatewayClass.self, name: "portway")
        #expect(Self.condition(portwayClass.status?.conditions, "Accepted")?.observedGeneration == portwayClass.metadata.generation)
        let otherClass = try await admin.get(GatewayClass.self, name: "other")
        #expect(Self.condition(otherClass.status?.conditions, "Accepted")?.status != "True", "another controller's class is not Portway's to accept")

        try await eventually("Gateway accepted with its listener") {
            let g = try await admin.get(Gateway.self, name: "gw", namespace: "demo")
            return Self.condition(g.status?.conditions, "Accepted")?.status == "True" && g.status?.listeners?.first?.attachedRoutes == 1
        }
        let gwNow = try await admin.get(Gateway.self, name: "gw", namespace: "demo")
        #expect(Self.condition(gwNow.status?.conditions, "Accepted")?.reason == "Accepted")
        #expect(Self.condition(gwNow.status?.conditions, "Accepted")?.observedGeneration == gwNow.metadata.generation)
        #expect(Self.condition(gwNow.status?.listeners?.first?.conditions, "ResolvedRefs")?.status == "True")
        let otherGateway = try await admin.get(Gateway.self, name: "other-gw", namespace: "demo")
        #expect(Self.condition(otherGateway.status?.conditions, "Accepted")?.status != "True", "another controller's Gateway: untouched")

        func ours(_ r: HTTPRoute) -> RouteParentStatus? { r.status?.parents?.first { $0.controllerName == GatewayOptions.defaultControllerName } }
        func theirs(_ r: HTTPRoute) -> RouteParentStatus? { r.status?.parents?.first { $0.controllerName == Self.otherController } }
        try await eventually("the route's Portway entry") {
            ours(try await admin.get(HTTPRoute.self, name: "shop", namespace: "demo")) != nil
        }
        route = try await admin.get(HTTPRoute.self, name: "shop", namespace: "demo")
        #expect(ours(route)?.parentRef.name == "gw")
        #expect(Self.condition(ours(route)?.conditions, "Accepted")?.status == "True")
        #expect(Self.condition(ours(route)?.conditions, "ResolvedRefs")?.status == "True")
        #expect(Self.condition(ours(route)?.conditions, "Accepted")?.observedGeneration == route.metadata.generation)
        #expect(theirs(route)?.conditions == otherEntry.conditions, "the other controller's entry survives")
        #expect(route.status?.parents?.count == 2)
        #expect(passes.writes(follower.id) == 0, "the follower wrote nothing")
        #expect(passes.writes(leader.id) >= 4, "the Service and three statuses")

        // No change, no write: a label on the Gateway (no new generation) makes a pass that writes
        // nothing. Waited for by what the pass saw (the labelled resourceVersion), not by counting
        // passes: one may be recorded between the patch and the count, or still be in flight.
        let labelled = try await admin.patch(Gateway.self, name: "gw", namespace: "demo", mergePatch: Data(#"{"metadata":{"labels":{"touched":"yes"}}}"#.utf8))
        let sawLabel = Self.passes(passes, leader.id, saw: "demo/gw", at: labelled.metadata.resourceVersion)
        try await eventually("a pass made from the labelled Gateway", timeout: .seconds(60)) { !sawLabel().isEmpty }
        #expect(sawLabel().allSatisfy { $0.isEmpty }, "nothing changed, nothing written: \(sawLabel())")

        // A new generation of the route while the other controller writes its entry: both survive.
        _ = try await admin.patch(HTTPRoute.self, name: "shop", namespace: "demo", mergePatch: Data(#"{"spec":{"hostnames":["shop.example"]}}"#.utf8))
        // The other controller writes as Portway does: PUT with the resourceVersion read, again on 409.
        try await eventually("the other controller's write") {
            var fresh = try await admin.get(HTTPRoute.self, name: "shop", namespace: "demo")
            guard let i = fresh.status?.parents?.firstIndex(where: { $0.controllerName == Self.otherController }) else { return false }
            fresh.status?.parents?[i].conditions?[0].message = "theirs, again"
            do {
                _ = try await admin.updateStatus(fresh)
                return true
            } catch let error as KubeAPIError where error.code == 409 {
                return false
            }
        }
        try await eventually("the Portway entry at generation 2, the other entry rewritten by its owner") {
            let r = try await admin.get(HTTPRoute.self, name: "shop", namespace: "demo")
            return Self.condition(ours(r)?.conditions, "Accepted")?.observedGeneration == r.metadata.generation
                && Self.condition(theirs(r)?.conditions, "Accepted")?.message == "theirs, again"
        }

        // The leader stops: the other takes over well within the lease duration (the Lease is released).
        let stopped = ContinuousClock.now
        await leader.stop()
        agents.removeAll { $0.id == leader.id }
        try await eventually("the follower leads") { await follower.role == .leader }
        #expect(ContinuousClock.now - stopped < .seconds(4))

        // The new leader keeps the Service: a second listener port appears in it; the Gateway's new generation in its status.
        _ = try await admin.patch(Gateway.self, name: "gw", namespace: "demo", mergePatch: Data(
            #"{"spec":{"listeners":[{"name":"http","port":80,"protocol":"HTTP"},{"name":"alt","port":8080,"protocol":"HTTP"}]}}"#.utf8))
        try await eventually("the Service has both ports") {
            let s = try? await admin.get(Service.self, name: serviceName, namespace: "demo")
            return s?.spec.ports?.map(\.port).sorted() == [80, 8080]
        }
        let kept = try await admin.get(Service.self, name: serviceName, namespace: "demo")
        #expect(kept.spec.clusterIP == service?.spec.clusterIP, "patched, not recreated")
        #expect(kept.spec.ports?.first { $0.port == 80 }?.nodePort == service?.spec.ports?.first?.nodePort, "the node port stays")
        try await eventually("the Gateway's status at generation 2") {
            let g = try await admin.get(Gateway.self, name: "gw", namespace: "demo")
            return Self.condition(g.status?.conditions, "Accepted")?.observedGeneration == g.metadata.generation && g.status?.listeners?.count == 2
        }
        // onPass runs once the whole pass is done, possibly after the checks above saw its writes.
        try await eventually("the new leader's pass recorded its writes") { passes.writes(follower.id) > 0 }
        await follower.stop()
        agents = []
    }

    @Test("status.addresses: NodePort gives every Node's InternalIP (and follows a new Node); LoadBalancer is not Programmed until its ingress is assigned")
    func gatewayAddresses() async throws {
        let plane = try await EnvtestControlPlane.start(crdDirectory: crdDirectory)
        defer { plane.stop() }
        let admin = KubeClient(config: plane.clusterConfig())
        for name in ["demo", "portway-system"] { _ = try await admin.create(Namespace(metadata: ObjectMeta(name: name))) }
        _ = try await admin.create(Node(metadata: ObjectMeta(name: "node-a"), status: NodeStatus(addresses: [
            NodeAddress(type: "InternalIP", address: "192.0.2.1"), NodeAddress(type: "Hostname", address: "node-a"),
        ])))
        _ = try await admin.create(GatewayClass(metadata: ObjectMeta(name: "portway"), spec: GatewayClassSpec(controllerName: GatewayOptions.defaultControllerName)))
        _ = try await admin.create(Gateway(
            metadata: ObjectMeta(name: "np", namespace: "demo"),
            spec: GatewaySpec(gatewayClassName: "portway", listeners: [Listener(name: "http", port: 80, protocol: "HTTP")])))
        _ = try await admin.create(Gateway(
            metadata: ObjectMeta(name: "lb", namespace: "demo", annotations: [GatewayServices.serviceTypeAnnotation: "LoadBalancer"]),
            spec: GatewaySpec(gatewayClassName: "portway", listeners: [Listener(name: "http", port: 80, protocol: "HTTP")])))

        let passes = Passes()
        // The agent watches only its own Node (node-x, absent): the addresses come from the leader's own Node watch.
        let agent = RunningAgent.start("node-x", plane: plane, passes: passes)
        defer { for task in agent.tasks { task.cancel() } }

        func status(_ name: String) async throws -> GatewayStatus? {
            let gateway = try await admin.get(Gateway.self, name: name, namespace: "demo")
            return gateway.status
        }
        func programmed(_ status: GatewayStatus?) -> String { Self.condition(status?.conditions, "Programmed").map { "\($0.status)/\($0.reason ?? "")" } ?? "-" }
        try await eventually("the NodePort Gateway's address") { try await status("np")?.addresses?.map(\.value) == ["192.0.2.1"] }
        let nodePort = try await status("np")
        #expect(programmed(nodePort) == "True/Programmed")
        #expect(nodePort?.addresses?.first?.type == "IPAddress")
        try await eventually("the LoadBalancer Gateway's status") { try await status("lb")?.conditions != nil }
        let pending = try await status("lb")
        #expect(pending?.addresses == nil, "no ingress yet, and not its cluster IP")
        #expect(programmed(pending) == "False/AddressNotAssigned")

        // A Node joins: the NodePort Gateway's addresses follow.
        _ = try await admin.create(node("node-b", internalIP: "192.0.2.2"))
        try await eventually("both nodes") { try await status("np")?.addresses?.compactMap(\.value).sorted() == ["192.0.2.1", "192.0.2.2"] }

        // The load balancer assigns an address to the Gateway's Service: written, and Programmed.
        let lbService = GatewayServices.serviceName(gateway: "lb")
        try await eventually("the LoadBalancer Service") { (try? await admin.get(Service.self, name: lbService, namespace: "demo")) != nil }
        _ = try await admin.patchStatus(Service.self, name: lbService, namespace: "demo", mergePatch: Data(
            #"{"status":{"loadBalancer":{"ingress":[{"ip":"203.0.113.9"},{"hostname":"lb.example"}]}}}"#.utf8))
        try await eventually("the LoadBalancer Gateway's addresses") { try await status("lb")?.addresses?.map(\.value) == ["203.0.113.9", "lb.example"] }
        let lb = try await status("lb")
        #expect(lb?.addresses?.map { $0.type ?? "" } == ["IPAddress", "Hostname"])
        #expect(programmed(lb) == "True/Programmed")

        // Nothing changed since: a label on a Node makes no write, and the pass the Gateway's label
        // causes (made from the labelled Gateway, so after the Node's label too) writes nothing.
        // (It used to count passes after the patches: a pass recorded before the count was missed,
        // and the wait never ended.)
        _ = try await admin.patch(Node.self, name: "node-a", mergePatch: Data(#"{"metadata":{"labels":{"touched":"yes"}}}"#.utf8))
        let labelled = try await admin.patch(Gateway.self, name: "np", namespace: "demo", mergePatch: Data(#"{"metadata":{"labels":{"touched":"yes"}}}"#.utf8))
        let sawLabel = Self.passes(passes, "node-x", saw: "demo/np", at: labelled.metadata.resourceVersion)
        // Generous: on a loaded machine the 4 s lease can lapse and the pass waits for the re-election.
        try await eventually("a pass made from the labelled Gateway", timeout: .seconds(60)) { !sawLabel().isEmpty }
        #expect(sawLabel().allSatisfy { $0.isEmpty }, "same addresses: nothing written; wrote \(sawLabel().filter { !$0.isEmpty })")
        await agent.stop()
    }
}
