import GatewayCore
import Testing
@testable import GatewayCore
import LoadBalancer

@Suite struct GatewayHostnameTests {
    @Test(arguments: [
        ("foo.example.com", "foo.example.com", true),
        ("foo.example.com", "*.example.com", true),
        ("a.b.example.com", "*.example.com", true),
        ("example.com", "*.example.com", false),
        ("fooexample.com", "*.example.com", false),
        ("foo.example.com", "bar.example.com", false),
        ("foo.example.com", "Foo.Example.COM", true),
    ])
    func hostMatchesPattern(host: String, pattern: String, expected: Bool) {
        #expect(Hostnames.matches(host: host, pattern: pattern) == expected)
    }

    @Test(arguments: [
        ("Foo.Example.com:8080", "foo.example.com"),
        ("foo.example.com.", "foo.example.com"),
        ("[fd00::1]:80", "fd00::1"),
        ("10.0.0.1:80", "10.0.0.1"),
    ])
    func hostIsNormalized(raw: String, normalized: String) {
        #expect(Hostnames.normalize(host: raw) == normalized)
    }

    @Test(arguments: [
        // No listener hostname: the route's names; no route names: the listener's.
        (nil, ["a.com", "*.b.com"], ["a.com", "*.b.com"]),
        (nil, [], []),
        ("very.specific.com", [], ["very.specific.com"]),
        // Exact on exact.
        ("very.specific.com", ["non.matching.com", "*.nonmatchingwildcard.io", "very.specific.com"], ["very.specific.com"]),
        // Exact names inside a listener wildcard; the bare domain is not inside it.
        ("*.wildcard.io", ["non.matching.com", "wildcard.io", "foo.wildcard.io", "bar.wildcard.io", "*.anotherwildcard.io"], ["foo.wildcard.io", "bar.wildcard.io"]),
        // A route wildcard covering the listener's exact name gives the exact name.
        ("very.specific.com", ["non.matching.com", "*.specific.com"], ["very.specific.com"]),
        // Wildcard on wildcard: the narrower one.
        ("*.anotherwildcard.io", ["*.anotherwildcard.io"], ["*.anotherwildcard.io"]),
        ("*.example.com", ["*.foo.example.com"], ["*.foo.example.com"]),
        ("*.foo.example.com", ["*.example.com"], ["*.foo.example.com"]),
        // Nothing in common.
        ("very.specific.com", ["specific.but.wrong.com", "wildcard.io"], nil),
        ("*.wildcard.io", ["wildcard.io"], nil),
        ("*.foo.com", ["*.bar.com"], nil),
    ] as [(String?, [String], [String]?)])
    func listenerAndRouteHostnamesIntersect(listener: String?, route: [String], expected: [String]?) {
        #expect(Hostnames.intersect(listener: listener, route: route) == expected)
    }

    @Test func exactNamesBeatWildcardsAndLongerBeatsShorter() {
        let exact = Hostnames.specificity(host: "a.b.example.com", patterns: ["a.b.example.com"])!
        let longWildcard = Hostnames.specificity(host: "a.b.example.com", patterns: ["*.b.example.com"])!
        let shortWildcard = Hostnames.specificity(host: "a.b.example.com", patterns: ["*.example.com"])!
        let any = Hostnames.specificity(host: "a.b.example.com", patterns: [])!
        #expect(shortWildcard < longWildcard && longWildcard < exact && any < shortWildcard)
        #expect(Hostnames.specificity(host: "x.org", patterns: ["*.example.com"]) == nil)
    }

    @Test(arguments: [
        ("/foo", "/foo", true), ("/foo", "/foo/", true), ("/foo", "/foo/bar", true), ("/foo", "/foobar", false),
        ("/foo/", "/foo", true), ("/foo/", "/foo/bar", true), ("/foo/", "/foobar", false), ("/", "/anything", true),
        ("/v2", "/v2example", false),
    ])
    func pathPrefixMatchesWholeSegments(prefix: String, path: String, expected: Bool) {
        #expect(PathMatching.matches(path: path, spec: RouteMatchSpec(pathKind: .pathPrefix, path: prefix)) == expected)
    }

    @Test func exactAndRegularExpressionPaths() {
        #expect(PathMatching.matches(path: "/one", spec: RouteMatchSpec(pathKind: .exact, path: "/one")))
        #expect(!PathMatching.matches(path: "/one/", spec: RouteMatchSpec(pathKind: .exact, path: "/one")))
        let regex = RouteMatchSpec(pathKind: .regularExpression, path: "/v[0-9]+/users")
        #expect(PathMatching.matches(path: "/v12/users", spec: regex))
        // The whole path must match, not a part of it.
        #expect(!PathMatching.matches(path: "/api/v12/users/x", spec: regex))
    }

    @Test func base64DecodesSecrets() {
        #expect(Base64.decode("Y2VydA==") == Array("cert".utf8))
        #expect(Base64.decode("a2V5") == Array("key".utf8))
        #expect(Base64.decode("YWJj\nZGVm") == Array("abcdef".utf8))
        #expect(Base64.decode("not base64!") == nil)
    }
}
