import Foundation
import KubeAPI
import KubeModels
import PortwayTestSupport
import Synchronization
import Testing

/// An HTTPRoute edited through the real kube-apiserver, and the first request the Gateway NodePort
/// routes by the edit: every edit of 50 in a row must reach the traffic, with no failed request
/// in between (the proxy swaps its table; it never drops what it serves). How long each took is
/// printed, not asserted: `make bench` reports it (issue 20's "route change to first routed
/// request"; anchors: agentgateway 10–30 ms, Istio ~300 ms, Envoy Gateway ~600 ms), split into
/// hops: the API server's (PATCH → the event at a watcher of this test), the agent's (its informer
/// event → its route table swapped, from the agent's `route change applied` debug lines) and the
/// rest (the table swapped → the client's first answer from the new backend).
@Suite("e2e: HTTPRoute edits to the first request they route", .serialized, .enabled(if: E2EPrerequisites.ready, "needs root, bpffs, the BPF object, the portway binary and KUBEBUILDER_ASSETS (reason printed)"))
struct RouteChangeLatencyTests {
    static let gatewayAPI = "/apis/gateway.networking.k8s.io/v1"
    static let changes = 50

    @Test("50 HTTPRoute edits through the API server each move the NodePort's traffic, none fails a request; the latency is printed")
    func routeEditsReachTheTraffic() async throws {
        try await withLocalCluster(nodes: ["node-a"], agentArguments: ["--log-level", "debug"]) { cluster in
            let ns = LocalCluster.namespace
            try await cluster.createPod("app-a-1", on: "node-a", labels: ["app": "app-a"])
            try await cluster.createPod("app-b-1", on: "node-a", labels: ["app": "app-b"])
            try await cluster.createService("app-a", selector: "app-a", nodePort: 30091)
            try await cluster.createService("app-b", selector: "app-b", nodePort: 30092)
            try await cluster.createWebGateway()
            let routePath = "\(Self.gatewayAPI)/namespaces/\(ns)/httproutes/edited"
            try await cluster.api("POST", "\(Self.gatewayAPI)/namespaces/\(ns)/httproutes", [
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": ["name": "edited"],
                "spec": [
                    "parentRefs": [["name": "web"]], "hostnames": ["a.example.com"],
                    "rules": [["backendRefs": [["name": "app-a", "port": 80]]]],
                ],
            ])
            let service = try await cluster.waitForObject("/api/v1/namespaces/\(ns)/services/portway-gw-web", "the Gateway's Service") {
                (($0["spec"] as? [String: Any])?["ports"] as? [[String: Any]])?.first?["nodePort"] != nil
            }
            let ports = try #require((service["spec"] as? [String: Any])?["ports"] as? [[String: Any]])
            let nodePort = try #require((ports.first?["nodePort"] as? NSNumber)?.intValue)
            let target = "\(cluster.nodeIP("node-a")):\(nodePort)"
            try await cluster.waitFor(target, host: "a.example.com") { $0.hasPrefix("ok app-a-1 ") }

            let watch = try await cluster.startRouteWatch(target, hostname: "a.example.com")
            defer { watch.stop() }
            let first = await watch.next()
            #expect(first?.answer == "app-a-1", "before any edit: \(String(describing: first))")

            // The same API server watched directly from here: when each generation of the route
            // reached a watcher, to tell the API server's share from the agent's (the agents reach
            // the API server through the cluster's forwarders, as pods reach it through a Service).
            let plane = try #require(cluster.plane)
            let client = KubeClient(config: plane.clusterConfig())
            let arrivals = Mutex<[Int64: Double]>([:])
            let connected = Mutex(false)
            let watcher = Task {
                let events = client.watch(
                    HTTPRoute.self, options: WatchOptions(list: ListOptions(namespace: ns, fieldSelector: "metadata.name=edited")),
                    onConnected: { connected.withLock { $0 = true } })
                for try await event in events {
                    guard case .modified(let route) = event, let generation = route.metadata.generation else { continue }
                    let now = Date().timeIntervalSince1970
                    arrivals.withLock { if $0[generation] == nil { $0[generation] = now } }
                }
            }
            defer { watcher.cancel() }
            #expect(await waitUntil(timeout: .seconds(30)) { connected.withLock { $0 } }, "the test's own watch never connected")

            var latencies: [Double] = []
            var apiShares: [Double] = []
            // Per change: when it started, its generation, when the new backend first answered.
            var edits: [(started: Double, generation: Int64?, answered: Double)] = []
            var detours: [String] = []
            for change in 0..<Self.changes {
                let backend = change % 2 == 0 ? "app-b" : "app-a"
                let started = Date().timeIntervalSince1970
                let patched = try await cluster.api("PATCH", routePath, ["spec": ["rules": [["backendRefs": [["name": backend, "port": 80]]]]]])
                let generation = ((patched["metadata"] as? [String: Any])?["generation"] as? NSNumber)?.int64Value
                // Every answer until the new backend's must be the old backend's: no failure, no 404.
                while true {
                    guard let seen = await watch.next() else {
                        Issue.record("change \(change) to \(backend): the watch ended before the traffic moved")
                        return
                    }
                    if seen.answer == "\(backend)-1" {
                        latencies.append(seen.time - started)
                        if let generation, let arrived = arrivals.withLock({ $0[generation] }) { apiShares.append(arrived - started) }
                        edits.append((started, generation, seen.time))
                        break
                    }
                    detours.append("change \(change): \(seen.answer)")
                }
            }
            #expect(detours.isEmpty, "answers other than the old or the new backend: \(detours)")
            #expect(latencies.count == Self.changes)

            func at(_ values: [Double], _ p: Double) -> String {
                let sorted = values.sorted()
                guard !sorted.isEmpty else { return "-" }
                return String(format: "%.1f ms", sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)] * 1000)
            }
            // The agent's hops, from its debug log: written just after the swap, so the last one may
            // trail the traffic by a moment.
            let lastGeneration = edits.last?.generation ?? 0
            var hops: [Int64: AgentHops] = [:]
            await waitUntil(timeout: .seconds(10), every: .milliseconds(100)) {
                hops = AgentHops.parse(cluster.agentLog("node-a"), route: "\(ns)/edited")
                return hops[lastGeneration] != nil
            }
            var toAgent: [Double] = [], agentShares: [Double] = [], rests: [Double] = []
            for (i, edit) in edits.enumerated() {
                guard let generation = edit.generation, let hop = hops[generation] else {
                    print("hops of change \(i): generation \(edit.generation.map(String.init) ?? "?") not in the agent's log")
                    continue
                }
                toAgent.append(hop.event - edit.started)
                agentShares.append(hop.swapped - hop.event)
                rests.append(edit.answered - hop.swapped)
                func ms(_ seconds: Double) -> String { String(format: "%.1f", seconds * 1000) }
                let api = arrivals.withLock { $0[generation] }.map { ms($0 - edit.started) } ?? "-"
                print("hops of change \(i) (generation \(generation)): total \(ms(edit.answered - edit.started)) ms = PATCH → the agent's informer event \(ms(hop.event - edit.started)) (PATCH → the test's watch \(api)) + agent, event → table swapped \(ms(hop.swapped - hop.event)) (step +\(ms(hop.step)), published +\(ms(hop.published))) + swapped → first new answer \(ms(edit.answered - hop.swapped))")
            }
            print("route change split (\(agentShares.count) changes with the agent's hops): API server, PATCH → the test's watch: p50 \(at(apiShares, 0.5)), p90 \(at(apiShares, 0.9)), p99 \(at(apiShares, 0.99)); PATCH → the agent's informer event (API server + the forwarders): p50 \(at(toAgent, 0.5)), p90 \(at(toAgent, 0.9)), p99 \(at(toAgent, 0.99)); agent, informer event → table swapped: p50 \(at(agentShares, 0.5)), p90 \(at(agentShares, 0.9)), p99 \(at(agentShares, 0.99)); rest, swapped → first answer from the new backend (the client's probe, the proxy, the backend): p50 \(at(rests, 0.5)), p90 \(at(rests, 0.9)), p99 \(at(rests, 0.99))")
            print("route change → first routed request (HTTPRoute PATCH through the real kube-apiserver → the first response from the new backend through the Gateway NodePort, \(latencies.count) changes): p50 \(at(latencies, 0.5)), p90 \(at(latencies, 0.9)), p99 \(at(latencies, 0.99)), max \(at(latencies, 1.0)); of which PATCH → the event at a direct watcher (\(apiShares.count) seen): p50 \(at(apiShares, 0.5)), p99 \(at(apiShares, 0.99))")
            // The row `make bench` gathers into issue 20's targets table (scripts/bench.sh).
            let p50 = latencies.sorted()[max(0, Int((Double(latencies.count) * 0.5).rounded(.up)) - 1)]
            print("target | HTTPRoute edit → first request routed by it (real kube-apiserver, \(latencies.count) changes) | p50 \(at(latencies, 0.5)), p99 \(at(latencies, 0.99)) | the API server alone, PATCH → a direct watcher: p50 \(at(apiShares, 0.5)), p99 \(at(apiShares, 0.99)) | p50 < 30 ms | \(p50 < 0.030 ? "yes" : "no") |")
        }
    }
}

