import Agent
import Foundation
import GatewayCore
import KubeAPI
import KubeAPITestSupport
import KubeModels
import Testing

/// BackendTLSPolicy's status tests against a real kube-apiserver with the v1.6.1 CRDs (CEL rules
/// stripped) and one agent's Gateway leader: the policies reach the agent through their informer,
/// their CA ConfigMaps through the ConfigMap informer, and the leader writes `status.ancestors`
/// (one entry per Gateway whose routes use the targeted Service) as the upstream tests check it.
@Suite(
    "envtest: BackendTLSPolicy status with the v1.6.1 CRDs", .serialized,
    .enabled(if: EnvtestControlPlane.availableOrPrintSkip(), "needs KUBEBUILDER_ASSETS with kube-apiserver and etcd"),
    .enabled(if: FileManager.default.fileExists(atPath: crdDirectoryV161 + "/backendtlspolicies.yaml"), "needs ../shared/gateway-api-crds/v1.6.1"))
struct BackendTLSPolicyEnvtestTests {
    typealias Conformance = GatewayConformanceEnvtestTests

    static func policy(_ name: String, service: String, section: String? = nil, ca: LocalObjectReference) -> BackendTLSPolicy {
        BackendTLSPolicy(
            metadata: ObjectMeta(name: name, namespace: Conformance.infra),
            spec: BackendTLSPolicySpec(
                targetRefs: [PolicyTargetReference(name: service, sectionName: section)],
                validation: BackendTLSPolicyValidation(caCertificateRefs: [ca], hostname: "abc.example.com")))
    }

