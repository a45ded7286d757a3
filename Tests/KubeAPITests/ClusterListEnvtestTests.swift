import Agent
import FileSource
import Foundation
import GatewayCore
import KubeAPI
import KubeAPITestSupport
import KubeModels
import LoadBalancer
import Testing
import Views

/// The cluster read by one list (`portway routes/explain --kubeconfig`) and TLS Secrets in the
/// cluster source, against a real kube-apiserver with the upstream Gateway API CRDs. Skipped,
/// saying why, without KUBEBUILDER_ASSETS or ../shared/gateway-api-crds.
@Suite(
    "envtest: one list of the cluster for routes/explain; TLS Secrets in the source", .serialized,
    .enabled(if: EnvtestControlPlane.availableOrPrintSkip(), "needs KUBEBUILDER_ASSETS with kube-apiserver and etcd"),
    .enabled(if: SharedFixtures.gatewayCRDs, "needs ../shared/gateway-api-crds"))
struct ClusterListEnvtestTests {
    static func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

    /// Objects a small cluster with one Portway Gateway holds (its Service as a leader would have made
    /// it); the HTTPS listener's Secret holds `certificates`' serving pair (a real certificate and key:
    /// the CLI checks them with NIOSSL, the files view structurally, and both must take them).
    static func populate(_ admin: KubeClient, certificates: TestCertificates) async throws -> Int {
        _ = try await admin.create(Namespace(metadata: ObjectMeta(name: "demo", labels: ["team": "shop"])))
        _ = try await admin.create(node("node-a", internalIP: "192.0.2.1"))
        _ = try await admin.create(node("node-b", internalIP: "192.0.2.2"))
        _ = try await admin.create(GatewayClass(metadata: ObjectMeta(name: "portway"), spec: GatewayClassSpec(controllerName: GatewayOptions.defaultControllerName)))
        let gateway = try await admin.create(Gateway(
            metadata: ObjectMeta(name: "gw", namespace: "demo"),
            spec: GatewaySpec(gatewayClassName: "portway", listeners: [
                Listener(name: "http", port: 80, protocol: "HTTP"),
                Listener(name: "https", hostname: "secure.example", port: 443, protocol: "HTTPS", tls: GatewayTLSConfig(certificateRefs: [SecretObjectReference(name: "shop-tls")])),
            ])))
        let gatewayService = try await admin.create(GatewayServices.desiredService(for: gateway, defaultType: "NodePort"))
        _ = try await admin.create(service("web", port: 8080))
        _ = try await admin.create(slice("web-1", service: "web", addresses: ["10.244.1.10", "10.244.2.10"]))
        _ = try await admin.create(service("plain", port: 80, nodePort: 30090))
        _ = try await admin.create(slice("plain-1", service: "plain", addresses: ["10.244.1.20"]))
        // kube-proxy's rule: a Service of another proxy is not Portway's (not listed, not translated).
        _ = try await admin.create(service("elsewhere", port: 80, nodePort: 30091, labels: ["service.kubernetes.io/service-proxy-name": "other"]))
        _ = try await admin.create(HTTPRoute(
            metadata: ObjectMeta(name: "shop", namespace: "demo"),
            spec: HTTPRouteSpec(parentRefs: [ParentReference(name: "gw")], hostnames: ["shop.example", "secure.example"], rules: [
                HTTPRouteRule(matches: [HTTPRouteMatch(path: HTTPPathMatch(type: "PathPrefix", value: "/cart"))], backendRefs: [HTTPBackendRef(name: "web", port: 8080)]),
            ])))
        _ = try await admin.create(Secret(
            metadata: ObjectMeta(name: "shop-tls", namespace: "demo"), type: Secret.tlsType,
            data: [
                "tls.crt": certificates.read(certificates.serverCertPath).base64EncodedString(),
                "tls.key": certificates.read(certificates.serverKeyPath).base64EncodedString(),
            ]))
        _ = try await admin.create(Secret(metadata: ObjectMeta(name: "db-password", namespace: "demo"), type: "Opaque", data: ["password": base64("hunter2")]))
        return try #require(gatewayService.spec.ports?.first { $0.port == 80 }?.nodePort)
    }

