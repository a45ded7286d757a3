import Foundation
import Agent
import GatewayCore
import KubeModels
import L7Proxy
import LoadBalancer
import Logging
import ServiceLifecycle
import Synchronization
import Testing
import Runtime

/// What a pipeline built for its Gateways, collected from `onGatewayBuild`.
final class GatewayBuilds: Sendable {
    private let state = Mutex<(count: Int, last: GatewayState?)>((0, nil))
    var count: Int { state.withLock { $0.count } }
    var last: GatewayState? { state.withLock { $0.last } }
    func record(_ built: GatewayState) { state.withLock { $0 = ($0.count + 1, built) } }
}

enum GatewayObjects {
    static let namespace = "demo"

    static var gatewayClass: GatewayClass {
        GatewayClass(metadata: ObjectMeta(name: "portway"), spec: GatewayClassSpec(controllerName: "portway.io/gateway-controller"))
    }

    static func gateway(_ name: String, port: Int = 80) -> Gateway {
        Gateway(
            metadata: ObjectMeta(name: name, namespace: namespace, generation: 1),
            spec: GatewaySpec(gatewayClassName: "portway", listeners: [Listener(name: "http", port: port, protocol: "HTTP")]))
    }

    /// The Service the leader keeps for a Gateway (cluster mode) or a dump holds (files).
    static func gatewayService(_ gateway: String, clusterIP: String, port: Int = 80, nodePort: Int) -> KubeModels.Service {
        Service(
            metadata: ObjectMeta(name: "portway-gw-\(gateway)", namespace: namespace, labels: [GatewayAPI.gatewayNameLabel: gateway]),
            spec: ServiceSpec(type: "NodePort", clusterIP: clusterIP, ports: [ServicePort(name: "http", protocol: "TCP", port: port, nodePort: nodePort)]))
    }

    static func route(_ name: String, gateway: String = "web", host: String, service: String, generation: Int64 = 1) -> HTTPRoute {
        HTTPRoute(
            metadata: ObjectMeta(name: name, namespace: namespace, generation: generation),
            spec: HTTPRouteSpec(
                parentRefs: [ParentReference(name: gateway)], hostnames: [host],
                rules: [HTTPRouteRule(backendRefs: [HTTPBackendRef(name: service, port: 80)])]))
    }

    /// A backend Service "name" on port 80 with endpoints `addresses`:8080.
    static func backend(_ name: String, clusterIP: String, addresses: [String]) -> [ClusterChange] {
        let key = ObjectKey(namespace: namespace, name: name)
        return [
            .services(key, [service(name, clusterIP: clusterIP)]),
            .endpointSlices(ObjectKey(namespace: namespace, name: "\(name)-abc"), [slice("\(name)-abc", service: name, addresses: addresses)]),
        ]
    }
}

/// Which endpoint addresses the table sends `host` to ([] when nothing matches).
func endpoints(_ state: GatewayState?, gateway: String = "web", port: Int = 80, host: String) -> [String] {
    guard let table = state?.table(gateway: NamespacedName(namespace: GatewayObjects.namespace, name: gateway), port: port),
          let entry = RouteMatcher.match(table, request: RouteRequest(host: host, path: "/")).entry
    else { return [] }
    return entry.backends.flatMap(\.endpoints).map(\.address).sorted()
}

@Suite("Agent pipeline: Gateway-side changes after the first snapshot (cluster mode's feed)")
struct GatewayFeedTests {
    let options = AgentOptions(
        nodeName: "node-a", nodeAddresses: [IPAddress("192.0.2.10")!], resyncInterval: nil,
        retry: BackoffPolicy.retries(initial: .milliseconds(5), cap: .milliseconds(40)))

    func start(
        _ source: ManualSource, output: MemoryOutput, builds: GatewayBuilds, proxy: L7ProxyOutput? = nil, proxyPort: UInt16? = nil
    ) -> (ServiceGroup, Task<Void, any Error>) {
        var options = options
        if let proxyPort { options.proxyPorts = proxyPort...proxyPort }
        let pipeline = AgentPipeline(
            options: options, logger: Logger(label: "test.gateway-feed"), proxy: proxy, onGatewayBuild: { builds.record($0) })
        let group = ServiceGroup(configuration: .init(
            services: pipeline.services(source: source, outputs: [output]).map { .init(service: $0) }, logger: Logger(label: "test.group")))
        return (group, Task { try await group.run() })
    }

