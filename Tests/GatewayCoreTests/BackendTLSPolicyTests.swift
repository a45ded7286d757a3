import Foundation
import KubeModels
import LoadBalancer
import Testing
@testable import GatewayCore

/// BackendTLSPolicy (v1.6.1 standard) on the builder: the objects of the upstream tests
/// (conformance/tests/backendtlspolicy*.yaml), which backends get which TLS, the policies'
/// `status.ancestors` conditions, conflicts, and the keys a change touches.
@Suite struct BackendTLSPolicyTests {
    static let ca = GW.pem("CERTIFICATE", tag: 9)

    static let gateway = """
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: same-namespace, namespace: \(GW.infra)}
        spec:
          gatewayClassName: portway
          listeners:
          - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Same}}}

        """

    /// A Service selecting the TLS backend, with named ports (`name:port`), and one endpoint.
    static func service(_ name: String, ports: [(String, Int)], appProtocol: String? = nil, subnet: Int) -> String {
        let list = ports.map { "  - {name: \($0.0), protocol: TCP, port: \($0.1), targetPort: 8443\(appProtocol.map { ", appProtocol: \($0)" } ?? "")}" }
        return """
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: \(name), namespace: \(GW.infra)}
            spec:
              type: ClusterIP
              clusterIP: 10.96.\(subnet).1
              ports:
            \(list.joined(separator: "\n"))
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: \(name)-x, namespace: \(GW.infra), labels: {kubernetes.io/service-name: \(name)}}
            addressType: IPv4
            ports:
            \(ports.map { "- {name: \($0.0), port: 8443, protocol: TCP}" }.joined(separator: "\n"))
            endpoints:
            - {addresses: [10.1.\(subnet).1], conditions: {ready: true}}

            """
    }

    /// An HTTPRoute on `same-namespace` for abc.example.com: one Exact-path rule per (path, Service, port).
    static func route(_ name: String, rules: [(path: String, service: String, port: Int)]) -> String {
        """
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: \(name), namespace: \(GW.infra)}
        spec:
          parentRefs: [{name: same-namespace}]
          hostnames: [abc.example.com]
          rules:
        \(rules.map { "  - {matches: [{path: {type: Exact, value: \($0.path)}}], backendRefs: [{name: \($0.service), port: \($0.port)}]}" }.joined(separator: "\n"))

        """
    }

    static func policy(
        _ name: String, service: String, section: String? = "btls", caRefs: String? = "[{group: \"\", kind: ConfigMap, name: tls-checks-ca-certificate}]",
        wellKnown: String? = nil, hostname: String = "abc.example.com", sans: String? = nil, created: String = "2026-01-01T00:00:00Z"
    ) -> String {
        """
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: BackendTLSPolicy
        metadata: {name: \(name), namespace: \(GW.infra), generation: 2, creationTimestamp: "\(created)"}
        spec:
          targetRefs: [{group: "", kind: Service, name: \(service)\(section.map { ", sectionName: \($0)" } ?? "")}]
          options: {example.com/unknown: ignored}
          validation:
            hostname: \(hostname)
        \(caRefs.map { "    caCertificateRefs: \($0)\n" } ?? "")\(wellKnown.map { "    wellKnownCACertificates: \($0)\n" } ?? "")\(sans.map { "    subjectAltNames: \($0)\n" } ?? "")
        """
    }

    static func configMap(_ name: String, data: String) -> String {
        """
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: \(name), namespace: \(GW.infra)}
        data: \(data)

        """
    }

    static let caConfigMaps = configMap("tls-checks-ca-certificate", data: "{ca.crt: \(String(reflecting: ca))}")
        + configMap("mismatch-ca-certificate", data: "{ca.crt: \(String(reflecting: GW.pem("CERTIFICATE", tag: 10)))}")

    static let gatewayKey = NamespacedName(namespace: GW.infra, name: "same-namespace")

    /// `Type=Status/Reason` of the policy's ancestor entry for same-namespace ("no status" without one).
    func conditions(_ state: GatewayState, _ policy: String) -> [String] {
        guard let entries = state.status.backendTLSPolicies[NamespacedName(namespace: GW.infra, name: policy)] else { return ["no status"] }
        guard let entry = entries.first(where: { $0.ancestorRef.name == "same-namespace" }) else { return ["no ancestor"] }
        #expect(entry.ancestorRef == ParentReference(group: GatewayAPI.group, kind: "Gateway", namespace: GW.infra, name: "same-namespace"))
        #expect(entry.controllerName == GatewayOptions.defaultControllerName)
        #expect((entry.conditions ?? []).allSatisfy { $0.observedGeneration == 2 })
        return (entry.conditions ?? []).map { "\($0.type)=\($0.status)/\($0.reason ?? "")" }
    }

