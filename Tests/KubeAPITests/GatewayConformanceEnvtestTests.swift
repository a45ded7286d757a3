import Agent
import Foundation
import GatewayCore
import KubeAPI
import KubeAPITestSupport
import KubeModels
import Testing

/// The Gateway API v1.6.1 CRDs (standard channel, ../shared/gateway-api-crds/v1.6.1; the harness
/// strips `x-kubernetes-validations` when the server predates CEL).
let crdDirectoryV161: String = crdDirectory + "/v1.6.1"

private let haveV161CRDs: Bool = {
    let ok = FileManager.default.fileExists(atPath: crdDirectoryV161 + "/gatewayclasses.yaml")
    if !ok { print("skipped: GatewayConformanceEnvtestTests need \(crdDirectoryV161)") }
    return ok
}()

/// The GATEWAY-HTTP core tests that check only status, against a real kube-apiserver with the
/// v1.6.1 CRDs and one agent's Gateway leader (docs/GATEWAY-API.md names each upstream test).
@Suite(
    "envtest: the Gateway leader's status with the v1.6.1 CRDs", .serialized,
    .enabled(if: EnvtestControlPlane.availableOrPrintSkip(), "needs KUBEBUILDER_ASSETS with kube-apiserver and etcd"),
    .enabled(if: haveV161CRDs, "needs ../shared/gateway-api-crds/v1.6.1"))
struct GatewayConformanceEnvtestTests {
    static let infra = "gateway-conformance-infra"
    typealias Leader = GatewayLeaderEnvtestTests

    /// `Type=Status/Reason` of each condition.
    static func summary(_ conditions: [Condition]?) -> [String] {
        (conditions ?? []).map { "\($0.type)=\($0.status)/\($0.reason ?? "")" }
    }

    /// Whether every condition was written for `generation` (the suite's "latest conditions").
    static func latest(_ conditions: [Condition]?, _ generation: Int64?) -> Bool {
        guard let conditions, !conditions.isEmpty, let generation else { return false }
        return conditions.allSatisfy { $0.observedGeneration == generation }
    }

    static func mergePatch(_ object: [String: Any]) throws -> Data { try JSONSerialization.data(withJSONObject: object) }

    /// A one-agent control plane (its leader) over a server with the v1.6.1 CRDs; `body` gets the admin client.
    static func withLeader(_ body: (KubeClient, EnvtestControlPlane) async throws -> Void) async throws {
        let plane = try await EnvtestControlPlane.start(crdDirectory: crdDirectoryV161)
        defer { plane.stop() }
        let admin = KubeClient(config: plane.clusterConfig())
        for name in [infra, "portway-system", "gateway-conformance-web-backend"] { _ = try await admin.create(Namespace(metadata: ObjectMeta(name: name))) }
        _ = try await admin.create(GatewayClass(metadata: ObjectMeta(name: "portway"), spec: GatewayClassSpec(controllerName: GatewayOptions.defaultControllerName)))
        let agent = Leader.RunningAgent.start("node-a", plane: plane, passes: Leader.Passes())
        defer { for task in agent.tasks { task.cancel() } }
        try await eventually("the agent leads") { await agent.role == .leader }
        try await body(admin, plane)
        await agent.stop()
    }

    /// The v1.6.1 GatewayClass keeps `status.supportedFeatures` (the older CRDs drop the field), and
    /// the leader writes exactly `GatewayFeatures.supported` there. GatewayClassObservedGenerationBump:
    /// a spec change (`description`) is followed by Accepted at the new generation.
    @Test("GatewayClass: supportedFeatures is exactly GatewayFeatures.supported on the real server; Accepted follows a generation bump")
    func gatewayClassSupportedFeaturesAndGenerationBump() async throws {
        try await Self.withLeader { admin, _ in
            var gatewayClass: GatewayClass?
            try await eventually("the GatewayClass accepted with its supported features") {
                gatewayClass = try? await admin.get(GatewayClass.self, name: "portway")
                return gatewayClass?.status?.supportedFeatures != nil && Self.latest(gatewayClass?.status?.conditions, gatewayClass?.metadata.generation)
            }
            #expect(gatewayClass?.status?.supportedFeatures?.map(\.name) == GatewayFeatures.supported)
            #expect(Self.summary(gatewayClass?.status?.conditions) == ["Accepted=True/Accepted"])
            // The raw object, in case the model hid something: a list of {name} in the server's own JSON.
            let original = try #require(gatewayClass)
            let bumped = try await admin.patch(GatewayClass.self, name: "portway", mergePatch: Self.mergePatch(["spec": ["description": "new"]]))
            #expect(bumped.metadata.generation != original.metadata.generation)
            try await eventually("Accepted at generation \(bumped.metadata.generation ?? 0)") {
                let now = try await admin.get(GatewayClass.self, name: "portway")
                return Self.latest(now.status?.conditions, bumped.metadata.generation) && Self.summary(now.status?.conditions) == ["Accepted=True/Accepted"]
            }
            #expect(try await admin.get(GatewayClass.self, name: "portway").status?.supportedFeatures?.map(\.name) == GatewayFeatures.supported)
        }
    }

