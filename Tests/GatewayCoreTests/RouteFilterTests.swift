import GatewayCore
import KubeModels
import Testing

/// `RouteFilter.lower`: the one place that decides what Portway supports. What it refuses makes the
/// route Accepted=False/UnsupportedValue (ConformanceShapedTests); what it accepts the proxy applies.
@Suite struct RouteFilterTests {
    func lower(_ filter: HTTPRouteFilter, at place: RouteFilter.Place = .rule, prefix: String? = "/") -> Result<RouteFilter, RouteFilter.Unsupported> {
        RouteFilter.lower(filter, at: place, matchedPrefix: prefix)
    }

    @Test func theFourRuleFiltersAreLowered() throws {
        let headers = HTTPHeaderFilter(set: [HTTPHeader(name: "x-a", value: "1")], add: [HTTPHeader(name: "x-b", value: "2")], remove: ["x-c"])
        #expect(try lower(HTTPRouteFilter(type: "RequestHeaderModifier", requestHeaderModifier: headers)).get()
            == .requestHeaderModifier(HeaderModifier(set: [HeaderField("x-a", "1")], add: [HeaderField("x-b", "2")], remove: ["x-c"])))
        #expect(try lower(HTTPRouteFilter(type: "ResponseHeaderModifier", responseHeaderModifier: headers)).get().typeName == "ResponseHeaderModifier")
        #expect(try lower(HTTPRouteFilter(type: "RequestRedirect", requestRedirect: HTTPRequestRedirectFilter(hostname: "h", statusCode: 301))).get()
            == .requestRedirect(RedirectDecision(hostname: "h", statusCode: 301)))
        #expect(try lower(HTTPRouteFilter(type: "URLRewrite", urlRewrite: HTTPURLRewriteFilter(
            path: HTTPPathModifier(type: "ReplacePrefixMatch", replacePrefixMatch: "/v2"))), prefix: "/api").get()
            == .urlRewrite(URLRewrite(path: .replacePrefixMatch(matchedPrefix: "/api", replacement: "/v2"))))
        #expect(try lower(HTTPRouteFilter(type: "URLRewrite", urlRewrite: HTTPURLRewriteFilter(
            path: HTTPPathModifier(type: "ReplaceFullPath", replaceFullPath: "/full"))), prefix: nil).get()
            == .urlRewrite(URLRewrite(path: .replaceFullPath("/full"))))
    }

    @Test func whatCannotBeAppliedIsRefusedNotSkipped() {
        func message(_ result: Result<RouteFilter, RouteFilter.Unsupported>) -> String? {
            if case .failure(let problem) = result { return problem.message }
            return nil
        }
        #expect(message(lower(HTTPRouteFilter(type: "ExtensionRef"))) == "filter type ExtensionRef is not supported")
        #expect(message(lower(HTTPRouteFilter(type: "CORS"))) == "filter type CORS has no cors settings")
        #expect(message(lower(HTTPRouteFilter(type: "RequestMirror"))) == "filter type RequestMirror has no requestMirror settings")
        #expect(message(lower(HTTPRouteFilter(type: "RequestHeaderModifier"))) == "filter type RequestHeaderModifier has no requestHeaderModifier settings")
        #expect(message(lower(HTTPRouteFilter(type: "URLRewrite", urlRewrite: HTTPURLRewriteFilter(
            path: HTTPPathModifier(type: "ReplacePrefixMatch", replacePrefixMatch: "/x"))), prefix: nil)) == "ReplacePrefixMatch needs a PathPrefix match")
        #expect(message(lower(HTTPRouteFilter(type: "URLRewrite", urlRewrite: HTTPURLRewriteFilter(path: HTTPPathModifier(type: "Bogus"))))) == "path modifier type Bogus is not supported")
        // A backendRef takes the header modifiers only.
        #expect(message(lower(HTTPRouteFilter(type: "URLRewrite", urlRewrite: HTTPURLRewriteFilter(hostname: "h")), at: .backendRef))
            == "filter type URLRewrite is not supported on a backendRef")
        #expect((try? lower(HTTPRouteFilter(type: "RequestHeaderModifier", requestHeaderModifier: HTTPHeaderFilter()), at: .backendRef).get()) != nil)
    }
}
