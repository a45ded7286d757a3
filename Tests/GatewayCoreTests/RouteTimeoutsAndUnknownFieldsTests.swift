import GatewayCore
import KubeModels
import Testing

/// Issue 19: HTTPRoute `rules[].timeouts` was never decoded, and every field the models did not
/// know was dropped in silence (a route with a retry or a mirror served as if it had none).
@Suite struct RouteTimeoutsAndUnknownFieldsTests {
    private func routeYAML(_ rules: String, generation: Int = 3) -> String {
        """
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: same-namespace, namespace: \(GW.infra)}
        spec:
          gatewayClassName: portway
          listeners: [{name: http, port: 80, protocol: HTTP}]
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: r, namespace: \(GW.infra), generation: \(generation)}
        spec:
          parentRefs: [{name: same-namespace}]
          rules:
        \(rules)

        """
    }

    @Test("Gateway API durations (GEP-2257): units h, m, s, ms, descending, at most four, 1-5 digits each")
    func durations() {
        let good: [(String, Double)] = [
            ("0s", 0), ("500ms", 0.5), ("1s", 1), ("10s", 10), ("1h", 3600), ("1h2m3s", 3723), ("1h2m3s4ms", 3723.004),
            ("2m500ms", 120.5), ("99999ms", 99.999), ("0h0m0s0ms", 0),
        ]
        for (text, seconds) in good {
            #expect(GatewayDuration.seconds(text).map { abs($0 - seconds) < 1e-9 } == true, "\(text)")
        }
        for bad in ["", "1", "s", "1.5s", "-1s", "1d", "1s1h", "1m1m", "500ms1s", "123456s", "1 s", "1S", "1h2m3s4ms5us", "1us"] {
            #expect(GatewayDuration.seconds(bad) == nil, "\(bad)")
        }
    }

    @Test("timeouts are decoded, validated and carried in the table; a bad value or backendRequest > request refuses the route")
    func timeoutsAreCarriedOrRefused() throws {
        let state = try GW.build(routeYAML("""
              - matches: [{path: {value: /a}}]
                backendRefs: [{name: infra-backend-v1, port: 8080}]
                timeouts: {request: 1h2m3s, backendRequest: 500ms}
              - matches: [{path: {value: /b}}]
                backendRefs: [{name: infra-backend-v1, port: 8080}]
                timeouts: {request: 0s, backendRequest: 10s}
            """))
        #expect(state.routeConditions("r") == ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"])
        let rules = try #require(state.tables.first?.listeners.first?.rules)
        #expect(rules.map(\.timeouts) == [RouteTimeouts(request: 3723, backendRequest: 0.5), RouteTimeouts(request: 0, backendRequest: 10)])

        for (timeouts, message) in [
            ("{request: 1.5s}", "timeouts.request \"1.5s\" is not a Gateway API duration"),
            ("{backendRequest: 10d}", "timeouts.backendRequest \"10d\" is not a Gateway API duration"),
            ("{request: 1s, backendRequest: 2s}", "timeouts.backendRequest (2s) is longer than timeouts.request (1s)"),
        ] {
            let refused = try GW.build(routeYAML("""
                  - backendRefs: [{name: infra-backend-v1, port: 8080}]
                    timeouts: \(timeouts)
                """))
            #expect(refused.routeConditions("r").first == "Accepted=False/UnsupportedValue", "\(timeouts)")
            let text = refused.routeMessage("r")
            #expect(text.contains(message), "\(timeouts): \(text)")
            #expect(refused.tables.first?.listeners.first?.rules.isEmpty == true, "a refused route is not served")
        }
    }

    @Test("a field the models do not know refuses the route (UnsupportedValue, naming the field) and is warned about with the route's generation")
    func unknownFieldsRefuseTheRouteAndWarn() throws {
        let state = try GW.build(routeYAML("""
              - matches: [{path: {value: /a}}]
                backendRefs: [{name: infra-backend-v1, port: 8080, futureField: 1}]
                retry: {attempts: 2, codes: [503], budget: 3}
                sessionPersistence: {sessionName: s}
            """, generation: 7))
        #expect(state.routeConditions("r") == ["Accepted=False/UnsupportedValue", "ResolvedRefs=True/ResolvedRefs"])
        let message = state.routeMessage("r")
        #expect(message == "spec.rules[0].sessionPersistence, spec.rules[0].retry.budget, spec.rules[0].backendRefs[0].futureField: not supported by Portway")
        #expect(state.tables.first?.listeners.first?.rules.isEmpty == true, "never served without the fields")
        #expect(state.warnings.map(\.description) == [
            "HTTPRoute \(GW.infra)/r: generation 7: fields Portway does not know: spec.rules[0].sessionPersistence, spec.rules[0].retry.budget, spec.rules[0].backendRefs[0].futureField; the route is not accepted (UnsupportedValue)",
        ])
    }

    @Test("an unsupported filter type keeps its own message; its settings field is not reported twice as the route's first problem")
    func unsupportedFiltersAreRefused() throws {
        for (filter, message) in [
            ("{type: RequestMirror, requestMirror: {backendRef: {name: infra-backend-v2, port: 8080}, percent: 10, fraction: {numerator: 1}}}",
             "spec.rules[0].filters[0]: RequestMirror sets both percent and fraction"),
            ("{type: RequestMirror, requestMirror: {backendRef: {name: infra-backend-v2, port: 8080}, percent: 101}}",
             "spec.rules[0].filters[0]: RequestMirror percent 101 is not within 0-100"),
            ("{type: RequestMirror, requestMirror: {backendRef: {name: infra-backend-v2, port: 8080}, fraction: {numerator: 3, denominator: 2}}}",
             "spec.rules[0].filters[0]: RequestMirror fraction 3/2 is not within 0-1"),
            ("{type: CORS, cors: {allowOrigins: ['*'], maxAge: 0}}", "spec.rules[0].filters[0]: CORS maxAge 0 is below 1"),
            ("{type: ExtensionRef, extensionRef: {group: example.com, kind: Thing, name: t}}", "spec.rules[0].filters[0]: filter type ExtensionRef is not supported"),
            ("{type: RequestRedirect, requestRedirect: {statusCode: 305}}", "spec.rules[0].filters[0]: RequestRedirect statusCode 305 is not supported (301, 302, 303, 307, 308 are)"),
            ("{type: RequestRedirect, requestRedirect: {scheme: ftp}}", "spec.rules[0].filters[0]: RequestRedirect scheme ftp is not supported (http and https are)"),
        ] {
            let state = try GW.build(routeYAML("""
                  - filters: [\(filter)]
                    backendRefs: [{name: infra-backend-v1, port: 8080}]
                """))
            #expect(state.routeConditions("r").first == "Accepted=False/UnsupportedValue", "\(filter)")
            let text = state.routeMessage("r")
            #expect(text == message, "\(filter)")
        }
    }
}