    /// The TLS of the backend a request to `path` goes to (nil: plain HTTP).
    func tls(_ state: GatewayState, path: String) -> BackendTLS? {
        let table = state.table(gateway: Self.gatewayKey, port: 80)!
        let decision = RouteMatcher.decide(table, request: RouteRequest(host: "abc.example.com", path: path, method: "GET", headers: []))
        return decision.entry?.backends.first?.tls
    }

    func code(_ state: GatewayState, path: String) -> Int {
        let table = state.table(gateway: Self.gatewayKey, port: 80)!
        return RouteMatcher.decide(table, request: RouteRequest(host: "abc.example.com", path: path, method: "GET", headers: [])).code
    }

    /// BackendTLSPolicy: normative-test, host-mismatch, cert-mismatch accepted with their refs
    /// resolved; each backend gets its policy's SNI and CA; appProtocol HTTPS with a policy keeps
    /// the route's ResolvedRefs True; `options` are ignored.
    @Test func validPoliciesGiveTheirBackendsTLS() throws {
        let yaml = Self.gateway + Self.caConfigMaps
            + Self.service("backendtlspolicy-test", ports: [("btls", 443)], subnet: 20)
            + Self.service("backendtlspolicy-host-mismatch-test", ports: [("btls", 443)], appProtocol: "https", subnet: 21)
            + Self.service("backendtlspolicy-cert-mismatch-test", ports: [("btls", 443)], appProtocol: "HTTPS", subnet: 22)
            + Self.service("plain", ports: [("http", 80)], subnet: 23)
            + Self.route("backendtlspolicy", rules: [
                ("/backendtlspolicy", "backendtlspolicy-test", 443), ("/backendtlspolicy-host-mismatch", "backendtlspolicy-host-mismatch-test", 443),
                ("/backendtlspolicy-cert-mismatch", "backendtlspolicy-cert-mismatch-test", 443), ("/plain", "plain", 80),
            ])
            + Self.policy("normative-test", service: "backendtlspolicy-test")
            + Self.policy("host-mismatch", service: "backendtlspolicy-host-mismatch-test", hostname: "mismatch.example.com")
            + Self.policy("cert-mismatch", service: "backendtlspolicy-cert-mismatch-test", caRefs: "[{group: \"\", kind: ConfigMap, name: mismatch-ca-certificate}]")
        let state = try GW.build(yaml)
        for name in ["normative-test", "host-mismatch", "cert-mismatch"] {
            #expect(conditions(state, name) == ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"], "\(name)")
        }
        #expect(state.routeConditions("backendtlspolicy") == ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"])
        let normative = try #require(tls(state, path: "/backendtlspolicy"))
        #expect(normative.hostname == "abc.example.com" && normative.problem == nil && !normative.systemCACertificates)
        #expect(normative.caCertificateRefs == [NamespacedName(namespace: GW.infra, name: "tls-checks-ca-certificate")])
        #expect(normative.caCertificates == Array(Self.ca.utf8))
        #expect(tls(state, path: "/backendtlspolicy-host-mismatch")?.hostname == "mismatch.example.com")
        #expect(tls(state, path: "/backendtlspolicy-cert-mismatch")?.caCertificateRefs.map(\.name) == ["mismatch-ca-certificate"])
        #expect(tls(state, path: "/plain") == nil, "a Service without a policy stays plain HTTP")
        #expect(code(state, path: "/backendtlspolicy") == 200)
        #expect(state.status.backendTLSPolicies.count == 3)

        // Without the policy, appProtocol https is still refused (the proxy would speak HTTP to it).
        let without = try GW.build(yaml.replacingOccurrences(of: "name: host-mismatch,", with: "name: host-mismatch-gone,")
            .replacingOccurrences(of: "name: backendtlspolicy-host-mismatch-test, sectionName", with: "name: elsewhere, sectionName"))
        #expect(without.routeConditions("backendtlspolicy") == ["Accepted=True/Accepted", "ResolvedRefs=False/UnsupportedProtocol"])
    }

