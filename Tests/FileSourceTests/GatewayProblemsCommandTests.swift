import Foundation
import LoadBalancer
import Testing
@testable import FileSource
import Views

/// docs/examples/gateway-problems: conflicted listeners, a garbage TLS Secret beside a valid one,
/// and routes that name the Gateway but do not attach. What `routes` and `explain` say about them
/// (issue 16, items 9-11): never a silent drop.
private let problemsDirectory = packageRoot + "/docs/examples/gateway-problems"

private func explainJSON(_ to: String, host: String, path: String = "/") throws -> [String: Any] {
    let out = try Command.explain(GatewayViewOptions(directory: problemsDirectory), request: ExplainRequest(to: to, host: host, path: path), format: .json).stdout
    return try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
}

private func explainText(_ to: String, host: String) throws -> String {
    try Command.explain(GatewayViewOptions(directory: problemsDirectory), request: ExplainRequest(to: to, host: host, path: "/"), format: .text).stdout
}

/// `kind: message` of each warning.
private func warnings(_ object: [String: Any]) -> [String] {
    (object["warnings"] as? [[String: Any]] ?? []).map { "\($0["kind"] as? String ?? ""): \($0["message"] as? String ?? "")" }
}

@Suite struct GatewayProblemsExplainTests {
    /// Port 80 has only two listeners without hostname: conflicted, neither served, so the proxy
    /// does not listen there and the datapath resets the connection. Explain says so (not a bare 404).
    @Test func aPortOfConflictedListenersIsRefusedAndExplained() throws {
        let object = try explainJSON("203.0.113.50:80", host: "www.shop.example")
        #expect(object["mode"] as? String == "l7lb")
        #expect(object["code"] is NSNull, "no HTTP answer: the connection is reset")
        #expect(object["refused"] as? Bool == true)
        #expect(object["reason"] as? String == "no listener of Gateway shop/edge on port 80 is served (http-a: Conflicted=True HostnameConflict; http-b: Conflicted=True HostnameConflict): nothing listens on proxy port 10000, so this node resets the connection (no HTTP answer)")
        let unserved = try #require(object["unservedListeners"] as? [[String: Any]])
        #expect(unserved.map { "\($0["name"] as? String ?? "") \($0["condition"] as? String ?? "")=\($0["status"] as? String ?? "") \($0["reason"] as? String ?? "") \($0["takesHost"] as? Bool ?? false)" } == [
            "http-a Conflicted=True HostnameConflict true", "http-b Conflicted=True HostnameConflict true",
        ])
        #expect(unserved.first?["message"] as? String == "listeners http-a, http-b on port 80 have no hostname (each would take every host); none of them is served")
        #expect(Set(unserved.first?.keys.map { $0 } ?? []) == ["name", "hostname", "protocol", "condition", "status", "reason", "message", "takesHost"])
        #expect(warnings(object).first == "listener-not-served: listener http-a (any host) of Gateway shop/edge would take www.shop.example on port 80, but is not served: Conflicted=True HostnameConflict: listeners http-a, http-b on port 80 have no hostname (each would take every host); none of them is served")
        #expect(warnings(object).count == 2)
    }

    /// Every parentRef naming the Gateway that did not attach is listed with its status reason,
    /// whatever port the request goes to.
    @Test func routesThatDidNotAttachAreListedWithTheirReason() throws {
        for to in ["203.0.113.50:80", "203.0.113.50:8080", "203.0.113.50:443"] {
            let object = try explainJSON(to, host: "www.shop.example")
            let notAttached = try #require(object["notAttached"] as? [[String: Any]])
            let summary = notAttached.map { item -> String in
                let route = item["route"] as? [String: String] ?? [:]
                let ref = item["parentRef"] as? [String: Any] ?? [:]
                return "\(route["namespace"] ?? "")/\(route["name"] ?? "") \(ref["sectionName"] as? String ?? "-") \(ref["port"] as? Int ?? 0): \(item["reason"] as? String ?? "")"
            }
            #expect(summary == [
                "partner/partner - 0: NotAllowedByListeners",
                "shop/api api 0: NoReadyListeners",
                "shop/blog www 0: NoMatchingListenerHostname",
                "shop/typo wwww 0: NoMatchingParent",
                "shop/wrong-port www 9090: NoMatchingParent",
            ], "\(to)")
            #expect(notAttached.first.map { Set($0.keys) } == ["route", "parentRef", "reason", "message"])
            #expect((notAttached.last?["message"] as? String) == "no listener matches sectionName www and port 9090")
        }
    }

    /// Port 8080: www is served; api and api-copy have one hostname, so neither is. A request for
    /// api.shop.example gets 404, and explain says which listeners would have taken it and why.
    @Test func aHostOfConflictedListenersGets404WithTheReason() throws {
        let api = try explainJSON("203.0.113.50:8080", host: "api.shop.example")
        #expect(api["code"] as? Int == 404)
        #expect(api["refused"] as? Bool == false)
        #expect(api["listener"] is NSNull)
        #expect((api["reason"] as? String)?.hasPrefix("no served listener of Gateway shop/edge on port 8080 takes api.shop.example; listeners api Conflicted=True HostnameConflict, api-copy Conflicted=True HostnameConflict would, but are not served; 5 parentRefs naming this Gateway did not attach") == true)
        #expect(warnings(api).map { String($0.prefix(40)) } == [
            "listener-not-served: listener api (api.s", "listener-not-served: listener api-copy (",
        ])
        let www = try explainJSON("203.0.113.50:8080", host: "www.shop.example")
        #expect(www["code"] as? Int == 200)
        #expect(www["reason"] is NSNull)
        #expect(warnings(www).isEmpty, "the conflicted listeners do not take www.shop.example")
        #expect((www["unservedListeners"] as? [[String: Any]])?.map { $0["takesHost"] as? Bool } == [false, false])
    }

    /// Port 443: the garbage Secret keeps its listener out, the valid one is served.
    @Test func aGarbageSecretIsShownWithTheSecretAndWhatIsWrong() throws {
        let broken = try explainJSON("203.0.113.50:443", host: "broken.shop.example")
        #expect(broken["code"] as? Int == 404)
        #expect(warnings(broken) == [
            "listener-not-served: listener broken (broken.shop.example) of Gateway shop/edge would take broken.shop.example on port 443, but is not served: ResolvedRefs=False InvalidCertificateRef: Secret shop/broken-tls: tls.crt holds no PEM block (expected -----BEGIN CERTIFICATE-----)",
        ])
        let secure = try explainJSON("203.0.113.50:443", host: "secure.shop.example")
        #expect(secure["code"] as? Int == 200)
        #expect((secure["listener"] as? [String: Any])?["name"] as? String == "secure")
    }

    @Test func theTextFormSaysTheSame() throws {
        let text = try explainText("203.0.113.50:80", host: "www.shop.example")
        #expect(text.contains("\nnot served: listener http-a HTTP *(any host) (takes this host): Conflicted=True HostnameConflict: listeners http-a, http-b on port 80"))
        #expect(text.contains("\nnot attached: shop/wrong-port (parentRef edge section www port 9090): NoMatchingParent: no listener matches sectionName www and port 9090\n"))
        #expect(text.contains("\ncode: - (connection reset: no listener of Gateway shop/edge on port 80 is served"))
        let api = try explainText("203.0.113.50:8080", host: "api.shop.example")
        #expect(api.contains("\ncode: 404 (no served listener of Gateway shop/edge on port 8080 takes api.shop.example; listeners api"))
    }
}

