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
/// request"; anchors: agentgateway 10–30 ms, Istio ~300 ms, Envoy Gateway ~600 ms).
@Suite("e2e: HTTPRoute edits to the first request they route", .serialized, .enabled(if: E2EPrerequisites.ready, "needs root, bpffs, the BPF object, the portway binary and KUBEBUILDER_ASSETS (reason printed)"))
struct RouteChangeLatencyTests {
    static let gatewayAPI = "/apis/gateway.networking.k8s.io/v1"
    static let changes = 50

    @Test("50 HTTPRoute edits through the API server each move the NodePort's traffic, none fails a request; the latency is printed")
    func routeEditsReachTheTraffic() async throws {
        try await withLocalCluster(nodes: ["node-a"]) { cluster in
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
            print("route change → first routed request (HTTPRoute PATCH through the real kube-apiserver → the first response from the new backend through the Gateway NodePort, \(latencies.count) changes): p50 \(at(latencies, 0.5)), p90 \(at(latencies, 0.9)), p99 \(at(latencies, 0.99)), max \(at(latencies, 1.0)); of which PATCH → the event at a direct watcher (\(apiShares.count) seen): p50 \(at(apiShares, 0.5)), p99 \(at(apiShares, 0.99))")
        }
    }
}