    /// BackendTLSPolicyInvalidCACertificateRef and BackendTLSPolicyInvalidKind: a missing
    /// ConfigMap, one without ca.crt and a ref of another kind: Accepted False/NoValidCACertificate,
    /// ResolvedRefs False with the reason; requests to those backends get 500; the route keeps
    /// ResolvedRefs True (its backendRefs resolve). One bad ref beside a good one: ResolvedRefs
    /// False, Accepted True, served with the good CA.
    @Test func invalidCACertificateRefs() throws {
        let yaml = Self.gateway + Self.caConfigMaps + Self.configMap("malformed-ca-certificate", data: "{}")
            + Self.service("nonexistent-test", ports: [("https", 443)], appProtocol: "HTTPS", subnet: 30)
            + Self.service("malformed-test", ports: [("https", 443)], appProtocol: "HTTPS", subnet: 31)
            + Self.service("invalid-kind-test", ports: [("https", 443)], appProtocol: "HTTPS", subnet: 32)
            + Self.service("partly-test", ports: [("https", 443)], subnet: 33)
            + Self.route("invalid", rules: [
                ("/nonexistent", "nonexistent-test", 443), ("/malformed", "malformed-test", 443), ("/invalid-kind", "invalid-kind-test", 443),
                ("/partly", "partly-test", 443),
            ])
            + Self.policy("nonexistent-ca-certificate-ref", service: "nonexistent-test", section: nil, caRefs: "[{group: \"\", kind: ConfigMap, name: nonexistent-ca-certificate}]")
            + Self.policy("malformed-ca-certificate-ref", service: "malformed-test", section: nil, caRefs: "[{group: \"\", kind: ConfigMap, name: malformed-ca-certificate}]")
            + Self.policy("invalid-kind", service: "invalid-kind-test", section: nil, caRefs: "[{group: invalid.io, kind: InvalidKind, name: invalid-kind}]")
            + Self.policy("partly", service: "partly-test", section: nil,
                caRefs: "[{group: \"\", kind: ConfigMap, name: nonexistent-ca-certificate}, {group: \"\", kind: ConfigMap, name: tls-checks-ca-certificate}]")
        let state = try GW.build(yaml)
        #expect(conditions(state, "nonexistent-ca-certificate-ref") == ["Accepted=False/NoValidCACertificate", "ResolvedRefs=False/InvalidCACertificateRef"])
        #expect(conditions(state, "malformed-ca-certificate-ref") == ["Accepted=False/NoValidCACertificate", "ResolvedRefs=False/InvalidCACertificateRef"])
        #expect(conditions(state, "invalid-kind") == ["Accepted=False/NoValidCACertificate", "ResolvedRefs=False/InvalidKind"])
        #expect(conditions(state, "partly") == ["Accepted=True/Accepted", "ResolvedRefs=False/InvalidCACertificateRef"])
        let message = state.status.backendTLSPolicies[NamespacedName(namespace: GW.infra, name: "malformed-ca-certificate-ref")]?.first?.conditions?.last?.message ?? ""
        #expect(message.contains("ConfigMap \(GW.infra)/malformed-ca-certificate has no ca.crt"), "\(message)")
        for path in ["/nonexistent", "/malformed", "/invalid-kind"] {
            #expect(code(state, path: path) == 500, "\(path)")
            #expect(tls(state, path: path)?.problem != nil, "\(path)")
        }
        #expect(code(state, path: "/partly") == 200)
        #expect(tls(state, path: "/partly")?.caCertificateRefs.map(\.name) == ["tls-checks-ca-certificate"])
        #expect(state.routeConditions("invalid") == ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"])
    }