@Suite struct GatewayProblemsRoutesTests {
    @Test func routesJSONListsUnservedListenersAndWarns() throws {
        let out = try Command.routes(GatewayViewOptions(directory: problemsDirectory), format: .json)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any])
        let tables = try #require(object["tables"] as? [[String: Any]])
        #expect(tables.map { "\($0["port"] as? Int ?? 0) \((($0["listeners"] as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String })" } == [
            "443 [\"secure\"]", "8080 [\"www\"]",
        ])
        let unserved = try #require(object["unservedListeners"] as? [[String: Any]])
        #expect(unserved.map { "\($0["port"] as? Int ?? 0) \($0["proxyPort"] as? Int ?? 0) \($0["name"] as? String ?? "") \($0["reason"] as? String ?? "")" } == [
            "80 10000 http-a HostnameConflict", "80 10000 http-b HostnameConflict",
            "443 10001 broken InvalidCertificateRef",
            "8080 10002 api HostnameConflict", "8080 10002 api-copy HostnameConflict",
        ])
        #expect(unserved[2]["message"] as? String == "Secret shop/broken-tls: tls.crt holds no PEM block (expected -----BEGIN CERTIFICATE-----)")
        #expect(Set(unserved[0].keys) == ["gateway", "port", "proxyPort", "name", "hostname", "protocol", "condition", "status", "reason", "message"])
        let messages = (object["warnings"] as? [[String: String]] ?? []).map { "\($0["object"] ?? ""): \($0["message"] ?? "")" }
        #expect(messages == [
            "Gateway shop/edge: listener http-a (port 80, any host) not served: Conflicted=True HostnameConflict: listeners http-a, http-b on port 80 have no hostname (each would take every host); none of them is served",
            "Gateway shop/edge: listener http-b (port 80, any host) not served: Conflicted=True HostnameConflict: listeners http-a, http-b on port 80 have no hostname (each would take every host); none of them is served",
            "Gateway shop/edge: port 80: no listener on port 80 is served (http-a, http-b); its Service's frontends go to proxy port 10000, where nothing listens: connections are reset",
            "Gateway shop/edge: listener broken (port 443, broken.shop.example) not served: ResolvedRefs=False InvalidCertificateRef: Secret shop/broken-tls: tls.crt holds no PEM block (expected -----BEGIN CERTIFICATE-----)",
            "Gateway shop/edge: listener api (port 8080, api.shop.example) not served: Conflicted=True HostnameConflict: listeners api, api-copy on port 8080 have the same hostname api.shop.example; none of them is served",
            "Gateway shop/edge: listener api-copy (port 8080, api.shop.example) not served: Conflicted=True HostnameConflict: listeners api, api-copy on port 8080 have the same hostname api.shop.example; none of them is served",
        ])
    }

    @Test func routesTableShowsTheBrokenListenersAndTheDeadPort() throws {
        let out = try Command.routes(GatewayViewOptions(directory: problemsDirectory), format: .table)
        #expect(out.stdout == """
        GATEWAY shop/edge PORT 80 PROXY PORT 10000 (no listener served: connections are reset)
          NOT SERVED http-a HTTP *(any host): Conflicted=True HostnameConflict: listeners http-a, http-b on port 80 have no hostname (each would take every host); none of them is served
          NOT SERVED http-b HTTP *(any host): Conflicted=True HostnameConflict: listeners http-a, http-b on port 80 have no hostname (each would take every host); none of them is served
        GATEWAY shop/edge PORT 443 PROXY PORT 10001
          LISTENER secure HTTPS secure.shop.example certs shop/secure-tls
            1. shop/secure rule 0 match 0: secure.shop.example PathPrefix / → shop/web:80 w1 (1 endpoints)
          NOT SERVED broken HTTPS broken.shop.example: ResolvedRefs=False InvalidCertificateRef: Secret shop/broken-tls: tls.crt holds no PEM block (expected -----BEGIN CERTIFICATE-----)
        GATEWAY shop/edge PORT 8080 PROXY PORT 10002
          LISTENER www HTTP www.shop.example
            1. shop/www rule 0 match 0: www.shop.example PathPrefix / → shop/web:80 w1 (1 endpoints)
          NOT SERVED api HTTP api.shop.example: Conflicted=True HostnameConflict: listeners api, api-copy on port 8080 have the same hostname api.shop.example; none of them is served
          NOT SERVED api-copy HTTP api.shop.example: Conflicted=True HostnameConflict: listeners api, api-copy on port 8080 have the same hostname api.shop.example; none of them is served

        """)
        #expect(out.stderr.split(separator: "\n").count == 6)
        #expect(out.stderr.contains("warning: Gateway shop/edge: port 80: no listener on port 80 is served (http-a, http-b)"))
    }
}