    /// GatewayInvalidParametersRef, GatewayAddressEmpty, GatewayObservedGenerationBump, GatewayModifyListeners (add and
    /// remove), HTTPRouteObservedGenerationBump, and the route reasons of
    /// HTTPRouteInvalidNonExistentBackendRef, HTTPRouteInvalidBackendRefUnknownKind and
    /// HTTPRouteInvalidCrossNamespaceBackendRef, each as the upstream test checks it.
    @Test("Gateway and HTTPRoute status on the real server: InvalidParameters, generation bumps, listeners added and removed, invalid backendRefs")
    func gatewayAndRouteStatus() async throws {
        try await Self.withLeader { admin, plane in
            let ns = Self.infra
            let all = AllowedRoutes(namespaces: RouteNamespaces(from: "All"))
            _ = try await admin.create(Secret(
                metadata: ObjectMeta(name: "tls-validity-checks-certificate", namespace: ns), type: Secret.tlsType,
                data: [
                    "tls.crt": plane.certificates.read(plane.certificates.serverCertPath).base64EncodedString(),
                    "tls.key": plane.certificates.read(plane.certificates.serverKeyPath).base64EncodedString(),
                ]))
            for name in ["infra-backend-v1", "infra-backend-v2"] {
                _ = try await admin.create(Service(metadata: ObjectMeta(name: name, namespace: ns), spec: ServiceSpec(ports: [ServicePort(protocol: "TCP", port: 8080)])))
            }
            _ = try await admin.create(Service(
                metadata: ObjectMeta(name: "web-backend", namespace: "gateway-conformance-web-backend"), spec: ServiceSpec(ports: [ServicePort(protocol: "TCP", port: 8080)])))
            let https = Listener(
                name: "https", hostname: "secure.test.com", port: 443, protocol: "HTTPS", allowedRoutes: all,
                tls: GatewayTLSConfig(certificateRefs: [SecretObjectReference(group: "", kind: "Secret", name: "tls-validity-checks-certificate", namespace: ns)]))
            let http = Listener(name: "http", port: 80, protocol: "HTTP", allowedRoutes: all)
            _ = try await admin.create(Gateway(
                metadata: ObjectMeta(name: "gateway-invalid-parameters-ref", namespace: ns),
                spec: GatewaySpec(
                    gatewayClassName: "portway", listeners: [Listener(name: "http", port: 80, protocol: "HTTP")],
                    infrastructure: GatewayInfrastructure(parametersRef: LocalParametersReference(group: "invalid.io", kind: "InvalidParameters", name: "invalid")))))
            _ = try await admin.create(Gateway(
                metadata: ObjectMeta(name: "gateway-observed-generation-bump", namespace: ns),
                spec: GatewaySpec(gatewayClassName: "portway", listeners: [Listener(name: "http", hostname: "bar.com", port: 80, protocol: "HTTP", allowedRoutes: all)])))
            _ = try await admin.create(Gateway(metadata: ObjectMeta(name: "gateway-add-listener", namespace: ns), spec: GatewaySpec(gatewayClassName: "portway", listeners: [https])))
            _ = try await admin.create(Gateway(metadata: ObjectMeta(name: "gateway-remove-listener", namespace: ns), spec: GatewaySpec(gatewayClassName: "portway", listeners: [https, http])))
            _ = try await admin.create(Gateway(metadata: ObjectMeta(name: "same-namespace", namespace: ns), spec: GatewaySpec(gatewayClassName: "portway", listeners: [
                Listener(name: "http", port: 80, protocol: "HTTP"),
            ])))
            func route(_ name: String, parent: String, _ ref: HTTPBackendRef) -> HTTPRoute {
                HTTPRoute(metadata: ObjectMeta(name: name, namespace: ns), spec: HTTPRouteSpec(parentRefs: [ParentReference(name: parent)], rules: [HTTPRouteRule(backendRefs: [ref])]))
            }
            _ = try await admin.create(route("http-route-1", parent: "gateway-add-listener", HTTPBackendRef(name: "infra-backend-v1", port: 8080)))
            _ = try await admin.create(route("http-route-2", parent: "gateway-remove-listener", HTTPBackendRef(name: "infra-backend-v1", port: 8080)))
            _ = try await admin.create(route("observed-generation-bump", parent: "same-namespace", HTTPBackendRef(name: "infra-backend-v1", port: 8080)))
            _ = try await admin.create(route("invalid-nonexistent-backend-ref", parent: "same-namespace", HTTPBackendRef(name: "nonexistent", namespace: ns, port: 8080)))
            _ = try await admin.create(route(
                "invalid-backend-ref-unknown-kind", parent: "same-namespace",
                HTTPBackendRef(group: "unknownkind.example.com", kind: "NonExistent", name: "infra-backend-v1", port: 8080)))
            _ = try await admin.create(route(
                "invalid-cross-namespace-backend-ref", parent: "same-namespace",
                HTTPBackendRef(name: "web-backend", namespace: "gateway-conformance-web-backend", port: 8080)))

            func gateway(_ name: String) async throws -> Gateway { try await admin.get(Gateway.self, name: name, namespace: ns) }
            /// The Gateway once its conditions and its listeners' are all at its generation.
            func latestGateway(_ name: String, where extra: @escaping @Sendable (Gateway) -> Bool = { _ in true }) async throws -> Gateway {
                var out: Gateway?
                try await eventually("Gateway \(name): conditions at its generation") {
                    out = try? await admin.get(Gateway.self, name: name, namespace: ns)
                    guard let g = out else { return false }
                    return Self.latest(g.status?.conditions, g.metadata.generation)
                        && (g.status?.listeners ?? []).allSatisfy { Self.latest($0.conditions, g.metadata.generation) } && extra(g)
                }
                return out!  // set: the condition above holds only for a Gateway read
            }
            func listeners(_ g: Gateway) -> [String] {
                (g.status?.listeners ?? []).map { l in
                    "\(l.name): \(Self.summary(l.conditions).filter { $0.hasPrefix("Accepted") || $0.hasPrefix("ResolvedRefs") }) attached=\(l.attachedRoutes) kinds=\(l.supportedKinds.map(\.kind))"
                }
            }

            // GatewayInvalidParametersRef.
            let invalid = try await latestGateway("gateway-invalid-parameters-ref")
            #expect(Self.summary(invalid.status?.conditions).first == "Accepted=False/InvalidParameters")

            // GatewayAddressEmpty: an address type without a value; the Gateway gets an address of its
            // Service (NodePort: the Nodes' InternalIPs).
            _ = try await admin.create(node("node-a", internalIP: "192.0.2.1"))
            _ = try await admin.create(Gateway(
                metadata: ObjectMeta(name: "gateway-without-address-value", namespace: ns),
                spec: GatewaySpec(gatewayClassName: "portway", listeners: [Listener(name: "http", port: 8080, protocol: "HTTP")], addresses: [GatewayAddress(type: "IPAddress", value: nil)])))
            let addressed = try await latestGateway("gateway-without-address-value") { $0.status?.addresses?.isEmpty == false }
            #expect(addressed.spec.addresses == [GatewayAddress(type: "IPAddress", value: nil)], "the server keeps the address without value")
            #expect(Self.summary(addressed.status?.conditions) == ["Accepted=True/Accepted", "Programmed=True/Programmed"])
            #expect(addressed.status?.addresses == [GatewayAddress(type: "IPAddress", value: "192.0.2.1")])

            // GatewayObservedGenerationBump: a listener added; every condition follows the new generation.
            let before = try await latestGateway("gateway-observed-generation-bump")
            let alternate: [String: Any] = ["name": "alternate", "hostname": "foo.com", "port": 80, "protocol": "HTTP", "allowedRoutes": ["namespaces": ["from": "All"]]]
            let bar: [String: Any] = ["name": "http", "hostname": "bar.com", "port": 80, "protocol": "HTTP", "allowedRoutes": ["namespaces": ["from": "All"]]]
            let bumped = try await admin.patch(Gateway.self, name: before.metadata.name, namespace: ns, mergePatch: Self.mergePatch(["spec": ["listeners": [bar, alternate]]]))
            #expect(bumped.metadata.generation != before.metadata.generation)
            let after = try await latestGateway("gateway-observed-generation-bump") { $0.metadata.generation == bumped.metadata.generation }
            #expect(Self.summary(after.status?.conditions).first == "Accepted=True/Accepted")
            #expect(after.status?.listeners?.map(\.name) == ["http", "alternate"])

            // GatewayModifyListeners: add a listener…
            let added = try await gateway("gateway-add-listener")
            let httpListener: [String: Any] = ["name": "http", "port": 80, "protocol": "HTTP", "hostname": "data.test.com", "allowedRoutes": ["namespaces": ["from": "All"]]]
            let httpsListener: [String: Any] = [
                "name": "https", "port": 443, "protocol": "HTTPS", "hostname": "secure.test.com", "allowedRoutes": ["namespaces": ["from": "All"]],
                "tls": ["certificateRefs": [["group": "", "kind": "Secret", "name": "tls-validity-checks-certificate", "namespace": ns]]],
            ]
            let addedNow = try await admin.patch(Gateway.self, name: "gateway-add-listener", namespace: ns, mergePatch: Self.mergePatch(["spec": ["listeners": [httpsListener, httpListener]]]))
            #expect(addedNow.metadata.generation != added.metadata.generation)
            let two = try await latestGateway("gateway-add-listener") { $0.metadata.generation == addedNow.metadata.generation }
            #expect(listeners(two) == [
                "https: [\"Accepted=True/Accepted\", \"ResolvedRefs=True/ResolvedRefs\"] attached=1 kinds=[\"HTTPRoute\"]",
                "http: [\"Accepted=True/Accepted\", \"ResolvedRefs=True/ResolvedRefs\"] attached=1 kinds=[\"HTTPRoute\"]",
            ])
            // …and remove one.
            let removing = try await gateway("gateway-remove-listener")
            #expect(removing.spec.listeners.count == 2)
            let httpAll: [String: Any] = ["name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": ["namespaces": ["from": "All"]]]
            let removed = try await admin.patch(Gateway.self, name: "gateway-remove-listener", namespace: ns, mergePatch: Self.mergePatch(["spec": ["listeners": [httpAll]]]))
            #expect(removed.metadata.generation != removing.metadata.generation)
            let one = try await latestGateway("gateway-remove-listener") { $0.metadata.generation == removed.metadata.generation }
            #expect(listeners(one) == ["http: [\"Accepted=True/Accepted\", \"ResolvedRefs=True/ResolvedRefs\"] attached=1 kinds=[\"HTTPRoute\"]"])