/// The hops of one route change as the agent logged them (`RouteChangeTrace.logLines`): its
/// informer event (Unix time) and, from it, the reconcile step, the tables published and the swap.
struct AgentHops {
    var event: Double
    var step: Double
    var published: Double
    var swappedAfter: Double
    var swapped: Double { event + swappedAfter }

    /// Per generation of `route` ("namespace/name"), the first line of each in `log`.
    static func parse(_ log: String, route: String) -> [Int64: AgentHops] {
        var out: [Int64: AgentHops] = [:]
        let marker = "route change applied: httproutes \(route) "
        for line in log.split(separator: "\n") {
            guard let range = line.range(of: marker) else { continue }
            var fields: [String: String] = [:]
            for field in line[range.upperBound...].split(separator: " ") {
                let pair = field.split(separator: "=", maxSplits: 1)
                if pair.count == 2 { fields[String(pair[0])] = String(pair[1]).replacingOccurrences(of: "ms", with: "").replacingOccurrences(of: "+", with: "") }
            }
            guard let generation = fields["generation"].flatMap({ Int64($0) }), out[generation] == nil, let event = fields["event"].flatMap(Double.init),
                  let step = fields["step"].flatMap(Double.init), let published = fields["published"].flatMap(Double.init),
                  let swapped = fields["swapped"].flatMap(Double.init)
            else { continue }
            out[generation] = AgentHops(event: event, step: step / 1000, published: published / 1000, swappedAfter: swapped / 1000)
        }
        return out
    }
}
