import Foundation
import Testing

/// Real traffic through a local two-node cluster (see `LocalCluster`): the real control plane,
/// `portway agent --kubeconfig` per node under the RBAC of manifests/, the EndpointSlice controller
/// writing the slices and the harness as the kubelet. Root only; needs KUBEBUILDER_ASSETS with
/// kube-apiserver, kube-controller-manager and etcd. Every loop is bounded in count and time.
@Suite("e2e: a local cluster with the real control plane", .serialized, .enabled(if: E2EPrerequisites.ready, "needs root, bpffs, the BPF object, the portway binary and KUBEBUILDER_ASSETS (reason printed)"))
struct LocalClusterTests {
    /// `ok NAME PEER` → (NAME, PEER address without port).
    static func parse(_ answer: String) -> (name: String, peer: String)? {
        let f = answer.split(separator: " ")
        guard f.count == 3, f[0] == "ok" else { return nil }
        return (String(f[1]), String(f[2].split(separator: ":")[0]))
    }

    @Test("NodePort through the other node (SNAT) both ways; externalTrafficPolicy Local drops without a local backend and keeps the client address; another proxy's Service; RBAC as in manifests/")
    func trafficPaths() async throws {
        try await withLocalCluster { cluster in
            let a = cluster.nodeIP("node-a"), b = cluster.nodeIP("node-b")
            try await cluster.createPod("web-b-1", on: "node-b", labels: ["app": "web-b"])
            try await cluster.createPod("web-a-1", on: "node-a", labels: ["app": "web-a"])
            try await cluster.createPod("local-1", on: "node-b", labels: ["app": "local"])
            try await cluster.createService("web-b", selector: "web-b", nodePort: 30081)
            try await cluster.createService("web-a", selector: "web-a", nodePort: 30082)
            try await cluster.createService("local", selector: "local", nodePort: 30083, externalTrafficPolicy: "Local")

            // Node A, backend only behind node B: served, and the pod saw node A (SNAT), not the client.
            for (node, nodeAddress, port, pod) in [("node-a", a, 30081, "web-b-1"), ("node-b", b, 30082, "web-a-1")] {
                let answer = try await cluster.waitFor("\(nodeAddress):\(port)") { $0.hasPrefix("ok ") }
                #expect(Self.parse(answer)?.name == pod, "\(node): \(answer)")
                #expect(Self.parse(answer)?.peer == nodeAddress, "\(node) SNATs to its own address: \(answer)")
                for _ in 0..<10 {
                    let again = try await cluster.get("\(nodeAddress):\(port)")
                    #expect(Self.parse(again)?.name == pod, "\(node): \(again)")
                }
            }

            // Local: node B has the backend and serves it with the client's own address.
            let local = try await cluster.waitFor("\(b):30083") { $0.hasPrefix("ok ") }
            #expect(Self.parse(local)?.name == "local-1")
            #expect(Self.parse(local)?.peer == LocalCluster.clientIP, "the backend sees the client: \(local)")
            // Node A has none: it drops (a timeout, not a refusal from its own stack).
            for _ in 0..<3 {
                #expect(try await cluster.get("\(a):30083", timeout: 1.0) == "fail TimeoutError")
            }

            // kube-proxy's rule: a Service handed to another proxy loses its frontends on every node,
            // and gets them back when the label goes.
            let webA = "/api/v1/namespaces/\(LocalCluster.namespace)/services/web-a"
            try await cluster.api("PATCH", webA, ["metadata": ["labels": ["service.kubernetes.io/service-proxy-name": "other"]]])
            for nodeAddress in [a, b] { try await cluster.waitFor("\(nodeAddress):30082") { $0 == "fail ConnectionRefusedError" } }
            try await cluster.api("PATCH", webA, ["metadata": ["labels": ["service.kubernetes.io/service-proxy-name": NSNull()]]])
            for nodeAddress in [a, b] { try await cluster.waitFor("\(nodeAddress):30082") { $0.hasPrefix("ok web-a-1 ") } }

            // The agents' ServiceAccount token is bound by the ClusterRole of manifests/: what it needs, nothing more.
            // Secrets: read (HTTPS listeners' certificates; RBAC cannot narrow by type), never written.
            // ConfigMaps: read (client CA certificates of spec.tls.frontend; RBAC cannot narrow by
            // reference), never written.
            for path in [
                "/api/v1/services", "/apis/discovery.k8s.io/v1/endpointslices", "/api/v1/nodes?fieldSelector=metadata.name%3Dnode-a", "/api/v1/namespaces",
                "/api/v1/secrets?fieldSelector=type%3Dkubernetes.io%2Ftls", "/api/v1/configmaps",
            ] {
                #expect(try await cluster.statusAsAgent(path) == 200, "\(path)")
            }
            // The nodes' report Leases: listed and watched in the agents' namespace only (the Role of manifests/).
            #expect(try await cluster.statusAsAgent("/apis/coordination.k8s.io/v1/namespaces/portway-system/leases?labelSelector=portway.io%2Fnode-report") == 200)
            for path in ["/api/v1/namespaces/e2e/pods", "/apis/apps/v1/deployments", "/apis/coordination.k8s.io/v1/leases",
                         "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"] {
                #expect(try await cluster.statusAsAgent(path) == 403, "\(path)")
            }
            let secret: [String: Any] = ["apiVersion": "v1", "kind": "Secret", "metadata": ["name": "agent-made", "namespace": LocalCluster.namespace], "type": "Opaque"]
            #expect(try await cluster.statusAsAgent("/api/v1/namespaces/\(LocalCluster.namespace)/secrets", method: "POST", body: secret) == 403, "writing Secrets is forbidden")
            let configMap: [String: Any] = ["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": "agent-made", "namespace": LocalCluster.namespace], "data": ["ca.crt": "x"]]
            #expect(try await cluster.statusAsAgent("/api/v1/namespaces/\(LocalCluster.namespace)/configmaps", method: "POST", body: configMap) == 403, "writing ConfigMaps is forbidden")
            #expect(try await cluster.statusAsAgent("/api/v1/namespaces/kube-system/configmaps/kube-root-ca.crt", method: "DELETE") == 403, "deleting ConfigMaps is forbidden")
            try expectNoRBACTrouble(cluster)
        }
    }

    @Test("disruptions under a request loop on three nodes: rolling pod replacement, agent SIGKILL + restart (the new agent writes again), API server outage")
    func disruptions() async throws {
        // node-c runs no pods: everything it serves goes through SNAT to the other two.
        try await withLocalCluster(nodes: ["node-a", "node-b", "node-c"]) { cluster in
            let a = cluster.nodeIP("node-a"), b = cluster.nodeIP("node-b"), c = cluster.nodeIP("node-c")
            try await cluster.createPod("roll-1", on: "node-a", labels: ["app": "roll"])
            try await cluster.createPod("roll-2", on: "node-b", labels: ["app": "roll"])
            try await cluster.createService("roll", selector: "roll", nodePort: 30084)
            let targets = ["\(a):30084", "\(b):30084", "\(c):30084"]
            for t in targets { try await cluster.waitFor(t) { $0.hasPrefix("ok ") } }

            // 1. Replace every pod: new pod Ready first, then the old one deleted gracefully; it
            // serves through its grace period, then the "kubelet" stops it.
            var loop = try await cluster.startLoop(targets)
            for (old, new, node) in [("roll-1", "roll-3", "node-a"), ("roll-2", "roll-4", "node-b")] {
                let pod = try await cluster.createPod(new, on: node, labels: ["app": "roll"])
                // As a rollout: the old pod goes only once the new one is a ready endpoint.
                let ready = try await waitUntil(timeout: .seconds(20), every: .milliseconds(100)) {
                    try await cluster.endpointConditions(pod.ip)?["ready"] == true
                }
                guard ready else { throw E2EError("\(new) never became a ready endpoint") }
                try await cluster.gracefulDelete(old, grace: .seconds(3))
            }
            try await Task.sleep(for: .seconds(1))
            var result = try await loop.finish()
            #expect(result.failures.isEmpty, "rolling replacement: \(result.failures.count) failed of \(result.ok + result.failures.count): \(result.failures.prefix(5))")
            #expect(result.ok > 20)
            for t in targets {
                let last: Set<String> = Set(result.names[t]?.suffix(5) ?? [])
                #expect(!last.isEmpty && last.isSubset(of: ["roll-3", "roll-4"]), "\(t) ends on the new pods: \(result.names[t]?.suffix(10) ?? [])")
            }

            // 2. SIGKILL node A's agent and start it again while traffic flows.
            loop = try await cluster.startLoop(targets)
            try await Task.sleep(for: .seconds(1))
            try await cluster.killAgent("node-a")
            // A Service created while node A has no agent: the other nodes program it, node A
            // cannot. Its pins keep serving 30084 whether an agent runs or not, so this Service
            // served on node A is what shows that the restarted agent is back and writing.
            try await cluster.createService("revived", selector: "roll", nodePort: 30085)
            for t in [b, c] { try await cluster.waitFor("\(t):30085") { $0.hasPrefix("ok roll-") } }
            #expect(try await cluster.get("\(a):30085").hasPrefix("fail "), "node A's maps lack the new Service while its agent is down")
            try await cluster.startAgent("node-a")
            try await cluster.waitFor("\(a):30085") { $0.hasPrefix("ok roll-") }
            let restartedLog = cluster.agents["node-a"]?.log ?? ""
            #expect(restartedLog.contains("maps sync:"), "the restarted agent logged its own sync:\n\(restartedLog.suffix(2000))")
            try await Task.sleep(for: .seconds(1))
            result = try await loop.finish()
            #expect(result.failures.isEmpty, "agent restart: \(result.failures.count) failed of \(result.ok + result.failures.count): \(result.failures.prefix(5))")
            #expect(result.ok > 20)

            // 3. The API server the agents use goes down (a second one, on the same etcd, stays up
            // for the change); traffic is unaffected; after it returns, the change reaches every node.
            // Until now nothing the agents asked for was refused. (Right after a kube-apiserver
            // restart its RBAC authorizer may refuse for a moment until its caches fill: agents
            // then back off and retry, so the check is not repeated after the outage.)
            try expectNoRBACTrouble(cluster)
            try await cluster.createService("moving", selector: "roll", nodePort: 30086)
            for t in [a, b, c].map({ "\($0):30086" }) { try await cluster.waitFor(t) { $0.hasPrefix("ok ") } }
            let plane = try #require(cluster.plane)
            let secondary = try plane.newPort()
            try await onDedicatedThread { try plane.launchAPIServer(port: secondary) }
            loop = try await cluster.startLoop(targets)
            try await Task.sleep(for: .seconds(1))
            try await onDedicatedThread { plane.stopAPIServer() }
            cluster.apiPort = secondary
            try await cluster.api("PATCH", "/api/v1/namespaces/\(LocalCluster.namespace)/services/moving", [
                "spec": ["ports": [["name": "http", "port": 80, "targetPort": LocalCluster.podPort, "nodePort": 30087, "protocol": "TCP"]]],
            ])
            try await Task.sleep(for: .seconds(2))
            try await onDedicatedThread { try plane.launchAPIServer() }
            cluster.apiPort = plane.port
            try await onDedicatedThread { plane.stopAPIServer(port: secondary) }
            try await Task.sleep(for: .seconds(1))
            result = try await loop.finish()
            #expect(result.failures.isEmpty, "API server outage: \(result.failures.count) failed of \(result.ok + result.failures.count): \(result.failures.prefix(5))")
            #expect(result.ok > 20)
            for nodeAddress in [a, b, c] {
                try await cluster.waitFor("\(nodeAddress):30087", timeout: .seconds(90)) { $0.hasPrefix("ok roll-") }
                try await cluster.waitFor("\(nodeAddress):30086", timeout: .seconds(30)) { $0.hasPrefix("fail ") }
            }
        }
    }

    @Test("Gateway leader SIGKILL: the other agent takes the Lease within its duration and writes the new Gateway's Service and status (addresses: the nodes)")
    func gatewayLeaderCrashHandover() async throws {
        try await withLocalCluster { cluster in
            let ns = LocalCluster.namespace
            try await cluster.api("POST", "/apis/gateway.networking.k8s.io/v1/gatewayclasses", [
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": ["name": "portway"],
                "spec": ["controllerName": LocalCluster.gatewayControllerName],
            ])
            func createGateway(_ name: String) async throws {
                try await cluster.api("POST", "/apis/gateway.networking.k8s.io/v1/namespaces/\(ns)/gateways", [
                    "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": ["name": name, "namespace": ns],
                    "spec": ["gatewayClassName": "portway", "listeners": [["name": "http", "port": 80, "protocol": "HTTP"]]],
                ])
            }
            /// The Gateway's Service exists and its status is written (Programmed, with addresses).
            func served(_ name: String) async throws -> [String: Any]? {
                let service = try await cluster.api("GET", "/api/v1/namespaces/\(ns)/services/portway-gw-\(name)", allow: [404])
                guard service["spec"] != nil else { return nil }
                let gateway = try await cluster.api("GET", "/apis/gateway.networking.k8s.io/v1/namespaces/\(ns)/gateways/\(name)")
                let status = gateway["status"] as? [String: Any] ?? [:]
                let conditions = status["conditions"] as? [[String: Any]] ?? []
                guard conditions.contains(where: { $0["type"] as? String == "Programmed" && $0["status"] as? String == "True" }) else { return nil }
                return status
            }
            func waitServed(_ name: String) async throws -> [String: Any] {
                var status: [String: Any]?
                try await waitUntil(timeout: .seconds(60), every: .milliseconds(200)) {
                    status = try await served(name)
                    return status != nil
                }
                if let status { return status }
                throw E2EError("Gateway \(name) never got its Service and a Programmed status; agent logs:\n\(cluster.nodes.map { cluster.agentLog($0.name).suffix(1500) })")
            }
            let leasePath = "/apis/coordination.k8s.io/v1/namespaces/portway-system/leases/portway-gateway-leader"
            func lease() async throws -> [String: Any] { try await cluster.api("GET", leasePath)["spec"] as? [String: Any] ?? [:] }

            try await createGateway("first")
            let firstStatus = try await waitServed("first")
            // NodePort: the addresses clients use are the nodes' InternalIPs.
            let addresses = (firstStatus["addresses"] as? [[String: Any]] ?? []).compactMap { $0["value"] as? String }
            #expect(addresses.sorted() == cluster.nodes.map(\.ip).sorted(), "\(firstStatus)")
            let before = try await lease()
            let leader = try #require(before["holderIdentity"] as? String)
            let follower = try #require(cluster.nodes.map(\.name).first { $0 != leader })

            // SIGKILL: the Lease is not released; the follower must wait out the lease duration.
            try await cluster.killAgent(leader)
            // Read after the kill: the dead leader's last renewal (it cannot renew any more).
            let atKill = try await lease()
            try await createGateway("second")
            var after: [String: Any] = [:]
            try await waitUntil(timeout: .seconds(60), every: .milliseconds(200)) {
                after = try await lease()
                return after["holderIdentity"] as? String == follower
            }
            #expect(atKill["holderIdentity"] as? String == leader, "nobody took over at once: \(atKill)")
            #expect(after["holderIdentity"] as? String == follower, "the follower took the Lease: \(after)")
            #expect((after["leaseTransitions"] as? Int ?? 0) > (before["leaseTransitions"] as? Int ?? 0))
            // Taken over once the dead leader's last renewal was a lease duration old (plus a retry
            // period between the follower's looks, plus scheduling slack on a shared machine): the
            // times the agents wrote into the Lease, not a stopwatch of this test.
            let lastRenew = try #require((atKill["renewTime"] as? String).flatMap(Self.microTime))
            let acquired = try #require((after["acquireTime"] as? String).flatMap(Self.microTime))
            let gap = acquired.timeIntervalSince(lastRenew)
            #expect(gap >= Double(LocalCluster.leaseDurationSeconds) - 0.5, "not before the lease expired: \(gap) s")
            #expect(gap <= Double(LocalCluster.leaseDurationSeconds + LocalCluster.retryPeriodSeconds) + 3, "within the lease duration + retry period: \(gap) s")

            // The new leader writes: the Gateway created after the kill gets its Service and status.
            let secondStatus = try await waitServed("second")
            #expect((secondStatus["addresses"] as? [[String: Any]] ?? []).count == cluster.nodes.count)
            #expect(cluster.agentLog(follower).contains("leading (Lease"), "the follower logged its new role")
        }
    }

    /// A Lease MicroTime (`2026-11-24T11:13:15.123456Z`) as a Date.
    static func microTime(_ text: String) -> Date? {
        let parts = text.dropLast().split(separator: ".", maxSplits: 1)
        guard text.hasSuffix("Z"), let whole = ISO8601DateFormatter().date(from: parts[0] + "Z") else { return nil }
        let fraction = parts.count == 2 ? Double("0." + parts[1]) ?? 0 : 0
        return whole.addingTimeInterval(fraction)
    }

    /// The agents ran with the ServiceAccount's ClusterRole: nothing they asked for was refused.
    func expectNoRBACTrouble(_ cluster: LocalCluster) throws {
        for node in cluster.nodes {
            let log = cluster.agentLog(node.name)
            #expect(!log.lowercased().contains("forbidden"), "\(node.name) agent was refused something:\n\(log.suffix(2000))")
        }
    }
}