    /// BackendTLSPolicyConflictResolution: on one (Service, sectionName) the older policy applies
    /// and the other is Accepted False/Conflicted (a tie in time: namespace/name order); a policy
    /// naming a port and one naming the whole Service both apply, each to its ports.
    @Test func conflictsResolvedByAgeThenName() throws {
        let yaml = Self.gateway + Self.caConfigMaps
            + Self.service("without-section-test", ports: [("https", 443)], subnet: 40)
            + Self.service("with-section-test", ports: [("https-1", 443), ("https-2", 8443)], subnet: 41)
            + Self.service("not-conflicted-test", ports: [("https-1", 443), ("https-2", 8443)], subnet: 42)
            + Self.route("conflicts", rules: [
                ("/without", "without-section-test", 443), ("/with", "with-section-test", 443),
                ("/not-conflicted-443", "not-conflicted-test", 443), ("/not-conflicted-8443", "not-conflicted-test", 8443),
            ])
            // The name that sorts first is the newer one: age decides before the name.
            + Self.policy("conflicted-without-section-name-2", service: "without-section-test", section: nil, hostname: "abc.example.com", created: "2026-01-02T00:00:00Z")
            + Self.policy("conflicted-without-section-name-1", service: "without-section-test", section: nil, hostname: "other.example.com", created: "2026-01-01T00:00:00Z")
            // Same time: the name decides.
            + Self.policy("conflicted-with-section-name-1", service: "with-section-test", section: "https-1", hostname: "other.example.com")
            + Self.policy("conflicted-with-section-name-2", service: "with-section-test", section: "https-1", hostname: "abc.example.com")
            + Self.policy("not-conflicted-with-section-name", service: "not-conflicted-test", section: "https-1", hostname: "other.example.com")
            + Self.policy("not-conflicted-without-section-name", service: "not-conflicted-test", section: nil, hostname: "abc.example.com")
        let state = try GW.build(yaml)
        #expect(conditions(state, "conflicted-without-section-name-1").first == "Accepted=True/Accepted")
        #expect(conditions(state, "conflicted-without-section-name-2").first == "Accepted=False/Conflicted")
        #expect(conditions(state, "conflicted-with-section-name-1").first == "Accepted=True/Accepted")
        #expect(conditions(state, "conflicted-with-section-name-2").first == "Accepted=False/Conflicted")
        #expect(conditions(state, "not-conflicted-with-section-name").first == "Accepted=True/Accepted")
        #expect(conditions(state, "not-conflicted-without-section-name").first == "Accepted=True/Accepted")
        #expect(tls(state, path: "/without")?.hostname == "other.example.com")
        #expect(tls(state, path: "/with")?.hostname == "other.example.com")
        #expect(tls(state, path: "/not-conflicted-443")?.policy.name == "not-conflicted-with-section-name")
        #expect(tls(state, path: "/not-conflicted-8443")?.policy.name == "not-conflicted-without-section-name")
        #expect(state.routeConditions("conflicts") == ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"])
    }

