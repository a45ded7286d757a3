import GatewayCore
import NIOHTTP1
import Testing
@testable import L7Proxy

@Suite struct RoutingPrimitivesTests {
    @Test(arguments: [
        ("/foo", "/xyz", "/foo/bar", "/xyz/bar"),
        ("/foo", "/xyz", "/foo", "/xyz"),
        ("/foo", "/xyz", "/foo/", "/xyz/"),
        ("/foo/", "/xyz/", "/foo/bar", "/xyz/bar"),
        ("/foo", "/", "/foo/bar", "/bar"),
        ("/foo", "/", "/foo", "/"),
        ("/", "/xyz", "/bar", "/xyz/bar"),
        ("/", "/", "/bar", "/bar"),
    ])
    func replacePrefixMatchWorksOnWholeSegments(prefix: String, replacement: String, path: String, expected: String) {
        #expect(PathModifier.replacePrefixMatch(matchedPrefix: prefix, replacement: replacement).apply(to: path) == expected)
    }

    @Test func replaceFullPathIgnoresTheOldPath() {
        #expect(PathModifier.replaceFullPath("/new").apply(to: "/old/deep") == "/new")
    }

    @Test func redirectLocationFollowsTheGatewayAPIPortRules() {
        // Scheme changed, no port: the scheme's well-known port, omitted.
        #expect(RedirectDecision(scheme: "https", listenerPort: 80).location(requestScheme: "http", requestHost: "a.example.com", path: "/x", query: "q=1")
            == "https://a.example.com/x?q=1")
        // Scheme changed on a listener of another port: still the scheme's port, not the listener's.
        #expect(RedirectDecision(scheme: "http", listenerPort: 8080).location(requestScheme: "http", requestHost: "a", path: "/", query: nil) == "http://a/")
        // Nothing set: the listener port, shown when it is not well known.
        #expect(RedirectDecision(listenerPort: 8080).location(requestScheme: "http", requestHost: "a.example.com", path: "/x", query: nil)
            == "http://a.example.com:8080/x")
        #expect(RedirectDecision(listenerPort: 80).location(requestScheme: "http", requestHost: "a.example.com", path: "/x", query: nil)
            == "http://a.example.com/x")
        #expect(RedirectDecision(listenerPort: 443).location(requestScheme: "https", requestHost: "a", path: "/", query: nil) == "https://a/")
        // Explicit port and host and path.
        #expect(RedirectDecision(hostname: "b.example.com", port: 8443, path: .replaceFullPath("/y"), statusCode: 301, listenerPort: 443)
            .location(requestScheme: "https", requestHost: "a", path: "/x", query: nil) == "https://b.example.com:8443/y")
        #expect(RedirectDecision(scheme: "http", port: 80, listenerPort: 443).location(requestScheme: "https", requestHost: "h", path: "/", query: nil)
            == "http://h/")
    }

    @Test func weightedChoiceFollowsTheTickets() {
        let a = UpstreamEndpoint(host: "10.0.0.1", port: 80)
        let b = UpstreamEndpoint(host: "10.0.0.2", port: 80)
        let backends: [WeightedUpstream] = [.endpoints([a], weight: 3), .endpoints([b], weight: 1), .endpoints([a], weight: 0)]
        // Tickets 0,1,2 land on the first backend (weight 3), ticket 3 on the second.
        for ticket: UInt64 in 0...3 {
            let choice = BackendChoice.choose(from: backends, random: { n in n == 4 ? ticket : 0 })
            #expect(choice == .endpoint(ticket < 3 ? a : b))
        }
    }

    @Test func weightedChoiceDistributesRoughlyByWeight() {
        let a = UpstreamEndpoint(host: "10.0.0.1", port: 80)
        let b = UpstreamEndpoint(host: "10.0.0.2", port: 80)
        var countA = 0
        for _ in 0..<4000 where BackendChoice.choose(from: [.endpoints([a], weight: 80), .endpoints([b], weight: 20)]) == .endpoint(a) {
            countA += 1
        }
        #expect((2900...3500).contains(countA))
    }

    @Test func failingSharesAndEmptyBackendsGiveTheirStatus() {
        #expect(BackendChoice.choose(from: []) == .status(500))
        #expect(BackendChoice.choose(from: [.endpoints([], weight: 0)]) == .status(500))
        #expect(BackendChoice.choose(from: [.endpoints([], weight: 1)]) == .status(503))
        #expect(BackendChoice.choose(from: [WeightedUpstream(weight: 1, target: .status(500))]) == .status(500))
    }

    @Test func retryAvoidsTheFailedEndpointWhenThereIsAnother() {
        let a = UpstreamEndpoint(host: "10.0.0.1", port: 80)
        let b = UpstreamEndpoint(host: "10.0.0.2", port: 80)
        for _ in 0..<20 {
            #expect(BackendChoice.choose(from: [.endpoints([a, b])], avoiding: a) == .endpoint(b))
        }
        #expect(BackendChoice.choose(from: [.endpoints([a])], avoiding: a) == .endpoint(a))
    }

    @Test func headerModifierSetsAddsAndRemoves() {
        var headers: HTTPHeaders = ["X-A": "1", "X-B": "2", "X-C": "3"]
        HeaderModifier(set: [HeaderField("x-a", "one")], add: [HeaderField("X-B", "two")], remove: ["x-c"]).apply(to: &headers)
        #expect(headers["x-a"] == ["one"])
        #expect(headers["x-b"] == ["2", "two"])
        #expect(!headers.contains(name: "x-c"))
    }

    @Test func requestTargetParsesHostPathAndQuery() throws {
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/a/b?x=1&y", headers: ["Host": "A.Example.com:8080"])
        let target = try RequestTarget.parse(head)
        #expect(target == RequestTarget(host: "a.example.com", authority: "A.Example.com:8080", path: "/a/b", query: "x=1&y"))
        let absolute = HTTPRequestHead(version: .http1_1, method: .GET, uri: "http://b.example.com/p", headers: ["Host": "ignored"])
        #expect(try RequestTarget.parse(absolute).host == "b.example.com")
        let v6 = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["Host": "[fd00::1]:80"])
        #expect(try RequestTarget.parse(v6).host == "fd00::1")
        let upperScheme = HTTPRequestHead(version: .http1_1, method: .GET, uri: "HTTPS://C.example.com?q", headers: ["Host": "ignored"])
        #expect(try RequestTarget.parse(upperScheme) == RequestTarget(host: "c.example.com", authority: "C.example.com", path: "/", query: "q"))
        let plain = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["Host": "a-1.example.com"])
        #expect(try RequestTarget.parse(plain).host == "a-1.example.com")
        let trailingDot = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["Host": "a.example.com."])
        #expect(try RequestTarget.parse(trailingDot).host == "a.example.com")
    }

    @Test func requestTargetRejectsMissingOrDuplicateHost() {
        #expect(throws: RequestTarget.Problem.self) {
            try RequestTarget.parse(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: [:]))
        }
        #expect(throws: RequestTarget.Problem.self) {
            try RequestTarget.parse(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: HTTPHeaders([("Host", "a"), ("Host", "b")])))
        }
        // HTTP/1.0 may omit Host.
        #expect((try? RequestTarget.parse(HTTPRequestHead(version: .http1_0, method: .GET, uri: "/", headers: [:]))) != nil)
    }


    @Test func upstreamHeadAddsForwardingHeadersAndDropsHopByHop() throws {
        let head = HTTPRequestHead(
            version: .http1_1, method: .POST, uri: "/api/x?q=1",
            headers: [
                "Host": "a.example.com", "Connection": "keep-alive, X-Secret", "X-Secret": "s", "Keep-Alive": "timeout=5",
                "X-Forwarded-For": "203.0.113.9", "Transfer-Encoding": "chunked", "Upgrade": "h2c", "X-Keep": "yes",
            ])
        let target = try RequestTarget.parse(head)
        let out = HeaderRewriting.upstreamRequestHead(
            head, target: target, clientAddress: "10.1.2.3", isTLS: false,
            modifier: HeaderModifier(set: [HeaderField("x-added", "1")]),
            rewrite: URLRewrite(hostname: "internal", path: .replacePrefixMatch(matchedPrefix: "/api", replacement: "/v2")))
        #expect(out.uri == "/v2/x?q=1")
        #expect(out.headers["host"] == ["internal"])
        #expect(out.headers["x-forwarded-for"] == ["203.0.113.9, 10.1.2.3"])
        #expect(out.headers["x-forwarded-proto"] == ["http"])
        #expect(out.headers["forwarded"] == ["for=10.1.2.3;host=\"a.example.com\";proto=http"])
        #expect(out.headers["transfer-encoding"] == ["chunked"])
        for gone in ["connection", "x-secret", "keep-alive", "upgrade"] { #expect(!out.headers.contains(name: gone)) }
        #expect(out.headers["x-keep"] == ["yes"])
        #expect(out.headers["x-added"] == ["1"])
    }

    @Test func hopByHopRemovalWithoutConnectionHeaderAndInAnyCase() {
        var headers: HTTPHeaders = ["TE": "trailers", "Proxy-Connection": "keep-alive", "X-Keep": "1", "TRAILER": "x"]
        HeaderRewriting.removeHopByHop(&headers)
        #expect(headers.map(\.name) == ["X-Keep"])
        var untouched: HTTPHeaders = ["Host": "h", "Content-Length": "3"]
        HeaderRewriting.removeHopByHop(&untouched)
        #expect(untouched.map(\.name) == ["Host", "Content-Length"])
        #expect(HeaderRewriting.isHopByHop("Transfer-Encoding") && HeaderRewriting.isHopByHop("upgrade"))
        #expect(!HeaderRewriting.isHopByHop("x-upgrade") && !HeaderRewriting.isHopByHop("tf"))
    }

    @Test func theCommonConnectionValuesAndTheGeneralPathRemoveTheSameHeaders() {
        func removed(_ fields: [(String, String)]) -> [String] {
            var headers = HTTPHeaders(fields)
            HeaderRewriting.removeHopByHop(&headers)
            return headers.map(\.name)
        }
        // keep-alive / close, any case: Connection and the hop-by-hop set go, nothing else.
        #expect(removed([("Connection", "keep-alive"), ("Keep-Alive", "timeout=5"), ("X-A", "1")]) == ["X-A"])
        #expect(removed([("connection", "Keep-Alive"), ("X-A", "1")]) == ["X-A"])
        #expect(removed([("Connection", "CLOSE"), ("X-A", "1"), ("TE", "trailers")]) == ["X-A"])
        // `close` names the reserved `Close` field (RFC 9110 §18.4): removed as the general path removes it.
        #expect(removed([("Connection", "close"), ("Close", "x"), ("X-A", "1")]) == ["X-A"])
        // Two Connection headers, the second naming a field: the general path.
        #expect(removed([("Connection", "keep-alive"), ("Connection", "x-hop"), ("X-Hop", "1"), ("X-A", "1")]) == ["X-A"])
        #expect(removed([("Connection", "close, x-hop"), ("X-Hop", "1"), ("X-A", "1")]) == ["X-A"])
        // A field named like an option that is not in Connection stays.
        #expect(removed([("Close", "x"), ("X-A", "1")]) == ["Close", "X-A"])
        // A response's Connection never comes from the route's edits either.
        let head = HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Connection": "keep-alive", "X-A": "1"])
        let edited = HeaderRewriting.downstreamResponseHead(
            head, requestVersion: .http1_1, keepAlive: true, modifier: HeaderModifier(set: [HeaderField("connection", "upgrade")]))
        #expect(edited.headers.map(\.name) == ["X-A"])
        #expect(HeaderRewriting.downstreamResponseHead(head, requestVersion: .http1_1, keepAlive: true, modifier: HeaderModifier()).headers.map(\.name) == ["X-A"])
    }

    @Test func upstreamHeadFramesABodylessPostAndQuotesIPv6InForwarded() throws {
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/", headers: ["Host": "h"])
        let out = HeaderRewriting.upstreamRequestHead(
            head, target: try RequestTarget.parse(head), clientAddress: "fd00::7", isTLS: true, modifier: .init(), rewrite: nil)
        #expect(out.headers["content-length"] == ["0"])
        #expect(out.headers["forwarded"] == ["for=\"[fd00::7]\";host=\"h\";proto=https"])
        #expect(out.headers["x-forwarded-proto"] == ["https"])
    }

    @Test func downstreamHeadSaysCloseAndAppliesResponseModifier() {
        let head = HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Connection": "keep-alive", "Keep-Alive": "timeout=5", "Server": "x"])
        let out = HeaderRewriting.downstreamResponseHead(head, requestVersion: .http1_1, keepAlive: false, modifier: HeaderModifier(remove: ["server"]))
        #expect(out.headers["connection"] == ["close"])
        #expect(!out.headers.contains(name: "keep-alive"))
        #expect(!out.headers.contains(name: "server"))
        #expect(!HeaderRewriting.responseAllowsKeepAlive(HTTPResponseHead(version: .http1_1, status: .ok), requestVersion: .http1_0))
        #expect(HeaderRewriting.responseAllowsKeepAlive(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["content-length": "1"]), requestVersion: .http1_0))
    }

    @Test func metricsCountPerRouteAndStatusWithHistogram() {
        let metrics = ProxyMetrics()
        metrics.record(route: RouteLabel("r1"), status: 200, latencySeconds: 0.002)
        metrics.record(route: RouteLabel("r1"), status: 200, latencySeconds: 3)
        metrics.record(route: RouteLabel("r1"), status: 503, latencySeconds: 0.0001)
        #expect(metrics.count(route: "r1", status: 200) == 2)
        #expect(metrics.count(route: "r1", status: 503) == 1)
        metrics.record(route: .none, status: 404, latencySeconds: 0.0001)
        metrics.record(route: .none, status: 431, latencySeconds: 0.0001)
        let text = metrics.prometheusText()
        #expect(text.contains("portway_proxy_requests_total{route=\"r1\",code=\"200\"} 2"))
        // Cumulative buckets: 0.002 falls in le=0.005; 3 s only from le=5 on.
        #expect(text.contains("portway_proxy_request_duration_seconds_bucket{route=\"r1\",code=\"200\",le=\"0.001\"} 0"))
        #expect(text.contains("portway_proxy_request_duration_seconds_bucket{route=\"r1\",code=\"200\",le=\"0.005\"} 1"))
        #expect(text.contains("portway_proxy_request_duration_seconds_bucket{route=\"r1\",code=\"200\",le=\"2.5\"} 1"))
        #expect(text.contains("portway_proxy_request_duration_seconds_bucket{route=\"r1\",code=\"200\",le=\"5.0\"} 2"))
        #expect(text.contains("portway_proxy_request_duration_seconds_bucket{route=\"r1\",code=\"200\",le=\"+Inf\"} 2"))
        #expect(text.contains("portway_proxy_requests_rejected_total{reason=\"no_route\"} 1"))
        #expect(text.contains("portway_proxy_requests_rejected_total{reason=\"headers_too_large\"} 1"))
    }

    @Test func routeTableSwapIsSeenByTheNextRead() {
        let holder = RouteTableHolder()
        let request = RoutingRequest(proxyPort: 1, host: "h", path: "/", method: "GET")
        guard case .respond(404, _) = holder.current.route(request) else { Issue.record("expected 404"); return }
        holder.swap(FixedRouter(.respond(status: 503, route: RouteLabel("x"))))
        guard case .respond(503, _) = holder.current.route(request) else { Issue.record("expected 503"); return }
    }
}