    /// What `kubectl get -o yaml` of these kinds prints (a `kind: List`, each item with its kind
    /// and apiVersion), as the raw JSON the API server serves: written into `directory`.
    static func dump(_ plane: EnvtestControlPlane, to directory: String) async throws {
        let paths = [
            ("v1", "Service", "/api/v1/services"), ("discovery.k8s.io/v1", "EndpointSlice", "/apis/discovery.k8s.io/v1/endpointslices"),
            ("v1", "Node", "/api/v1/nodes"), ("v1", "Namespace", "/api/v1/namespaces"), ("v1", "Secret", "/api/v1/secrets"),
            ("gateway.networking.k8s.io/v1", "GatewayClass", "/apis/gateway.networking.k8s.io/v1/gatewayclasses"),
            ("gateway.networking.k8s.io/v1", "Gateway", "/apis/gateway.networking.k8s.io/v1/gateways"),
            ("gateway.networking.k8s.io/v1", "HTTPRoute", "/apis/gateway.networking.k8s.io/v1/httproutes"),
        ]
        for (apiVersion, kind, path) in paths {
            let response = try await CurlTransport.shared.send(HTTPRequest(
                url: "https://127.0.0.1:\(plane.port)\(path)", headers: ["Authorization: Bearer \(EnvtestControlPlane.adminToken)", "Accept: application/json"],
                tls: TLSSettings(caData: plane.certificates.read(plane.certificates.caCertPath))))
            #expect(response.status == 200, "\(path)")
            let list = try #require(try JSONSerialization.jsonObject(with: response.body) as? [String: Any])
            let items = (list["items"] as? [[String: Any]] ?? []).map { item -> [String: Any] in
                var out = item
                out["apiVersion"] = apiVersion
                out["kind"] = kind
                return out
            }
            let document: [String: Any] = ["apiVersion": "v1", "kind": "List", "items": items]
            try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys]).write(to: URL(fileURLWithPath: "\(directory)/\(kind).yaml"))
        }
    }

    @Test("routes and explain from one list of the API server equal what -f gives on the same objects dumped; the agent's selectors apply")
    func kubeconfigViewEqualsFiles() async throws {
        let plane = try await EnvtestControlPlane.start(crdDirectory: crdDirectory)
        defer { plane.stop() }
        let admin = KubeClient(config: plane.clusterConfig())
        let nodePort = try await Self.populate(admin, certificates: plane.certificates)
        let directory = try makeTempDirectory("portway-kcfg")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await Self.dump(plane, to: directory)

        let listed = try await ClusterSnapshotList.list(client: admin, scope: WatchScope(nodeName: ""), allNodes: true)
        // The v1.2.1 CRDs this suite installs have no ListenerSet (standard since v1.5) and no v1
        // BackendTLSPolicy (v1 since v1.4): the warnings allowed are those kinds' "not served, taken as none".
        #expect(
            listed.warnings.filter { !$0.hasPrefix("listenersets: not served") && !$0.hasPrefix("backendtlspolicies: not served") }.isEmpty,
            "\(listed.warnings)")
        #expect(!listed.snapshot.services.contains { $0.metadata.name == "elsewhere" }, "the Service of another proxy is not listed")
        #expect(listed.snapshot.secrets.map(\.metadata.name) == ["shop-tls"], "TLS Secrets only")
        #expect(listed.snapshot.nodes.map(\.metadata.name) == ["node-a", "node-b"])
        #expect(listed.snapshot.gateways.map(\.metadata.name) == ["gw"])

        let options = GatewayViewOptions(directory: directory)
        let fromCluster = Command.routes(try GatewayView.build(listed.snapshot, options: options), format: .json)
        let fromFiles = try Command.routes(options, format: .json)
        #expect(fromCluster.stdout == fromFiles.stdout)
        let tables = try #require(try JSONSerialization.jsonObject(with: Data(fromCluster.stdout.utf8)) as? [String: Any])
        #expect((tables["tables"] as? [Any])?.count == 2, "ports 80 and 443: \(fromCluster.stdout)")
        #expect(fromCluster.stdout.contains("shop-tls"), "the HTTPS listener's certificate resolved: \(fromCluster.stdout)")

        let requests = [
            ExplainRequest(to: "192.0.2.2:\(nodePort)", host: "shop.example", path: "/cart/items"),
            ExplainRequest(to: "192.0.2.1:\(nodePort)", host: "shop.example", path: "/nothing"),
            ExplainRequest(to: "192.0.2.1:30090", host: "plain.example", path: "/"),
            ExplainRequest(to: "192.0.2.1:30091", host: "elsewhere.example", path: "/"),
        ]
        // The CLI itself, when the portway binary is next to the tests: the same bytes.
        if let binary = Self.portwayBinary {
            let kubeconfig = NSTemporaryDirectory() + "pwc2-\(UUID().uuidString).kubeconfig"
            defer { try? FileManager.default.removeItem(atPath: kubeconfig) }
            try EnvtestControlPlane.kubeconfig(
                server: "https://127.0.0.1:\(plane.port)", caData: plane.certificates.read(plane.certificates.caCertPath),
                token: EnvtestControlPlane.adminToken, user: "admin"
            ).write(toFile: kubeconfig, atomically: true, encoding: .utf8)
            let routes = try await Self.run(binary, ["routes", "--kubeconfig", kubeconfig, "-o", "json"])
            #expect(routes.status == 0)
            #expect(routes.stdout == fromFiles.stdout)
            let request = requests[0]
            let explained = try await Self.run(binary, ["explain", "--kubeconfig", kubeconfig, "--to", request.to, "--host", request.host, "--path", request.path, "-o", "json"])
            #expect(explained.status == 0)
            #expect(explained.stdout == (try Command.explain(options, request: request, format: .json)).stdout)
        } else {
            print("skipped: the portway binary is not next to the tests; the CLI over --kubeconfig is not run")
        }

        var codes: [String] = []
        for request in requests {
            let cluster = try Command.explain(request: request, format: .json) { address throws(GatewayCommandError) in
                try GatewayView.build(listed.snapshot, options: options, preferNodeWithAddress: address)
            }
            let files = try Command.explain(options, request: request, format: .json)
            #expect(cluster.stdout == files.stdout, "\(request.to) \(request.host)\(request.path)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(cluster.stdout.utf8)) as? [String: Any])
            codes.append("\(json["mode"] as? String ?? "?") \((json["code"] as? Int).map(String.init) ?? "null")")
        }
        #expect(codes == ["l7lb 200", "l7lb 404", "l4 null", "none null"], "the requests take the paths they should: \(codes)")
    }

    @Test("the cluster source watches TLS Secrets only: in the first snapshot and as changes; an Opaque Secret never arrives")
    func tlsSecretsFlowThroughTheSource() async throws {
        let plane = try await EnvtestControlPlane.start(crdDirectory: crdDirectory)
        defer { plane.stop() }
        let admin = KubeClient(config: plane.clusterConfig())
        _ = try await admin.create(Namespace(metadata: ObjectMeta(name: "demo")))
        let cert = ["tls.crt": Self.base64("cert"), "tls.key": Self.base64("key")]
        _ = try await admin.create(Secret(metadata: ObjectMeta(name: "first-tls", namespace: "demo"), type: Secret.tlsType, data: cert))
        _ = try await admin.create(Secret(metadata: ObjectMeta(name: "first-opaque", namespace: "demo"), type: "Opaque", data: ["k": Self.base64("v")]))

        let source = KubeClusterSource(client: admin, scope: WatchScope(nodeName: "node-a", watchNode: false), informerOptions: fastOptions(SleepRecorder()))
        var events = FoldedEvents(source)
        let first = try #require(await events.next())
        #expect(events.lastWasSnapshot)
        #expect(first.secrets.map(\.metadata.name) == ["first-tls"])
        #expect(first.secrets.first?.data?["tls.crt"] == Self.base64("cert"))

        // An Opaque Secret, then a TLS one: only the TLS one arrives, as a change of its key.
        _ = try await admin.create(Secret(metadata: ObjectMeta(name: "later-opaque", namespace: "demo"), type: "Opaque", data: ["k": Self.base64("v")]))
        _ = try await admin.create(Secret(metadata: ObjectMeta(name: "later-tls", namespace: "demo"), type: Secret.tlsType, data: cert))
        var seen: [ClusterChange] = []
        var state = first
        while !state.secrets.contains(where: { $0.metadata.name == "later-tls" }) {
            state = try #require(await events.next())
            seen += events.lastChanges
        }
        #expect(state.secrets.map(\.metadata.name) == ["first-tls", "later-tls"])
        let secretKeys = seen.compactMap { change -> String? in
            if case .secrets(let key, _) = change { return key.description }
            return nil
        }
        #expect(secretKeys == ["demo/later-tls"], "no change for the Opaque Secret: \(seen)")

        // Its deletion arrives too.
        try await admin.delete(Secret.self, name: "first-tls", namespace: "demo")
        while state.secrets.contains(where: { $0.metadata.name == "first-tls" }) { state = try #require(await events.next()) }
        #expect(state.secrets.map(\.metadata.name) == ["later-tls"])
    }

    /// The `portway` binary that `swift build` puts beside the test bundle.
    static let portwayBinary: String? = {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("portway").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir.deleteLastPathComponent()
        }
        return nil
    }()

    /// Runs a command to completion (stdout to a file: no pipe to fill), off the cooperative pool.
    static func run(_ binary: String, _ arguments: [String]) async throws -> (status: Int32, stdout: String) {
        let output = NSTemporaryDirectory() + "pwc2-cli-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: output) }
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.standardOutput = handle
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        try handle.close()
        return (status, try String(contentsOfFile: output, encoding: .utf8))
    }
}