    /// A cluster with one Gateway "web" (Service portway-gw-web), backends a and b, and route-a: a.example.com → a.
    var initialSnapshot: ClusterSnapshot {
        var snapshot = ClusterSnapshot(
            services: [service("a", clusterIP: "10.96.1.1"), service("b", clusterIP: "10.96.1.2"), service("other", clusterIP: "10.96.1.3"),
                       GatewayObjects.gatewayService("web", clusterIP: "10.96.7.7", nodePort: 30880)],
            endpointSlices: [slice("a-abc", service: "a", addresses: ["10.1.0.1"]), slice("b-abc", service: "b", addresses: ["10.1.0.2"]),
                             slice("other-abc", service: "other", addresses: ["10.1.0.3"])])
        snapshot.gatewayClasses = [GatewayObjects.gatewayClass]
        snapshot.gateways = [GatewayObjects.gateway("web")]
        snapshot.httpRoutes = [GatewayObjects.route("route-a", host: "a.example.com", service: "a")]
        return snapshot
    }

    func gatewayFrontends(_ output: MemoryOutput) -> [FrontendEntry] {
        output.entries.values.filter { $0.service.name == "portway-gw-web" }
    }

    @Test("HTTPRoutes added, edited and deleted as changes reach the route tables and the proxy")
    func routeChanges() async throws {
        let source = ManualSource()
        let output = MemoryOutput()
        let builds = GatewayBuilds()
        let proxy = L7ProxyOutput(mode: .loopback, threads: 1, logger: Logger(label: "test.proxy"))
        let (group, task) = start(source, output: output, builds: builds, proxy: proxy, proxyPort: try freePort())
        source.events.push(.snapshot(initialSnapshot))

        try await eventually("the Gateway frontends marked L7LB") {
            let gateway = gatewayFrontends(output)
            return gateway.count == 3 && gateway.allSatisfy { $0.flags.contains(.l7LoadBalancer) && $0.l7ProxyPort != nil && $0.backends.isEmpty }
        }
        #expect(endpoints(builds.last, host: "a.example.com") == ["10.1.0.1"])
        #expect(endpoints(builds.last, host: "b.example.com") == [])

        // Added: b.example.com → b.
        source.events.push(.changes([.httpRoutes(ObjectKey(namespace: "demo", name: "route-b"), [GatewayObjects.route("route-b", host: "b.example.com", service: "b")])]))
        try await eventually("route-b in the tables") { endpoints(builds.last, host: "b.example.com") == ["10.1.0.2"] }
        // ... and in what the proxy serves.
        let proxyPort = try #require(gatewayFrontends(output).first?.l7ProxyPort)
        try await eventually("route-b served by the proxy") { proxyEndpoints(proxy, port: proxyPort, host: "b.example.com") == ["10.1.0.2"] }

        // Edited: a.example.com now goes to b.
        source.events.push(.changes([.httpRoutes(ObjectKey(namespace: "demo", name: "route-a"), [GatewayObjects.route("route-a", host: "a.example.com", service: "b", generation: 2)])]))
        try await eventually("route-a moved to b") { endpoints(builds.last, host: "a.example.com") == ["10.1.0.2"] }
        try await eventually("route-a moved to b in the proxy") { proxyEndpoints(proxy, port: proxyPort, host: "a.example.com") == ["10.1.0.2"] }

        // A backend's endpoints change: the tables follow.
        source.events.push(.changes([.endpointSlices(ObjectKey(namespace: "demo", name: "b-abc"), [slice("b-abc", service: "b", addresses: ["10.1.0.9"])])]))
        try await eventually("b's new endpoint in the tables") { endpoints(builds.last, host: "b.example.com") == ["10.1.0.9"] }

        // Deleted: b.example.com is a 404 again.
        source.events.push(.changes([.httpRoutes(ObjectKey(namespace: "demo", name: "route-b"), [])]))
        try await eventually("route-b gone") { endpoints(builds.last, host: "b.example.com").isEmpty && builds.last?.status.routes[NamespacedName(namespace: "demo", name: "route-b")] == nil }
        try await eventually("route-b gone from the proxy") { proxyEndpoints(proxy, port: proxyPort, host: "b.example.com").isEmpty }
        #expect(endpoints(builds.last, host: "a.example.com") == ["10.1.0.9"])

        await group.triggerGracefulShutdown()
        try await task.value
    }

