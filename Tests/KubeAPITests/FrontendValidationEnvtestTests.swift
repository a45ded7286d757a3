import Agent
import Foundation
import GatewayCore
import KubeAPI
import KubeAPITestSupport
import KubeModels
import Testing

/// GatewayFrontendClientCertificateValidation's status tests against a real kube-apiserver with
/// the v1.6.1 CRDs and one agent's Gateway leader: the Gateway reaches the agent through the CRD
/// (`spec.tls.frontend`, `mode` defaulted by the server) and its ConfigMaps through the ConfigMap
/// informer; the conditions are the upstream tests'.
@Suite(
    "envtest: frontend client certificate validation status with the v1.6.1 CRDs", .serialized,
    .enabled(if: EnvtestControlPlane.availableOrPrintSkip(), "needs KUBEBUILDER_ASSETS with kube-apiserver and etcd"),
    .enabled(if: FileManager.default.fileExists(atPath: crdDirectoryV161 + "/gateways.yaml"), "needs ../shared/gateway-api-crds/v1.6.1"))
struct FrontendValidationEnvtestTests {
    typealias Conformance = GatewayConformanceEnvtestTests

    static func https(_ name: String, port: Int, hostname: String? = nil) -> Listener {
        Listener(
            name: name, hostname: hostname, port: port, protocol: "HTTPS", allowedRoutes: AllowedRoutes(namespaces: RouteNamespaces(from: "Same")),
            tls: GatewayTLSConfig(certificateRefs: [SecretObjectReference(group: "", kind: "Secret", name: "tls-validity-checks-certificate")]))
    }

    static func validation(_ refs: [ObjectReference], mode: String? = nil) -> FrontendTLSSettings {
        FrontendTLSSettings(validation: FrontendTLSValidation(caCertificateRefs: refs, mode: mode))
    }

