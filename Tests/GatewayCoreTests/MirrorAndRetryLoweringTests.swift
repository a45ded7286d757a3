import GatewayCore
import KubeModels
import Testing

/// Issue 19: RequestMirror and `retry` were refused; now they are lowered into the tables (mirror
/// backendRefs resolved like backendRefs) and validated.
@Suite struct MirrorAndRetryLoweringTests {
    private func routeYAML(_ rules: String) -> String {
        """
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: same-namespace, namespace: \(GW.infra)}
        spec:
          gatewayClassName: portway
          listeners: [{name: http, port: 80, protocol: HTTP}]
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: r, namespace: \(GW.infra)}
        spec:
          parentRefs: [{name: same-namespace}]
          rules:
        \(rules)

        """
    }

    private func rule(_ state: GatewayState) -> RouteTableEntry? { state.tables.first?.listeners.first?.rules.first }

    @Test("mirrors are lowered with their share and resolved backend; several per rule; an unresolved one gives ResolvedRefs=False and is marked")
    func mirrors() throws {
        let state = try GW.build(routeYAML("""
              - filters:
                - {type: RequestMirror, requestMirror: {backendRef: {name: infra-backend-v2, port: 8080}}}
                - {type: RequestMirror, requestMirror: {backendRef: {name: infra-backend-v3, port: 8080}, percent: 20}}
                - {type: RequestMirror, requestMirror: {backendRef: {name: infra-backend-v3, port: 8080}, fraction: {numerator: 25, denominator: 50}}}
                - {type: RequestMirror, requestMirror: {backendRef: {name: missing, port: 8080}, fraction: {numerator: 1}}}
                backendRefs: [{name: infra-backend-v1, port: 8080}]
            """))
        #expect(state.routeConditions("r") == ["Accepted=True/Accepted", "ResolvedRefs=False/BackendNotFound"])
        let mirrors = try #require(rule(state)).mirrors
        #expect(mirrors.map { "\($0.backend.reference.name) \($0.numerator)/\($0.denominator) \($0.backend.endpoints.count) \($0.backend.failure?.reason ?? "-")" } == [
            "infra-backend-v2 100/100 1 -", "infra-backend-v3 20/100 1 -", "infra-backend-v3 25/50 1 -", "missing 1/100 0 BackendNotFound",
        ])
        #expect(mirrors.allSatisfy { $0.backend.reference.namespace == GW.infra })
    }

    @Test("retry: codes, attempts and backoff carried in the table with defaults; out-of-range values refuse the route")
    func retry() throws {
        let state = try GW.build(routeYAML("""
              - backendRefs: [{name: infra-backend-v1, port: 8080}]
                retry: {codes: [503, 500, 503], attempts: 3, backoff: 1s500ms}
            """))
        #expect(state.routeConditions("r") == ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"])
        #expect(rule(state)?.retry == RouteRetry(codes: [500, 503], attempts: 3, backoffSeconds: 1.5))
        let defaults = try GW.build(routeYAML("""
              - backendRefs: [{name: infra-backend-v1, port: 8080}]
                retry: {}
            """))
        #expect(rule(defaults)?.retry == RouteRetry(codes: [], attempts: 1, backoffSeconds: 0.025))
        for (retry, message) in [
            ("{codes: [302]}", "retry.codes 302 is not within 400-599"),
            ("{attempts: 0}", "retry.attempts 0 is not within 1-10"),
            ("{attempts: 11}", "retry.attempts 11 is not within 1-10"),
            ("{backoff: 1.5s}", "retry.backoff \"1.5s\" is not a Gateway API duration"),
        ] {
            let refused = try GW.build(routeYAML("""
                  - backendRefs: [{name: infra-backend-v1, port: 8080}]
                    retry: \(retry)
                """))
            #expect(refused.routeConditions("r").first == "Accepted=False/UnsupportedValue", "\(retry)")
            let text = refused.routeMessage("r")
            #expect(text == "spec.rules[0]: \(message)", "\(retry)")
        }
    }
}

/// Issue 19: the CORS filter was refused; now it is lowered and its origin rules are the spec's.
@Suite struct CORSPolicyTests {
    @Test("origins: exact (case ignored), '*', and a '*' pattern for one or more characters (any number of labels)")
    func origins() {
        let policy = CORSPolicy(allowOrigins: ["https://www.foo.com", "https://*.bar.com"])
        for origin in ["https://www.foo.com", "HTTPS://WWW.FOO.COM", "https://www.bar.com", "https://xpto.www.bar.com"] {
            #expect(policy.allows(origin: origin), "\(origin)")
        }
        for origin in ["https://foobar.com", "http://www.foo.com", "https://.bar.com", "https://bar.com", "https://www.foo.com:8443", "null"] {
            #expect(!policy.allows(origin: origin), "\(origin)")
        }
        #expect(CORSPolicy(allowOrigins: ["*"]).allows(origin: "https://foobar.com:12345"))
        #expect(!CORSPolicy().allows(origin: "https://foobar.com"))
    }

    @Test("preflight headers: lists joined, wildcards answer what was asked, credentials only when allowed, max age 5 by default")
    func preflight() {
        let listed = CORSPolicy(
            allowOrigins: ["*"], allowCredentials: true, allowMethods: ["GET", "OPTIONS"], allowHeaders: ["x-header-1", "x-header-2"],
            exposeHeaders: ["x-header-3"], maxAge: 3600)
        #expect(listed.preflightHeaders(origin: "https://a.example", method: "GET", headers: "x-header-1").map { "\($0.name): \($0.value)" } == [
            "access-control-allow-origin: https://a.example", "access-control-allow-credentials: true",
            "access-control-allow-methods: GET, OPTIONS", "access-control-allow-headers: x-header-1, x-header-2",
            "access-control-expose-headers: x-header-3", "access-control-max-age: 3600", "vary: Origin",
        ])
        let wildcard = CORSPolicy(allowOrigins: ["*"], allowMethods: ["*"], allowHeaders: ["*"])
        #expect(wildcard.preflightHeaders(origin: "https://a.example", method: "PUT", headers: "x-a, x-b").map { "\($0.name): \($0.value)" } == [
            "access-control-allow-origin: https://a.example", "access-control-allow-methods: PUT", "access-control-allow-headers: x-a, x-b",
            "access-control-max-age: 5", "vary: Origin",
        ])
        #expect(wildcard.responseHeaders(origin: "https://a.example").map(\.name) == ["access-control-allow-origin", "vary"])
    }

    @Test func lowering() throws {
        let filter = HTTPRouteFilter(type: "CORS", cors: HTTPCORSFilter(allowOrigins: ["*"], allowMethods: ["PUT"]))
        #expect(try RouteFilter.lower(filter, at: .rule, matchedPrefix: nil).get() == .cors(CORSPolicy(allowOrigins: ["*"], allowMethods: ["PUT"])))
        if case .failure(let problem) = RouteFilter.lower(HTTPRouteFilter(type: "CORS", cors: HTTPCORSFilter(maxAge: 0)), at: .rule, matchedPrefix: nil) {
            #expect(problem.message == "CORS maxAge 0 is below 1")
        } else {
            Issue.record("maxAge 0 was accepted")
        }
        if case .failure(let problem) = RouteFilter.lower(filter, at: .backendRef, matchedPrefix: nil) {
            #expect(problem.message == "filter type CORS is not supported on a backendRef")
        } else {
            Issue.record("CORS on a backendRef was accepted")
        }
    }
}
