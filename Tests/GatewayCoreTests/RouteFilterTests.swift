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

    /// What the proxy sends from configuration is checked here, once: the proxy runs without NIO's
    /// per-message header validators, so a value that could end a header line or the request line
    /// (header injection, response splitting) must never reach it.
    @Test func valuesThatCannotBeSentAreRefused() {
        func message(_ filter: HTTPRouteFilter, prefix: String? = "/", at place: RouteFilter.Place = .rule) -> String? {
            if case .failure(let problem) = lower(filter, at: place, prefix: prefix) { return problem.message }
            return nil
        }
        func headers(_ type: String, set: [HTTPHeader] = [], add: [HTTPHeader] = [], remove: [String] = []) -> HTTPRouteFilter {
            let edits = HTTPHeaderFilter(set: set, add: add, remove: remove)
            return type == "RequestHeaderModifier"
                ? HTTPRouteFilter(type: type, requestHeaderModifier: edits) : HTTPRouteFilter(type: type, responseHeaderModifier: edits)
        }
        for type in ["RequestHeaderModifier", "ResponseHeaderModifier"] {
            for place in [RouteFilter.Place.rule, .backendRef] {
                #expect(message(headers(type, set: [HTTPHeader(name: "x-note", value: "v\r\nX-Injected: 1")]), at: place)
                    == "\(type): the value of header x-note holds a control character (CR, LF, NUL or another but HTAB): \"v\\r\\nX-Injected: 1\"")
            }
            #expect(message(headers(type, add: [HTTPHeader(name: "x-note", value: "a\u{0}b")])) != nil)
            #expect(message(headers(type, add: [HTTPHeader(name: "x-note", value: "a\nb")])) != nil)
            #expect(message(headers(type, set: [HTTPHeader(name: "x-a: 1\r\nx-b", value: "v")]))
                == "\(type): header name \"x-a: 1\\r\\nx-b\" is not a token (RFC 9110)")
            #expect(message(headers(type, set: [HTTPHeader(name: "", value: "v")])) != nil)
            #expect(message(headers(type, remove: ["x a"])) == "\(type): header name \"x a\" is not a token (RFC 9110)")
            // HTAB, inner spaces and obs-text are field content.
            #expect(message(headers(type, set: [HTTPHeader(name: "x-ok", value: "a\tb c é")])) == nil)
        }
        func rewrite(hostname: String? = nil, _ path: HTTPPathModifier? = nil) -> HTTPRouteFilter {
            HTTPRouteFilter(type: "URLRewrite", urlRewrite: HTTPURLRewriteFilter(hostname: hostname, path: path))
        }
        func redirect(hostname: String? = nil, _ path: HTTPPathModifier? = nil) -> HTTPRouteFilter {
            HTTPRouteFilter(type: "RequestRedirect", requestRedirect: HTTPRequestRedirectFilter(hostname: hostname, path: path))
        }
        #expect(message(rewrite(hostname: "a.example\r\nX-Injected: 1")) == "URLRewrite hostname \"a.example\\r\\nX-Injected: 1\" is not a hostname (RFC 1123 labels)")
        #expect(message(redirect(hostname: "a.example/path")) == "RequestRedirect hostname \"a.example/path\" is not a hostname (RFC 1123 labels)")
        for bad in ["-a.example", "a..example", "a_b.example", "", "a.example:80"] {
            #expect(message(rewrite(hostname: bad)) != nil, "\(bad)")
        }
        #expect(message(rewrite(hostname: "Foo-1.example.com")) == nil)
        let fullPath = { (value: String) in HTTPPathModifier(type: "ReplaceFullPath", replaceFullPath: value) }
        let prefixPath = { (value: String) in HTTPPathModifier(type: "ReplacePrefixMatch", replacePrefixMatch: value) }
        #expect(message(rewrite(fullPath("/a\r\nX-Injected: 1"))) == "replaceFullPath \"/a\\r\\nX-Injected: 1\" holds characters a path may not (RFC 3986: pchar, \"/\", %XX)")
        #expect(message(redirect(prefixPath("/a b"))) == "replacePrefixMatch \"/a b\" holds characters a path may not (RFC 3986: pchar, \"/\", %XX)")
        for bad in ["/a?b=1", "/a#f", "/%zz", "/%4", "/a\\b", "/é"] {
            #expect(message(rewrite(fullPath(bad))) != nil, "\(bad)")
            #expect(message(redirect(prefixPath(bad))) != nil, "\(bad)")
        }
        #expect(message(rewrite(fullPath("relative"))) == "replaceFullPath \"relative\" does not start with /")
        #expect(message(rewrite(fullPath("/a/%20b;v=1/~x@y:z"))) == nil)
        #expect(message(redirect(prefixPath(""))) == nil)
        func cors(methods: [String] = [], allow: [String] = [], expose: [String] = []) -> HTTPRouteFilter {
            HTTPRouteFilter(type: "CORS", cors: HTTPCORSFilter(allowOrigins: ["https://a.example"], allowMethods: methods, allowHeaders: allow, exposeHeaders: expose))
        }
        #expect(message(cors(methods: ["GET", "PO ST"])) == "CORS allowMethods \"PO ST\" is not a token (RFC 9110)")
        #expect(message(cors(allow: ["x-a\r\nx-b: 1"])) == "CORS allowHeaders \"x-a\\r\\nx-b: 1\" is not a token (RFC 9110)")
        #expect(message(cors(expose: ["x,y"])) == "CORS exposeHeaders \"x,y\" is not a token (RFC 9110)")
        #expect(message(cors(methods: ["*"], allow: ["*"], expose: ["x-a"])) == nil)
    }
}