    @Test("a route edit is traced from its informer event to the swap of the proxy's table: its object, generation and the hops in order")
    func routeChangeTraced() async throws {
        let source = ManualSource()
        let output = MemoryOutput()
        let builds = GatewayBuilds()
        let traces = Mutex<[RouteChangeTrace]>([])
        let proxy = L7ProxyOutput(mode: .loopback, threads: 1, logger: Logger(label: "test.proxy"), onRouteChange: { trace in traces.withLock { $0.append(trace) } })
        let (group, task) = start(source, output: output, builds: builds, proxy: proxy, proxyPort: try freePort())
        source.events.push(.snapshot(initialSnapshot))
        try await eventually("the proxy serves route-a") {
            guard let port = gatewayFrontends(output).first?.l7ProxyPort else { return false }
            return proxyEndpoints(proxy, port: port, host: "a.example.com") == ["10.1.0.1"]
        }
        // The first sync is no change of a route: not traced.
        #expect(traces.withLock { $0 }.isEmpty)

        let before = Date().timeIntervalSince1970
        source.events.push(.changes([.httpRoutes(ObjectKey(namespace: "demo", name: "route-a"), [GatewayObjects.route("route-a", host: "a.example.com", service: "b", generation: 2)])]))
        try await eventually("the edit traced") { traces.withLock { !$0.isEmpty } }
        let trace = try #require(traces.withLock { $0.first })
        let event = try #require(trace.events.first)
        #expect(trace.events.count == 1)
        #expect(event.kind == "httproutes" && event.name == "demo/route-a" && event.generation == 2)
        let swapped = try #require(trace.swapped)
        // The hops in order, on the wall clock of this process.
        #expect(before <= event.received && event.received <= trace.stepStarted && trace.stepStarted <= trace.published && trace.published <= swapped,
                "\(trace)")
        #expect(swapped <= Date().timeIntervalSince1970)
        // The router swapped in is the edited one.
        let port = try #require(gatewayFrontends(output).first?.l7ProxyPort)
        #expect(proxyEndpoints(proxy, port: port, host: "a.example.com") == ["10.1.0.2"])
        let line = try #require(trace.logLines.first)
        #expect(line.hasPrefix("route change applied: httproutes demo/route-a generation=2 event="), "\(line)")
        #expect(line.contains(" step=+") && line.contains(" published=+") && line.contains(" swapped=+"), "\(line)")

        // A change of something no table reads changes no table: not traced, before the next edit or with it.
        source.events.push(.changes([.endpointSlices(ObjectKey(namespace: "demo", name: "other-abc"), [slice("other-abc", service: "other", addresses: ["10.1.0.8"])])]))
        source.events.push(.changes([.httpRoutes(ObjectKey(namespace: "demo", name: "route-a"), [GatewayObjects.route("route-a", host: "a.example.com", service: "a", generation: 3)])]))
        try await eventually("the second edit traced") { traces.withLock { $0.contains { $0.events.contains { $0.generation == 3 } } } }
        let all = traces.withLock { $0 }
        #expect(all.count == 2 && all[1].events.map(\.name).filter { $0 != "demo/other-abc" } == ["demo/route-a"], "\(all)")