    /// GatewayInvalidFrontendClientCertificateValidation (each listener's conditions), then
    /// GatewayFrontendClientCertificateValidationInsecureFallback's Gateway condition, removed when
    /// the mode goes back to AllowValidOnly, and a ConfigMap created later resolving its listener.
    @Test("Client certificate validation on the real server: unresolved, wrong kind and ungranted CA references per listener; the insecure fallback's Gateway condition; a ConfigMap created later")
    func frontendValidationStatus() async throws {
        try await Conformance.withLeader { admin, plane in
            let ns = Conformance.infra, web = "gateway-conformance-web-backend"
            _ = try await admin.create(Secret(
                metadata: ObjectMeta(name: "tls-validity-checks-certificate", namespace: ns), type: Secret.tlsType,
                data: [
                    "tls.crt": plane.certificates.read(plane.certificates.serverCertPath).base64EncodedString(),
                    "tls.key": plane.certificates.read(plane.certificates.serverKeyPath).base64EncodedString(),
                ]))
            let ca = String(decoding: plane.certificates.read(plane.certificates.caCertPath), as: UTF8.self)
            _ = try await admin.create(ConfigMap(metadata: ObjectMeta(name: "tls-validity-checks-ca-certificate", namespace: ns), data: ["ca.crt": ca]))
            _ = try await admin.create(ConfigMap(metadata: ObjectMeta(name: "web-backend-cm", namespace: web), data: ["ca.crt": ca]))
            _ = try await admin.create(Service(metadata: ObjectMeta(name: "infra-backend-v2", namespace: ns), spec: ServiceSpec(ports: [ServicePort(protocol: "TCP", port: 8080)])))
            let valid = ObjectReference(group: "", kind: "ConfigMap", name: "tls-validity-checks-ca-certificate")
            _ = try await admin.create(Gateway(
                metadata: ObjectMeta(name: "gateway-with-invalid-client-cert-validation", namespace: ns),
                spec: GatewaySpec(
                    gatewayClassName: "portway",
                    listeners: [
                        Self.https("https", port: 443), Self.https("https-unresolved", port: 7443, hostname: "first-example.org"),
                        Self.https("https-invalid-kind", port: 8443, hostname: "second-example.org"),
                        Self.https("https-grant-missing", port: 6443, hostname: "fourth-example.org"),
                    ],
                    tls: GatewayWideTLSConfig(frontend: FrontendTLSConfig(default: Self.validation([valid]), perPort: [
                        FrontendTLSPortConfig(port: 7443, tls: Self.validation([ObjectReference(group: "", kind: "ConfigMap", name: "non-exisitng-cm")])),
                        FrontendTLSPortConfig(port: 8443, tls: Self.validation([ObjectReference(group: "", kind: "Service", name: "infra-backend-v2")])),
                        FrontendTLSPortConfig(port: 6443, tls: Self.validation([ObjectReference(group: "", kind: "ConfigMap", name: "web-backend-cm", namespace: web)])),
                    ])))))

            /// `ResolvedRefs Accepted Programmed` (Type=Status/Reason) of a listener, at the Gateway's generation.
            func listener(_ gateway: String, _ name: String) async throws -> String {
                let g = try await admin.get(Gateway.self, name: gateway, namespace: ns)
                guard let l = g.status?.listeners?.first(where: { $0.name == name }), Conformance.latest(l.conditions, g.metadata.generation) else { return "no status" }
                return ["ResolvedRefs", "Accepted", "Programmed"].map { type in
                    l.conditions.first { $0.type == type }.map { "\($0.type)=\($0.status)/\($0.reason ?? "")" } ?? "\(type)?"
                }.joined(separator: " ")
            }
            let gw = "gateway-with-invalid-client-cert-validation"
            let served = "ResolvedRefs=True/ResolvedRefs Accepted=True/Accepted Programmed=True/Programmed"
            try await eventually("\(gw) https: \(served)") { try await listener(gw, "https") == served }
            for (name, reason) in [("https-unresolved", "InvalidCACertificateRef"), ("https-invalid-kind", "InvalidCACertificateKind"), ("https-grant-missing", "RefNotPermitted")] {
                let want = "ResolvedRefs=False/\(reason) Accepted=False/NoValidCACertificate Programmed=False/Invalid"
                try await eventually("\(gw) \(name): \(want)") { try await listener(gw, name) == want }
            }
            // The server wrote the CRD's default mode; the agent read the validation from it.
            let stored = try await admin.get(Gateway.self, name: gw, namespace: ns)
            #expect(stored.spec.tls?.frontend?.default?.validation?.mode == "AllowValidOnly")

            // The missing ConfigMap created: its listener resolves (a ConfigMap change reaches the Gateway).
            _ = try await admin.create(ConfigMap(metadata: ObjectMeta(name: "non-exisitng-cm", namespace: ns), data: ["ca.crt": ca]))
            try await eventually("\(gw) https-unresolved once its ConfigMap exists: \(served)") { try await listener(gw, "https-unresolved") == served }
            // And deleted again: refused again.
            try await admin.delete(ConfigMap.self, name: "non-exisitng-cm", namespace: ns)
            try await eventually("\(gw) https-unresolved once its ConfigMap is gone") {
                try await listener(gw, "https-unresolved").hasPrefix("ResolvedRefs=False/InvalidCACertificateRef Accepted=False/NoValidCACertificate")
            }

            // GatewayFrontendClientCertificateValidationInsecureFallback: the Gateway's condition.
            let fallback = "client-validation-insecure-fallback"
            _ = try await admin.create(Gateway(
                metadata: ObjectMeta(name: fallback, namespace: ns),
                spec: GatewaySpec(
                    gatewayClassName: "portway", listeners: [Self.https("https", port: 443)],
                    tls: GatewayWideTLSConfig(frontend: FrontendTLSConfig(default: Self.validation([valid], mode: "AllowInsecureFallback"))))))
            func insecure() async throws -> [String]? {
                let g = try await admin.get(Gateway.self, name: fallback, namespace: ns)
                guard Conformance.latest(g.status?.conditions, g.metadata.generation) else { return nil }
                return (g.status?.conditions ?? []).filter { $0.type == "InsecureFrontendValidationMode" }.map { "\($0.status)/\($0.reason ?? "")" }
            }
            try await eventually("\(fallback): InsecureFrontendValidationMode=True/ConfigurationChanged") { try await insecure() == ["True/ConfigurationChanged"] }
            #expect(try await listener(fallback, "https") == served)
            _ = try await admin.patch(Gateway.self, name: fallback, namespace: ns, mergePatch: Conformance.mergePatch([
                "spec": ["tls": ["frontend": ["default": ["validation": ["mode": "AllowValidOnly"]]]]],
            ]))
            try await eventually("\(fallback): the condition removed with AllowValidOnly") { try await insecure() == [] }
        }
    }
}