            // The routes' entries for the parent `same-namespace`.
            func parent(_ route: String) async throws -> RouteParentStatus? {
                try await admin.get(HTTPRoute.self, name: route, namespace: ns).status?.parents?.first { $0.parentRef.name == "same-namespace" }
            }
            let reasons: [(String, String)] = [
                ("invalid-nonexistent-backend-ref", "ResolvedRefs=False/BackendNotFound"),
                ("invalid-backend-ref-unknown-kind", "ResolvedRefs=False/InvalidKind"),
                ("invalid-cross-namespace-backend-ref", "ResolvedRefs=False/RefNotPermitted"),
            ]
            for (name, resolved) in reasons {
                try await eventually("HTTPRoute \(name): \(resolved)") { Self.summary(try await parent(name)?.conditions).contains(resolved) }
                #expect(Self.summary(try await parent(name)?.conditions).contains("Accepted=True/Accepted"), "\(name): still accepted")
            }

            // HTTPRouteObservedGenerationBump: the backend changed; Accepted and ResolvedRefs at the new generation.
            let original = try await admin.get(HTTPRoute.self, name: "observed-generation-bump", namespace: ns)
            try await eventually("the route's conditions at generation \(original.metadata.generation ?? 0)") {
                Self.latest(try await parent("observed-generation-bump")?.conditions, original.metadata.generation)
            }
            let rules: [[String: Any]] = [["backendRefs": [["name": "infra-backend-v2", "port": 8080]]]]
            let edited = try await admin.patch(HTTPRoute.self, name: "observed-generation-bump", namespace: ns, mergePatch: Self.mergePatch(["spec": ["rules": rules]]))
            #expect(edited.metadata.generation != original.metadata.generation)
            try await eventually("the route's conditions at generation \(edited.metadata.generation ?? 0)") {
                let conditions = try await parent("observed-generation-bump")?.conditions
                return Self.latest(conditions, edited.metadata.generation)
                    && Self.summary(conditions).contains("Accepted=True/Accepted") && Self.summary(conditions).contains("ResolvedRefs=True/ResolvedRefs")
            }
        }
    }

    /// GatewayInvalidTLSConfiguration (a missing Secret, a reference of another group or kind, a
    /// malformed Secret: ResolvedRefs False/InvalidCertificateRef), GatewaySecretMissingReferenceGrant
    /// and GatewaySecretInvalidReferenceGrant (RefNotPermitted, with upstream's seven grants that
    /// miss by one field each), GatewaySecretReferenceGrantSpecific and
    /// GatewaySecretReferenceGrantAllInNamespace (Programmed and ResolvedRefs True), each with
    /// attachedRoutes 0 as upstream; and an HTTPS listener without `tls`, which v1.6 requires (its
    /// CEL rule was reverted in v1.6.1, so the server takes it): not served, InvalidCertificateRef.
    @Test("Listener certificate references on the real server: invalid TLS configurations, ReferenceGrants missing, wrong and right, HTTPS without tls")
    func listenerCertificateReferences() async throws {
        try await Self.withLeader { admin, plane in
            let ns = Self.infra, web = "gateway-conformance-web-backend", app = "gateway-conformance-app-backend"
            _ = try await admin.create(Namespace(metadata: ObjectMeta(name: app)))
            let pair = [
                "tls.crt": plane.certificates.read(plane.certificates.serverCertPath).base64EncodedString(),
                "tls.key": plane.certificates.read(plane.certificates.serverKeyPath).base64EncodedString(),
            ]
            _ = try await admin.create(Secret(metadata: ObjectMeta(name: "tls-validity-checks-certificate", namespace: ns), type: Secret.tlsType, data: pair))
            _ = try await admin.create(Secret(metadata: ObjectMeta(name: "certificate", namespace: web), type: Secret.tlsType, data: pair))
            let hello = Data("Hello world\n".utf8).base64EncodedString()
            _ = try await admin.create(Secret(metadata: ObjectMeta(name: "malformed-certificate", namespace: ns), type: Secret.tlsType, data: ["tls.crt": hello, "tls.key": hello]))
            func https(_ ref: SecretObjectReference?) -> [Listener] {
                [Listener(
                    name: "https", port: 443, protocol: "HTTPS", allowedRoutes: AllowedRoutes(namespaces: RouteNamespaces(from: "All")),
                    tls: ref.map { GatewayTLSConfig(certificateRefs: [$0]) })]
            }
            func create(_ name: String, _ ref: SecretObjectReference?) async throws {
                _ = try await admin.create(Gateway(metadata: ObjectMeta(name: name, namespace: ns), spec: GatewaySpec(gatewayClassName: "portway", listeners: https(ref))))
            }
            func grant(_ name: String, in namespace: String, from: ReferenceGrantFrom, to: ReferenceGrantTo) async throws {
                _ = try await admin.create(ReferenceGrant(metadata: ObjectMeta(name: name, namespace: namespace), spec: ReferenceGrantSpec(from: [from], to: [to])))
            }
            let fromGateways = ReferenceGrantFrom(group: GatewayAPI.group, kind: "Gateway", namespace: ns)
            let toCertificate = ReferenceGrantTo(group: "", kind: "Secret", name: "certificate")
            let crossNamespace = SecretObjectReference(group: "", kind: "Secret", name: "certificate", namespace: web)
            try await create("gateway-certificate-nonexistent-secret", SecretObjectReference(group: "", kind: "Secret", name: "nonexistent-certificate"))
            try await create("gateway-certificate-unsupported-group", SecretObjectReference(group: "wrong.group.company.io", kind: "Secret", name: "tls-validity-checks-certificate"))
            try await create("gateway-certificate-unsupported-kind", SecretObjectReference(group: "", kind: "WrongKind", name: "tls-validity-checks-certificate"))
            try await create("gateway-certificate-malformed-secret", SecretObjectReference(group: "", kind: "Secret", name: "malformed-certificate"))
            try await create("gateway-https-without-tls", nil)
            try await create("gateway-secret-missing-reference-grant", crossNamespace)
            try await grant("reference-grant-wrong-namespace", in: app, from: fromGateways, to: toCertificate)
            try await grant("reference-grant-wrong-from-group", in: web, from: ReferenceGrantFrom(group: "not-the-group-youre-looking-for", kind: "Gateway", namespace: ns), to: toCertificate)
            try await grant("reference-grant-wrong-from-kind", in: web, from: ReferenceGrantFrom(group: GatewayAPI.group, kind: "HTTPRoute", namespace: ns), to: toCertificate)
            try await grant("reference-grant-wrong-from-namespace", in: web, from: ReferenceGrantFrom(group: GatewayAPI.group, kind: "Gateway", namespace: "not-the-namespace-youre-looking-for"), to: toCertificate)
            try await grant("reference-grant-wrong-to-group", in: web, from: fromGateways, to: ReferenceGrantTo(group: "not-the-group-youre-looking-for", kind: "Secret", name: "not-the-certificate-youre-looking-for"))
            try await grant("reference-grant-wrong-to-kind", in: web, from: fromGateways, to: ReferenceGrantTo(group: "", kind: "Service", name: "certificate"))
            try await grant("reference-grant-wrong-to-name", in: web, from: fromGateways, to: ReferenceGrantTo(group: "", kind: "Secret", name: "not-the-certificate-youre-looking-for"))
            try await create("gateway-secret-invalid-reference-grant", crossNamespace)

            /// `ResolvedRefs=…/Reason Programmed=…/Reason attached=N kinds=[…]` of the Gateway's listener `https`, at its generation.
            func https(_ gateway: String) async throws -> String {
                let g = try await admin.get(Gateway.self, name: gateway, namespace: ns)
                guard let l = g.status?.listeners?.first(where: { $0.name == "https" }), Self.latest(l.conditions, g.metadata.generation) else { return "no status" }
                let wanted = Self.summary(l.conditions).filter { $0.hasPrefix("ResolvedRefs") || $0.hasPrefix("Programmed") }
                return "\(wanted.joined(separator: " ")) attached=\(l.attachedRoutes) kinds=\(l.supportedKinds.map(\.kind))"
            }
            let refused: [(String, String)] = [
                ("gateway-certificate-nonexistent-secret", "InvalidCertificateRef"),
                ("gateway-certificate-unsupported-group", "InvalidCertificateRef"),
                ("gateway-certificate-unsupported-kind", "InvalidCertificateRef"),
                ("gateway-certificate-malformed-secret", "InvalidCertificateRef"),
                ("gateway-https-without-tls", "InvalidCertificateRef"),
                ("gateway-secret-missing-reference-grant", "RefNotPermitted"),
                ("gateway-secret-invalid-reference-grant", "RefNotPermitted"),
            ]
            for (gateway, reason) in refused {
                let want = "ResolvedRefs=False/\(reason) Programmed=False/Invalid attached=0 kinds=[\"HTTPRoute\"]"
                try await eventually("Gateway \(gateway): \(want)") { try await https(gateway) == want }
            }
            // The right grants, one at a time (upstream applies each test's manifests alone).
            let served = "ResolvedRefs=True/ResolvedRefs Programmed=True/Programmed attached=0 kinds=[\"HTTPRoute\"]"
            try await grant("reference-grant-specific", in: web, from: fromGateways, to: toCertificate)
            try await create("gateway-secret-reference-grant-specific", crossNamespace)
            try await eventually("Gateway gateway-secret-reference-grant-specific: \(served)") { try await https("gateway-secret-reference-grant-specific") == served }
            try await admin.delete(ReferenceGrant.self, name: "reference-grant-specific", namespace: web)
            try await eventually("without its grant the specific Gateway's listener is refused again") {
                try await https("gateway-secret-reference-grant-specific").hasPrefix("ResolvedRefs=False/RefNotPermitted")
            }
            try await grant("reference-grant-all-in-namespace", in: web, from: fromGateways, to: ReferenceGrantTo(group: "", kind: "Secret"))
            try await create("gateway-secret-reference-grant-all-in-namespace", crossNamespace)
            try await eventually("Gateway gateway-secret-reference-grant-all-in-namespace: \(served)") { try await https("gateway-secret-reference-grant-all-in-namespace") == served }
        }
    }

    /// GatewayInfrastructure (GatewayInfrastructurePropagation): the upstream Gateway
    /// `gateway-with-infrastructure-metadata` (annotation key1: value1, label key2: value2, HTTP on
    /// 8080) is Accepted with its latest conditions, and the Service found by the
    /// `gateway.networking.k8s.io/gateway-name` label carries both. Beyond upstream: a changed value
    /// and a new key follow, a removed key goes, and what others put on the Service stays.
    @Test("GatewayInfrastructure: the Gateway's infrastructure labels and annotations on its Service, on the real server; changes follow")
    func gatewayInfrastructurePropagation() async throws {
        try await Self.withLeader { admin, _ in
            let ns = Self.infra, name = "gateway-with-infrastructure-metadata"
            _ = try await admin.create(Gateway(
                metadata: ObjectMeta(name: name, namespace: ns),
                spec: GatewaySpec(
                    gatewayClassName: "portway", listeners: [Listener(name: "http", port: 8080, protocol: "HTTP")],
                    infrastructure: GatewayInfrastructure(labels: ["key2": "value2"], annotations: ["key1": "value1"]))))
            try await eventually("Gateway \(name) Accepted at its generation") {
                let g = try await admin.get(Gateway.self, name: name, namespace: ns)
                return Self.latest(g.status?.conditions, g.metadata.generation) && Self.summary(g.status?.conditions).contains("Accepted=True/Accepted")
            }
            /// The labels and annotations of the Services the upstream test lists (by the gateway-name label).
            func services() async throws -> [(labels: [String: String], annotations: [String: String])] {
                try await admin.list(Service.self, options: ListOptions(namespace: ns, labelSelector: "\(GatewayAPI.gatewayNameLabel)=\(name)")).items
                    .map { ($0.metadata.labels ?? [:], $0.metadata.annotations ?? [:]) }
            }
            func carries(_ labels: [String: String], _ annotations: [String: String]) async throws -> Bool {
                let found = try await services()
                guard let service = found.first else { return false }
                return labels.allSatisfy { service.labels[$0.key] == $0.value } && annotations.allSatisfy { service.annotations[$0.key] == $0.value }
            }
            try await eventually("the Gateway's Service with key2=value2 and key1: value1") { try await carries(["key2": "value2"], ["key1": "value1"]) }
            #expect(try await services().count == 1)
            // Someone else's label and annotation on the Service.
            let serviceName = GatewayServices.serviceName(gateway: name)
            _ = try await admin.patch(Service.self, name: serviceName, namespace: ns, mergePatch: Self.mergePatch([
                "metadata": ["labels": ["team": "edge"], "annotations": ["note": "kept"]],
            ]))
            // key2 changes value, key3 is new, key1 goes; the gateway-name label cannot be taken over.
            _ = try await admin.patch(Gateway.self, name: name, namespace: ns, mergePatch: Self.mergePatch([
                "spec": ["infrastructure": ["labels": ["key2": "other", "key3": "value3"], "annotations": NSNull()]],
            ]))
            try await eventually("the Service follows the Gateway's infrastructure") {
                guard let service = try await services().first else { return false }
                return service.labels["key2"] == "other" && service.labels["key3"] == "value3" && service.annotations["key1"] == nil
            }
            let found = try await services()
            let service = try #require(found.first)
            #expect(service.labels[GatewayAPI.gatewayNameLabel] == name)
            #expect(service.labels["team"] == "edge" && service.annotations["note"] == "kept", "\(service)")
            #expect(service.annotations[GatewayServices.propagatedAnnotationsAnnotation] == nil, "\(service.annotations)")
            #expect(service.annotations[GatewayServices.propagatedLabelsAnnotation] == "key2,key3", "\(service.annotations)")
        }
    }

    /// GatewayInvalidRouteKind, GatewayListenerUnsupportedProtocol, GatewayWithAttachedRoutes,
    /// HTTPRouteInvalidCrossNamespaceParentRef, HTTPRouteInvalidParentRefNotMatchingSectionName and
    /// HTTPRouteInvalidParentRefSectionNameNotMatchingPort (HTTPRouteParentRefPort), each as the
    /// upstream test checks it.
    @Test("Listener kinds and protocols, attachedRoutes, parentRefs that do not attach, on the real server")
    func listenersAndParentRefs() async throws {
        try await Self.withLeader { admin, _ in
            let ns = Self.infra, web = "gateway-conformance-web-backend"
            let selected = RouteNamespaces(from: "Selector", selector: LabelSelector(matchLabels: ["kubernetes.io/metadata.name": ns]))
            func gateway(_ name: String, _ listeners: [Listener]) async throws {
                _ = try await admin.create(Gateway(metadata: ObjectMeta(name: name, namespace: ns), spec: GatewaySpec(gatewayClassName: "portway", listeners: listeners)))
            }
            func route(_ name: String, in namespace: String = ns, hostnames: [String]? = nil, _ parent: ParentReference, backend: String = "infra-backend-v1") async throws {
                _ = try await admin.create(HTTPRoute(
                    metadata: ObjectMeta(name: name, namespace: namespace),
                    spec: HTTPRouteSpec(parentRefs: [parent], hostnames: hostnames, rules: [HTTPRouteRule(backendRefs: [HTTPBackendRef(name: backend, port: 8080)])])))
            }
            _ = try await admin.create(Service(metadata: ObjectMeta(name: "infra-backend-v1", namespace: ns), spec: ServiceSpec(ports: [ServicePort(protocol: "TCP", port: 8080)])))
            _ = try await admin.create(Service(metadata: ObjectMeta(name: "web-backend", namespace: web), spec: ServiceSpec(ports: [ServicePort(protocol: "TCP", port: 8080)])))
            let all = RouteNamespaces(from: "All")
            try await gateway("gateway-only-invalid-route-kind", [
                Listener(name: "http", port: 80, protocol: "HTTP", allowedRoutes: AllowedRoutes(namespaces: all, kinds: [RouteGroupKind(kind: "InvalidRoute")])),
            ])
            try await gateway("gateway-supported-and-invalid-route-kind", [
                Listener(name: "http", port: 80, protocol: "HTTP", allowedRoutes: AllowedRoutes(namespaces: all, kinds: [RouteGroupKind(kind: "InvalidRoute"), RouteGroupKind(kind: "HTTPRoute")])),
            ])
            try await gateway("gateway-only-unsupported-protocols", [Listener(name: "invalid", port: 1111, protocol: "INVALID")])
            try await gateway("gateway-supported-and-unsupported-protocols", [
                Listener(name: "http", port: 80, protocol: "HTTP"), Listener(name: "invalid", port: 1111, protocol: "INVALID"),
            ])
            let httpRouteKind = [RouteGroupKind(kind: "HTTPRoute")]
            try await gateway("gateway-with-one-attached-route", [
                Listener(name: "http", port: 80, protocol: "HTTP", allowedRoutes: AllowedRoutes(namespaces: selected, kinds: httpRouteKind)),
            ])
            try await gateway("gateway-with-two-attached-routes", [
                Listener(name: "http", hostname: "foo.example.com", port: 80, protocol: "HTTP", allowedRoutes: AllowedRoutes(namespaces: selected, kinds: httpRouteKind)),
            ])
            try await gateway("unresolved-gateway-with-one-attached-unresolved-route", [
                Listener(
                    name: "tls", port: 443, protocol: "HTTPS", allowedRoutes: AllowedRoutes(namespaces: selected, kinds: httpRouteKind),
                    tls: GatewayTLSConfig(mode: "Terminate", certificateRefs: [SecretObjectReference(group: "", kind: "Secret", name: "does-not-exist")])),
            ])
            try await gateway("same-namespace", [Listener(name: "http", port: 80, protocol: "HTTP")])
            try await gateway("gateway-with-one-not-matching-port-and-section-name-route", [
                Listener(name: "http", port: 80, protocol: "HTTP", allowedRoutes: AllowedRoutes(namespaces: all, kinds: httpRouteKind)),
            ])
            let gatewayRef = { (name: String) in ParentReference(kind: "Gateway", namespace: ns, name: name) }
            try await route("http-route-1", gatewayRef("gateway-with-one-attached-route"))
            try await route("http-route-2", gatewayRef("gateway-with-two-attached-routes"))
            try await route("http-route-3", gatewayRef("gateway-with-two-attached-routes"))
            try await route("http-route-not-accepted", hostnames: ["not-accepted.test.com"], gatewayRef("gateway-with-two-attached-routes"))
            try await route("http-route-4", ParentReference(kind: "Gateway", namespace: ns, name: "unresolved-gateway-with-one-attached-unresolved-route", sectionName: "tls"), backend: "does-not-exist")
            try await route("invalid-cross-namespace-parent-ref", in: web, ParentReference(namespace: ns, name: "same-namespace"), backend: "web-backend")
            try await route("httproute-listener-not-matching-section-name", ParentReference(namespace: ns, name: "same-namespace", sectionName: "http1", port: 80))
            try await route(
                "httproute-listener-section-name-not-matching-port",
                ParentReference(namespace: ns, name: "gateway-with-one-not-matching-port-and-section-name-route", sectionName: "http", port: 81))
            try await route("httproute-listener-not-matching-route-port", ParentReference(namespace: ns, name: "same-namespace", port: 81))

            /// The Gateway's `Accepted` and, per listener, the conditions of `types` with attachedRoutes and kinds, at its generation.
            func status(_ name: String, _ types: [String]) async throws -> String {
                let g = try await admin.get(Gateway.self, name: name, namespace: ns)
                guard Self.latest(g.status?.conditions, g.metadata.generation) else { return "not at generation \(g.metadata.generation ?? 0)" }
                let listeners = (g.status?.listeners ?? []).map { l in
                    let conditions = Self.summary(l.conditions).filter { c in types.contains { c.hasPrefix($0 + "=") } }
                    return "\(l.name): \(conditions.joined(separator: " ")) attached=\(l.attachedRoutes) kinds=\(l.supportedKinds.map(\.kind))"
                }
                return ([Self.summary(g.status?.conditions).first ?? "-"] + listeners).joined(separator: "; ")
            }
            let expected: [(String, [String], String)] = [
                // GatewayInvalidRouteKind.
                ("gateway-only-invalid-route-kind", ["ResolvedRefs"], "http: ResolvedRefs=False/InvalidRouteKinds attached=0 kinds=[]"),
                ("gateway-supported-and-invalid-route-kind", ["ResolvedRefs"], "http: ResolvedRefs=False/InvalidRouteKinds attached=0 kinds=[\"HTTPRoute\"]"),
                // GatewayListenerUnsupportedProtocol.
                ("gateway-only-unsupported-protocols", ["Accepted"], "invalid: Accepted=False/UnsupportedProtocol attached=0 kinds=[]"),
                ("gateway-supported-and-unsupported-protocols", ["Accepted"],
                 "http: Accepted=True/Accepted attached=0 kinds=[\"HTTPRoute\"]; invalid: Accepted=False/UnsupportedProtocol attached=0 kinds=[]"),
                // GatewayWithAttachedRoutes.
                ("gateway-with-one-attached-route", ["Accepted", "ResolvedRefs"], "http: Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs attached=1 kinds=[\"HTTPRoute\"]"),
                ("gateway-with-two-attached-routes", ["Accepted", "ResolvedRefs"], "http: Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs attached=2 kinds=[\"HTTPRoute\"]"),
                ("unresolved-gateway-with-one-attached-unresolved-route", ["ResolvedRefs", "Programmed"],
                 "tls: ResolvedRefs=False/InvalidCertificateRef Programmed=False/Invalid attached=1 kinds=[\"HTTPRoute\"]"),
                // HTTPRouteInvalidCrossNamespaceParentRef, HTTPRouteInvalidParentRefNotMatchingSectionName,
                // HTTPRouteInvalidParentRefNotMatchingListenerPort: no route attaches.
                ("same-namespace", ["Accepted"], "http: Accepted=True/Accepted attached=0 kinds=[\"HTTPRoute\"]"),
                // HTTPRouteInvalidParentRefSectionNameNotMatchingPort.
                ("gateway-with-one-not-matching-port-and-section-name-route", ["Accepted"], "http: Accepted=True/Accepted attached=0 kinds=[\"HTTPRoute\"]"),
            ]
            for (gateway, types, listeners) in expected {
                var got = ""
                let done = try await waitUntil { got = try await status(gateway, types); return got.hasSuffix("; " + listeners) }
                #expect(done, "Gateway \(gateway): \(got)")
            }
            #expect(try await status("gateway-only-unsupported-protocols", []).hasPrefix("Accepted=False/ListenersNotValid;"))
            #expect(try await status("gateway-supported-and-unsupported-protocols", []).hasPrefix("Accepted=True/ListenersNotValid;"))

            func parent(_ route: String, in namespace: String = ns, gateway: String) async throws -> [String] {
                Self.summary(try await admin.get(HTTPRoute.self, name: route, namespace: namespace).status?.parents?.first { $0.parentRef.name == gateway }?.conditions)
            }
            try await eventually("http-route-not-accepted: NoMatchingListenerHostname") {
                try await parent("http-route-not-accepted", gateway: "gateway-with-two-attached-routes").contains("Accepted=False/NoMatchingListenerHostname")
            }
            try await eventually("invalid-cross-namespace-parent-ref: NotAllowedByListeners, references resolved") {
                let conditions = try await parent("invalid-cross-namespace-parent-ref", in: web, gateway: "same-namespace")
                return conditions.contains("Accepted=False/NotAllowedByListeners") && conditions.contains("ResolvedRefs=True/ResolvedRefs")
            }
            try await eventually("httproute-listener-not-matching-section-name: NoMatchingParent") {
                try await parent("httproute-listener-not-matching-section-name", gateway: "same-namespace").contains("Accepted=False/NoMatchingParent")
            }
            try await eventually("httproute-listener-section-name-not-matching-port: NoMatchingParent") {
                try await parent("httproute-listener-section-name-not-matching-port", gateway: "gateway-with-one-not-matching-port-and-section-name-route")
                    .contains("Accepted=False/NoMatchingParent")
            }
            // HTTPRouteInvalidParentRefNotMatchingListenerPort (HTTPRouteDestinationPortMatching):
            // port 81 matches no listener of same-namespace; its references resolve all the same,
            // and no parent accepts it.
            try await eventually("httproute-listener-not-matching-route-port: NoMatchingParent, references resolved") {
                let conditions = try await parent("httproute-listener-not-matching-route-port", gateway: "same-namespace")
                return conditions.contains("Accepted=False/NoMatchingParent") && conditions.contains("ResolvedRefs=True/ResolvedRefs")
            }
            let parents = try await admin.get(HTTPRoute.self, name: "httproute-listener-not-matching-route-port", namespace: ns).status?.parents ?? []
            #expect(!parents.contains { $0.conditions?.contains { $0.type == "Accepted" && $0.status == "True" } == true }, "\(parents)")
        }
    }
}