    /// BackendTLSPolicy (its status parts, and the CA ConfigMap reconcile case),
    /// BackendTLSPolicyInvalidCACertificateRef, BackendTLSPolicyInvalidKind,
    /// BackendTLSPolicyConflictResolution and BackendTLSPolicyObservedGenerationBump.
    @Test("BackendTLSPolicy status on the real server: accepted, invalid CA references and kinds, conflicts, a CA ConfigMap created, emptied and restored, a generation bump")
    func backendTLSPolicyStatus() async throws {
        try await Conformance.withLeader { admin, plane in
            let ns = Conformance.infra
            let ca = String(decoding: plane.certificates.read(plane.certificates.caCertPath), as: UTF8.self)
            _ = try await admin.create(ConfigMap(metadata: ObjectMeta(name: "tls-checks-ca-certificate", namespace: ns), data: ["ca.crt": ca]))
            _ = try await admin.create(ConfigMap(metadata: ObjectMeta(name: "malformed-ca-certificate", namespace: ns), data: [:]))
            let services = ["backendtlspolicy-test", "nonexistent-test", "malformed-test", "invalid-kind-test", "conflicted-test"]
            for name in services {
                _ = try await admin.create(Service(
                    metadata: ObjectMeta(name: name, namespace: ns),
                    spec: ServiceSpec(ports: [ServicePort(name: "btls", protocol: "TCP", port: 443, targetPort: .int(8443), appProtocol: "https")])))
            }
            _ = try await admin.create(Gateway(metadata: ObjectMeta(name: "same-namespace", namespace: ns), spec: GatewaySpec(gatewayClassName: "portway", listeners: [
                Listener(name: "http", port: 80, protocol: "HTTP"),
            ])))
            _ = try await admin.create(HTTPRoute(
                metadata: ObjectMeta(name: "backendtlspolicy", namespace: ns),
                spec: HTTPRouteSpec(
                    parentRefs: [ParentReference(name: "same-namespace")], hostnames: ["abc.example.com"],
                    rules: services.map { HTTPRouteRule(backendRefs: [HTTPBackendRef(name: $0, port: 443)]) })))
            let caRef = LocalObjectReference(name: "tls-checks-ca-certificate")
            _ = try await admin.create(Self.policy("normative-test", service: "backendtlspolicy-test", section: "btls", ca: caRef))
            _ = try await admin.create(Self.policy("nonexistent-ca-certificate-ref", service: "nonexistent-test", ca: LocalObjectReference(name: "nonexistent-ca-certificate")))
            _ = try await admin.create(Self.policy("malformed-ca-certificate-ref", service: "malformed-test", ca: LocalObjectReference(name: "malformed-ca-certificate")))
            _ = try await admin.create(Self.policy("invalid-kind", service: "invalid-kind-test", ca: LocalObjectReference(group: "invalid.io", kind: "InvalidKind", name: "invalid-kind")))
            // Created in name order (within one second their timestamps tie: the name decides).
            _ = try await admin.create(Self.policy("conflicted-1", service: "conflicted-test", ca: caRef))
            _ = try await admin.create(Self.policy("conflicted-2", service: "conflicted-test", ca: caRef))

            /// `Accepted ResolvedRefs` (Type=Status/Reason) of the policy's ancestor same-namespace, at its generation.
            func status(_ name: String) async throws -> String {
                let p = try await admin.get(BackendTLSPolicy.self, name: name, namespace: ns)
                guard let entry = p.status?.ancestors.first(where: { $0.ancestorRef.name == "same-namespace" && $0.ancestorRef.namespace == ns }),
                    entry.controllerName == GatewayOptions.defaultControllerName, entry.ancestorRef.kind == "Gateway",
                    Conformance.latest(entry.conditions, p.metadata.generation)
                else { return "no status" }
                return Conformance.summary(entry.conditions).joined(separator: " ")
            }
            let good = "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs"
            for name in ["normative-test", "conflicted-1"] {
                try await eventually("\(name): \(good)") { try await status(name) == good }
            }
            for (name, reason) in [
                ("nonexistent-ca-certificate-ref", "InvalidCACertificateRef"), ("malformed-ca-certificate-ref", "InvalidCACertificateRef"), ("invalid-kind", "InvalidKind"),
            ] {
                let want = "Accepted=False/NoValidCACertificate ResolvedRefs=False/\(reason)"
                try await eventually("\(name): \(want)") { try await status(name) == want }
            }
            try await eventually("conflicted-2: Conflicted") { try await status("conflicted-2").hasPrefix("Accepted=False/Conflicted") }
            // The route's backendRefs with appProtocol https resolve: their policies give TLS.
            let route = try await admin.get(HTTPRoute.self, name: "backendtlspolicy", namespace: ns)
            #expect(Conformance.summary(route.status?.parents?.first?.conditions) == ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"])

            // "Changing the content of a ConfigMap used by BackendTLSPolicy as CA certificate should
            // be reconciled": pointed at a ConfigMap that does not exist yet, then created, emptied, restored.
            _ = try await admin.patch(BackendTLSPolicy.self, name: "normative-test", namespace: ns, mergePatch: Conformance.mergePatch([
                "spec": ["validation": ["caCertificateRefs": [["group": "", "kind": "ConfigMap", "name": "tls-checks-ca-certificate-reconcile-test"]]]],
            ]))
            let invalid = "Accepted=False/NoValidCACertificate ResolvedRefs=False/InvalidCACertificateRef"
            try await eventually("normative-test without its ConfigMap: \(invalid)") { try await status("normative-test") == invalid }
            _ = try await admin.create(ConfigMap(metadata: ObjectMeta(name: "tls-checks-ca-certificate-reconcile-test", namespace: ns), data: ["ca.crt": ca]))
            try await eventually("normative-test once its ConfigMap exists: \(good)") { try await status("normative-test") == good }
            _ = try await admin.patch(ConfigMap.self, name: "tls-checks-ca-certificate-reconcile-test", namespace: ns, mergePatch: Conformance.mergePatch(["data": ["ca.crt": ""]]))
            try await eventually("normative-test with an empty ca.crt: \(invalid)") { try await status("normative-test") == invalid }
            _ = try await admin.patch(ConfigMap.self, name: "tls-checks-ca-certificate-reconcile-test", namespace: ns, mergePatch: Conformance.mergePatch(["data": ["ca.crt": ca]]))
            try await eventually("normative-test with ca.crt restored: \(good)") { try await status("normative-test") == good }

            // BackendTLSPolicyObservedGenerationBump: a spec change, Accepted at the new generation.
            let before = try await admin.get(BackendTLSPolicy.self, name: "normative-test", namespace: ns)
            let bumped = try await admin.patch(BackendTLSPolicy.self, name: "normative-test", namespace: ns, mergePatch: Conformance.mergePatch([
                "spec": ["validation": ["hostname": "foo.example.com"]],
            ]))
            #expect(bumped.metadata.generation != before.metadata.generation)
            try await eventually("normative-test Accepted at generation \(bumped.metadata.generation ?? 0)") { try await status("normative-test") == good }
        }
    }
}