        await group.triggerGracefulShutdown()
        try await task.value
    }

    @Test("a Gateway deleted as a change: its Service's frontends are plain L4 again; created again: marked again")
    func gatewayDeleted() async throws {
        let source = ManualSource()
        let output = MemoryOutput()
        let builds = GatewayBuilds()
        let (group, task) = start(source, output: output, builds: builds)
        source.events.push(.snapshot(initialSnapshot))
        try await eventually("the Gateway frontends marked L7LB") {
            let gateway = gatewayFrontends(output)
            return gateway.count == 3 && gateway.allSatisfy { $0.flags.contains(.l7LoadBalancer) }
        }

        // The Service stays a moment after its Gateway (the garbage collector deletes it later).
        source.events.push(.changes([.gateways(ObjectKey(namespace: "demo", name: "web"), [])]))
        try await eventually("the Gateway frontends unmarked") {
            let gateway = gatewayFrontends(output)
            return gateway.count == 3 && gateway.allSatisfy { !$0.flags.contains(.l7LoadBalancer) && $0.l7ProxyPort == nil }
        }
        #expect(builds.last?.ownedGateways == [])
        #expect(builds.last?.tables == [])

        source.events.push(.changes([.gateways(ObjectKey(namespace: "demo", name: "web"), [GatewayObjects.gateway("web")])]))
        try await eventually("the Gateway frontends marked again") {
            let gateway = gatewayFrontends(output)
            return gateway.count == 3 && gateway.allSatisfy { $0.flags.contains(.l7LoadBalancer) && $0.l7ProxyPort != nil }
        }
        #expect(endpoints(builds.last, host: "a.example.com") == ["10.1.0.1"])

        await group.triggerGracefulShutdown()
        try await task.value
    }

    @Test("a change of a Service no Gateway reads does not build the Gateway state again; one a route names does")
    func unrelatedChangesDoNotRebuild() async throws {
        let source = ManualSource()
        let output = MemoryOutput()
        let builds = GatewayBuilds()
        let (group, task) = start(source, output: output, builds: builds)
        source.events.push(.snapshot(initialSnapshot))
        try await eventually("the first build") { builds.count == 1 }

        // Endpoint churn of an unrelated Service: translated and programmed, the Gateway state untouched.
        for round in 1...5 {
            source.events.push(.changes([.endpointSlices(
                ObjectKey(namespace: "demo", name: "other-abc"), [slice("other-abc", service: "other", addresses: ["10.1.0.\(10 + round)"])])]))
            try await eventually("other's endpoint \(round) programmed") {
                output.entries.values.contains { $0.service.name == "other" && $0.backends.contains { $0.address == IPAddress("10.1.0.\(10 + round)")! } }
            }
        }
        // An unrelated Service created, an HTTPRoute naming a Gateway that does not exist.
        source.events.push(.changes(GatewayObjects.backend("new", clusterIP: "10.96.1.4", addresses: ["10.1.0.4"])))
        source.events.push(.changes([.httpRoutes(ObjectKey(namespace: "demo", name: "stray"), [GatewayObjects.route("stray", gateway: "nowhere", host: "x.example.com", service: "new")])]))
        try await eventually("the new Service programmed") { output.entries.values.contains { $0.service.name == "new" } }
        // A marker change that must rebuild, so the count below is read after everything above was processed.
        source.events.push(.changes([.endpointSlices(ObjectKey(namespace: "demo", name: "a-abc"), [slice("a-abc", service: "a", addresses: ["10.1.0.5"])])]))
        try await eventually("a's endpoint change rebuilt the tables") { endpoints(builds.last, host: "a.example.com") == ["10.1.0.5"] }
        #expect(builds.count == 2, "only the change of a Service a route names builds again (builds: \(builds.count))")

        await group.triggerGracefulShutdown()
        try await task.value
    }
}

/// Which endpoint addresses the proxy's current router sends `host` on `port` to.
func proxyEndpoints(_ proxy: L7ProxyOutput, port: UInt16, host: String) -> [String] {
    guard let router = proxy.proxy.routes.current as? GatewayRouteTableRouter, let table = router.tables[port],
          let entry = RouteMatcher.match(table, request: RouteRequest(host: host, path: "/")).entry
    else { return [] }
    return entry.backends.flatMap(\.endpoints).map(\.address).sorted()
}
