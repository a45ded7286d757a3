import KubeModels
import NIOHTTP1
import Testing
@testable import L7Proxy

@Suite struct GatewayFiltersTests {
    @Test func headerModifiersAccumulateInOrder() {
        var forward = ForwardDecision(backends: [], route: RouteLabel("ns/r/rule0"))
        let redirect = RuleFilters.apply([
            HTTPRouteFilter(type: "RequestHeaderModifier", requestHeaderModifier: HTTPHeaderFilter(set: [HTTPHeader(name: "x-a", value: "1")], remove: ["x-b"])),
            HTTPRouteFilter(type: "ResponseHeaderModifier", responseHeaderModifier: HTTPHeaderFilter(add: [HTTPHeader(name: "x-r", value: "2")])),
            HTTPRouteFilter(type: "RequestMirror"),
        ], matchedPrefix: "/", to: &forward)
        #expect(redirect == nil)
        var headers: HTTPHeaders = ["x-b": "gone", "x-a": "old"]
        forward.requestHeaders.apply(to: &headers)
        #expect(headers["x-a"] == ["1"])
        #expect(!headers.contains(name: "x-b"))
        #expect(forward.responseHeaders == HeaderModifier(add: [HeaderField("x-r", "2")]))
    }

    @Test func urlRewriteUsesTheMatchedPrefix() throws {
        var forward = ForwardDecision(backends: [])
        _ = RuleFilters.apply([
            HTTPRouteFilter(type: "URLRewrite", urlRewrite: HTTPURLRewriteFilter(
                hostname: "internal.example", path: HTTPPathModifier(type: "ReplacePrefixMatch", replacePrefixMatch: "/v2"))),
        ], matchedPrefix: "/api", to: &forward)
        #expect(forward.rewrite == URLRewrite(hostname: "internal.example", path: .replacePrefixMatch(matchedPrefix: "/api", replacement: "/v2")))
        #expect(forward.rewrite?.path?.apply(to: "/api/users") == "/v2/users")
        // ReplacePrefixMatch without a prefix match cannot apply.
        #expect(PathModifier(HTTPPathModifier(type: "ReplacePrefixMatch", replacePrefixMatch: "/x"), matchedPrefix: nil) == nil)
        #expect(PathModifier(HTTPPathModifier(type: "ReplaceFullPath", replaceFullPath: "/full"), matchedPrefix: nil) == .replaceFullPath("/full"))
        #expect(PathModifier(HTTPPathModifier(type: "Bogus"), matchedPrefix: "/") == nil)
    }

    @Test func requestRedirectWinsWithDefaults() {
        var forward = ForwardDecision(backends: [], route: RouteLabel("ns/r/rule1"))
        let redirect = RuleFilters.apply([
            HTTPRouteFilter(type: "RequestRedirect", requestRedirect: HTTPRequestRedirectFilter(scheme: "https")),
        ], matchedPrefix: "/", to: &forward)
        #expect(redirect == RedirectDecision(scheme: "https", statusCode: 302, route: RouteLabel("ns/r/rule1")))
        #expect(redirect?.location(requestScheme: "http", requestHost: "a.example.com", listenerPort: 80, path: "/p", query: nil) == "https://a.example.com/p")
    }
}
