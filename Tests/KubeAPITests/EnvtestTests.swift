import Agent
import Foundation
import KubeAPI
import KubeAPITestSupport
import KubeModels
import LoadBalancer
import Testing

let crdDirectory: String = (tracesDirectory as NSString).deletingLastPathComponent + "/gateway-api-crds"

/// The client, informer and agent-source scenarios against a real kube-apiserver + etcd.
/// Enabled only when KUBEBUILDER_ASSETS names a folder with kube-apiserver and etcd; otherwise the
/// condition prints "skipped: KUBEBUILDER_ASSETS not set (needs kube-apiserver and etcd)" and the
/// suite is reported as skipped.
@Suite("envtest: real kube-apiserver + etcd", .serialized, .enabled(if: EnvtestControlPlane.availableOrPrintSkip(), "needs KUBEBUILDER_ASSETS with kube-apiserver and etcd"))
struct EnvtestTests {
    func withControlPlane(_ body: (EnvtestControlPlane, KubeClient) async throws -> Void) async throws {
        let plane = try await EnvtestControlPlane.start(crdDirectory: crdDirectory)
        defer { plane.stop() }
        for note in plane.notes { print(note) }
        let client = KubeClient(config: plane.clusterConfig())
        struct Namespace: KubeResource {
            static let resource = ResourceDescriptor(group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false)
            var metadata: ObjectMeta
        }
        _ = try await client.create(Namespace(metadata: ObjectMeta(name: "demo")))
        try await body(plane, client)
    }

    @Test("pagination, errors with verb and resource, status merge-patch")
    func clientScenarios() async throws {
        try await withControlPlane { plane, client in
            for i in 1...5 { _ = try await client.create(service("s\(i)")) }
            let page1 = try await client.listPage(Service.self, options: ListOptions(namespace: "demo"), limit: 2)
            #expect(page1.items.count == 2)
            #expect(page1.metadata.continue?.isEmpty == false)
            let all = try await client.list(Service.self, options: ListOptions(namespace: "demo"), pageSize: 2)
            #expect(all.items.count == 5)

            let errors: [(() async throws -> Void, Int, String)] = [
                ({ _ = try await client.get(Service.self, name: "nope", namespace: "demo") }, 404, "notFound: get services \"nope\" in namespace demo"),
                ({ _ = try await client.create(service("s1")) }, 409, "alreadyExists: create services \"s1\" in namespace demo"),
                ({ _ = try await client.create(service("bad", port: 99999)) }, 422, "invalid: create services \"bad\" in namespace demo"),
                ({ _ = try await KubeClient(config: plane.clusterConfig(token: "wrong")).list(Service.self) }, 401, "unauthorized: list services cluster-wide"),
                ({ _ = try await KubeClient(config: plane.clusterConfig(token: EnvtestControlPlane.viewerToken)).list(EndpointSlice.self) }, 403,
                 "forbidden: list endpointslices (discovery.k8s.io) cluster-wide: endpointslices.discovery.k8s.io is forbidden: User \"viewer\""),
            ]
            for (call, code, prefix) in errors {
                do {
                    try await call()
                    Issue.record("no error for \(code)")
                } catch let error as KubeAPIError {
                    #expect(error.code == code)
                    #expect(error.description.hasPrefix(prefix), "\(error.description)")
                }
            }

            _ = try await client.create(GatewayClass(metadata: ObjectMeta(name: "lbgw"), spec: GatewayClassSpec(controllerName: "portway.io/gateway")))
            _ = try await client.create(Gateway(metadata: ObjectMeta(name: "public", namespace: "demo"),
                                                spec: GatewaySpec(gatewayClassName: "lbgw", listeners: [Listener(name: "http", port: 80, protocol: "HTTP")])))
            let status = GatewayStatus(conditions: [Condition(type: "Accepted", status: "True", reason: "Accepted", message: "accepted", lastTransitionTime: "2026-11-24T11:00:00Z", observedGeneration: 1)])
            let patched = try await client.patchStatus(Gateway.self, name: "public", namespace: "demo", status: status)
            #expect(patched.status?.conditions?.first { $0.type == "Accepted" }?.status == "True")
        }
    }

    @Test("informer: list+watch, adds and deletes")
    func informerScenarios() async throws {
        try await withControlPlane { plane, client in
            _ = try await client.create(service("s1"))
            let log = EventLog<Service>()
            let informer = Informer<Service>(client: client, options: fastOptions(SleepRecorder()), onStateChange: { log.record($0) }, handler: { log.record($0) })
            let task = Task { await informer.run() }
            await informer.waitForSync()
            #expect(informer.store.count == 1)
            _ = try await client.create(service("s2"))
            try await client.delete(Service.self, name: "s1", namespace: "demo")
            try await eventually("events") { informer.store.get("demo/s2") != nil && informer.store.get("demo/s1") == nil }
            #expect(log.all.contains("deleted demo/s1"))
            task.cancel()
            await task.value
        }
    }

    @Test("KubeClusterSource sends a snapshot after sync and a change on change")
    func agentSource() async throws {
        try await withControlPlane { plane, client in
            _ = try await client.create(service("web", nodePort: 30080))
            let source = KubeClusterSource(client: client, scope: WatchScope(nodeName: "node-a"), informerOptions: fastOptions(SleepRecorder()))
            var it = FoldedEvents(source)
            let first = try #require(await it.next())
            #expect(first.services.map(\.metadata.name).contains("web"))
            _ = try await client.create(slice("web-1", service: "web", addresses: ["10.244.1.10"]))
            var next = try #require(await it.next())
            while next.endpointSlices.isEmpty { next = try #require(await it.next()) }
            #expect(next.endpointSlices.map(\.metadata.name) == ["web-1"])
        }
    }
}

@Suite("envtest harness plumbing (runs everywhere)")
struct EnvtestHarnessTests {
    @Test("KUBEBUILDER_ASSETS: unset, missing binaries, complete")
    func assets() throws {
        #expect(EnvtestControlPlane.assets(environment: [:]).reason == "KUBEBUILDER_ASSETS not set (needs kube-apiserver and etcd)")
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(EnvtestControlPlane.assets(environment: ["KUBEBUILDER_ASSETS": dir]).reason.contains("no executable kube-apiserver"))
        for name in ["kube-apiserver", "etcd"] {
            try "#!/bin/sh\n".write(toFile: "\(dir)/\(name)", atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: "\(dir)/\(name)")
        }
        #expect(EnvtestControlPlane.assets(environment: ["KUBEBUILDER_ASSETS": dir]).path == dir)
    }

    @Test("CEL validation rules are stripped at every depth for servers that reject them")
    func stripValidations() throws {
        let crd: [String: Any] = ["spec": ["versions": [["schema": ["openAPIV3Schema": ["x-kubernetes-validations": [["rule": "self.a"]], "properties": ["a": ["type": "string", "x-kubernetes-validations": [["rule": "x"]]]]]]]]]]
        let stripped = EnvtestControlPlane.strip(crd, key: "x-kubernetes-validations")
        let json = String(decoding: try JSONSerialization.data(withJSONObject: stripped), as: UTF8.self)
        #expect(!json.contains("x-kubernetes-validations"))
        #expect(json.contains("\"type\":\"string\""))
    }
}