    /// BackendTLSPolicySANValidation: subjectAltNames lowered in order (Hostname and URI); an
    /// entry without its value, wellKnownCACertificates other than System, both or neither CA
    /// source: Accepted False/Invalid and 500. `System` takes the system's CA certificates.
    @Test func subjectAltNamesAndCASources() throws {
        let yaml = Self.gateway + Self.caConfigMaps
            + Self.service("san-test", ports: [("btls", 443)], subnet: 50)
            + Self.service("bad-san-test", ports: [("btls", 443)], subnet: 51)
            + Self.service("system-test", ports: [("btls", 443)], subnet: 52)
            + Self.service("unknown-ca-test", ports: [("btls", 443)], subnet: 53)
            + Self.service("both-test", ports: [("btls", 443)], subnet: 54)
            + Self.route("sans", rules: [
                ("/san", "san-test", 443), ("/bad-san", "bad-san-test", 443), ("/system", "system-test", 443),
                ("/unknown-ca", "unknown-ca-test", 443), ("/both", "both-test", 443),
            ])
            + Self.policy("multiple-sans", service: "san-test",
                sans: "[{type: URI, uri: \"spiffe://abc.example.com/test-identity\"}, {type: Hostname, hostname: ABC.example.com}]")
            + Self.policy("bad-san", service: "bad-san-test", sans: "[{type: Hostname, uri: \"spiffe://x\"}]")
            + Self.policy("system", service: "system-test", caRefs: nil, wellKnown: "System")
            + Self.policy("unknown-ca", service: "unknown-ca-test", caRefs: nil, wellKnown: "example.com/mine")
            + Self.policy("both", service: "both-test", wellKnown: "System")
        let state = try GW.build(yaml)
        let san = try #require(tls(state, path: "/san"))
        #expect(san.subjectAltNames == [
            BackendSubjectAltName(type: .uri, value: "spiffe://abc.example.com/test-identity"), BackendSubjectAltName(type: .hostname, value: "abc.example.com"),
        ])
        #expect(conditions(state, "multiple-sans") == ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"])
        #expect(conditions(state, "system") == ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"])
        #expect(tls(state, path: "/system")?.systemCACertificates == true && tls(state, path: "/system")?.caSource == "System")
        for (policy, path) in [("bad-san", "/bad-san"), ("unknown-ca", "/unknown-ca"), ("both", "/both")] {
            #expect(conditions(state, policy).first == "Accepted=False/Invalid", "\(policy)")
            #expect(code(state, path: path) == 500, "\(path)")
        }
    }

    /// A policy change touches the Services it targets (old and new), a CA ConfigMap the Services
    /// of the policies naming it; the plan rebuilds the Gateway whose route uses them, and a
    /// partial build equals a full one.
    @Test func changesTouchTheGatewaysUsingTheService() throws {
        let base = Self.gateway + Self.caConfigMaps + Self.service("backendtlspolicy-test", ports: [("btls", 443)], subnet: 20)
            + Self.route("backendtlspolicy", rules: [("/backendtlspolicy", "backendtlspolicy-test", 443)])
        let snapshot = try GW.load(base)
        var index = ClusterIndex(snapshot)
        var plan = GatewayPlan(index: index)
        #expect(tls(plan.state, path: "/backendtlspolicy") == nil)

        let policy = try GW.load(Self.policy("normative-test", service: "backendtlspolicy-test")).backendTLSPolicies[0]
        let touched = index.apply(.backendTLSPolicies(ObjectKey(policy.metadata), [policy]))
        let serviceKey = ObjectKey(namespace: GW.infra, name: "backendtlspolicy-test")
        #expect(touched.services == [serviceKey])
        let work = plan.affected(touched, index: index)
        #expect(work == .gateways([Self.gatewayKey]))
        plan.rebuild(work, index: index)
        #expect(plan.state.tables == GatewayState.build(index).tables)
        #expect(tls(plan.state, path: "/backendtlspolicy")?.caCertificates == Array(Self.ca.utf8))

        let configMap = try GW.load(Self.configMap("tls-checks-ca-certificate", data: "{}")).configMaps[0]
        let cmTouched = index.apply(.configMaps(ObjectKey(configMap.metadata), [configMap]))
        #expect(cmTouched.services == [serviceKey])
        plan.rebuild(plan.affected(cmTouched, index: index), index: index)
        #expect(plan.state.tables == GatewayState.build(index).tables)
        #expect(tls(plan.state, path: "/backendtlspolicy")?.problem != nil)

        #expect(index.apply(.backendTLSPolicies(ObjectKey(policy.metadata), [])).services == [serviceKey])
    }

    /// A Service used only as a RequestMirror's backend is read by the Gateway too: a policy (or
    /// endpoint) change on it rebuilds that Gateway, and the mirror goes over TLS.
    @Test func aMirrorOnlyServiceIsReadByItsGateway() throws {
        let base = Self.gateway + Self.caConfigMaps + Self.service("plain", ports: [("http", 80)], subnet: 23)
            + Self.service("mirror-test", ports: [("btls", 443)], subnet: 24) + """
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: mirrored, namespace: \(GW.infra)}
            spec:
              parentRefs: [{name: same-namespace}]
              rules:
              - backendRefs: [{name: plain, port: 80}]
                filters: [{type: RequestMirror, requestMirror: {backendRef: {name: mirror-test, port: 443}}}]

            """
        var index = ClusterIndex(try GW.load(base))
        var plan = GatewayPlan(index: index)
        let policy = try GW.load(Self.policy("mirror-tls", service: "mirror-test")).backendTLSPolicies[0]
        let touched = index.apply(.backendTLSPolicies(ObjectKey(policy.metadata), [policy]))
        let work = plan.affected(touched, index: index)
        #expect(work == .gateways([Self.gatewayKey]))
        plan.rebuild(work, index: index)
        #expect(plan.state.tables == GatewayState.build(index).tables)
        let entry = try #require(plan.state.table(gateway: Self.gatewayKey, port: 80)?.listeners.first?.rules.first)
        #expect(entry.mirrors.first?.backend.tls?.policy.name == "mirror-tls")
        #expect(conditions(plan.state, "mirror-tls") == ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"])
    }
}
