import GatewayCore
import NIOHTTP1
import Testing
@testable import L7Proxy

/// Issue 16, items 4–8: what the proxy accepts, routes and forwards is decided once, when the
/// request head arrives. Pure tests of the parse; EmbeddedProxyTests / ProxyIntegrationTests and the
/// network-namespace suite check the same requests end to end.
@Suite struct RequestValidationTests {
    func parse(_ uri: String, host: String? = "a.example.com", paths: PathNormalization = .standard) throws(RequestTarget.Problem) -> RequestTarget {
        var headers = HTTPHeaders()
        if let host { headers.add(name: "Host", value: host) }
        return try RequestTarget.parse(HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: headers), paths: paths)
    }

    func rejects(_ uri: String, host: String? = "a.example.com", paths: PathNormalization = .standard) -> Bool {
        (try? parse(uri, host: host, paths: paths)) == nil
    }

    @Test("Host must be uri-host [\":\" port]: quotes, spaces, userinfo, a non-numeric or too large port are 400")
    func hostSyntax() throws {
        for bad in [
            #"echo.example.com:", for=6.6.6.6;host="trusted.example.com"#, "evil@host", "host:abc", "a b", "host:65536",
            "host:123456", "[fd00::1", "[fd00::1]x", "[zz::1]", "\"quoted\"", "a\\b", "a/b", "%61.example.com", ":80", "host:8:0",
        ] {
            #expect(rejects("/", host: bad), "Host \(bad)")
        }
        for good in ["a.example.com", "A.Example.COM:8080", "10.0.0.1:80", "[fd00::1]", "[fd00::1]:443", "host:", "under_score.example", "a.example.com."] {
            #expect(!rejects("/", host: good), "Host \(good)")
        }
        // Host fields in any case: exactly one is taken, two are refused.
        let oneHost = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["X-A": "1", "HoSt": "A.example.com", "X-B": "2"])
        #expect((try? RequestTarget.parse(oneHost))?.authority == "A.example.com")
        let twoHosts = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["host": "a.example.com", "HOST": "a.example.com"])
        #expect((try? RequestTarget.parse(twoHosts)) == nil)
        let hostLike = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["hosts": "a.example.com", "hos": "b"])
        #expect((try? RequestTarget.parse(hostLike)) == nil, "no Host on HTTP/1.1")
        // An absolute-form authority is held to the same syntax.
        #expect(rejects("http://evil@paths.example.com/admin"))
        #expect(rejects("http://paths.example.com:x/admin"))
    }

    @Test("an absolute-form target's authority is routed and is the authority forwarded (RFC 9112 §3.2.2)")
    func absoluteForm() throws {
        let target = try parse("http://paths.example.com/admin?x", host: "echo.example.com")
        #expect(target.host == "paths.example.com")
        #expect(target.authority == "paths.example.com")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "http://paths.example.com/admin?x", headers: ["Host": "echo.example.com"])
        let upstream = HeaderRewriting.upstreamRequestHead(
            head, target: target, clientAddress: "192.0.2.7", isTLS: false, modifier: HeaderModifier(), rewrite: nil)
        #expect(upstream.uri == "/admin?x")
        #expect(upstream.headers["host"] == ["paths.example.com"])
        #expect(upstream.headers["x-forwarded-host"] == ["paths.example.com"])
        #expect(upstream.headers["forwarded"] == [#"for=192.0.2.7;host="paths.example.com";proto=http"#])
    }

    @Test("Forwarded values are quoted-strings: no value can add a parameter or an element")
    func forwardedQuoting() {
        #expect(HeaderRewriting.quoted("a.example.com:8080") == #""a.example.com:8080""#)
        #expect(HeaderRewriting.quoted(#"x", for=6.6.6.6;host="y"#) == #""x\", for=6.6.6.6;host=\"y""#)
        #expect(HeaderRewriting.quoted(#"back\slash"#) == #""back\\slash""#)
    }

    @Test("the Forwarded element built in one string equals the one built from interpolated pieces")
    func forwardedElementMatchesTheInterpolatedForm() {
        // The form it replaced, kept here as the reference.
        func interpolated(_ client: String?, _ authority: String, _ proto: String) -> String {
            var element = ""
            if let client { element += "for=\(client.contains(":") ? "\"[\(client)]\"" : client);" }
            element += "host=\(HeaderRewriting.quoted(authority));proto=\(proto)"
            return element
        }
        let clients: [String?] = [nil, "192.0.2.7", "2001:db8::7", "::1"]
        let authorities = ["a.example.com", "a.example.com:8080", "", #"x", for=6.6.6.6;host="y"#, #"back\slash"#, "[2001:db8::1]:443", "ünï"]
        for client in clients {
            for authority in authorities {
                for proto in ["http", "https"] {
                    #expect(
                        HeaderRewriting.forwardedElement(clientAddress: client, authority: authority, proto: proto)
                            == interpolated(client, authority, proto))
                }
            }
        }
        #expect(HeaderRewriting.forwardedElement(clientAddress: "2001:db8::7", authority: "a", proto: "http") == #"for="[2001:db8::7]";host="a";proto=http"#)
    }

    @Test("paths are normalized before routing: dot segments, merged slashes, unreserved escapes decoded")
    func normalization() throws {
        let cases: [(String, String)] = [
            ("/./admin", "/admin"), ("//admin", "/admin"), ("/%61dmin", "/admin"), ("/a/../admin", "/admin"),
            ("/../../admin", "/admin"), ("/a/./b/../c", "/a/c"), ("/a/b/..", "/a/"), ("/a/.", "/a/"), ("/.", "/"), ("/..", "/"),
            ("/%2e%2e/admin", "/admin"), ("/%2E/admin", "/admin"), ("///a//b///", "/a/b/"), ("/a%7e", "/a~"), ("/a%3ab", "/a%3Ab"),
            ("/a..b/.c/..d", "/a..b/.c/..d"), ("/", "/"), ("/a/b", "/a/b"), ("/files/x.json", "/files/x.json"),
        ]
        for (raw, normal) in cases {
            #expect(try parse(raw).path == normal, "\(raw)")
        }
        #expect(try parse("/./a//b", paths: PathNormalization(normalize: false)).path == "/./a//b", "normalization off keeps the path")
    }

    @Test("what cannot be normalized is 400: escaped slashes (unless configured), NUL, control characters, bad escapes, backslash")
    func refusedPaths() throws {
        for bad in ["/a%2Fb", "/a%2fb", "/a%5Cb", "/a%00", "/a%0a", "/a%7F", "/a%zz", "/a%4", "/a%", "/a\\b"] {
            #expect(rejects(bad), "\(bad)")
        }
        #expect(try parse("/a%2Fb", paths: PathNormalization(escapedSlashes: .keep)).path == "/a%2Fb")
        #expect(try parse("/a%2fb/../c", paths: PathNormalization(escapedSlashes: .unescape)).path == "/a/c")
        #expect(rejects("/a%5Cb", paths: PathNormalization(escapedSlashes: .unescape)), "a backslash is never a separator here")
    }

    @Test("characters a URI may not hold are percent-encoded at parse time, in the path and the query")
    func encodedCharacters() throws {
        #expect(try parse("/a|b").path == "/a%7Cb")
        #expect(try parse("/x?q={1}").query == "q=%7B1%7D")
        let target = try parse("/\"<>^`{|}?\"<>\\^`{|}")
        #expect(target.path == "/%22%3C%3E%5E%60%7B%7C%7D")
        #expect(target.query == "%22%3C%3E%5C%5E%60%7B%7C%7D")
        #expect(try parse("/caf\u{e9}").path == "/caf%C3%A9")
        #expect(try parse("/a?b=%zz").query == "b=%zz", "query escapes are kept as sent")
        // What is forwarded holds only the bytes RFC 9112 §3.2 allows in a request-target (what NIO's
        // outbound validator checks before it sends a head upstream).
        let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%".utf8)
        for uri in ["/a|b", "/x?q={1}", "/\"<>^`{|}?\"<>\\^`{|}", "/caf\u{e9}?\u{e9}"] {
            #expect(try parse(uri).originForm.utf8.allSatisfy(allowed.contains), "\(uri)")
        }
    }

    @Test("Transfer-Encoding: exactly chunked is forwarded; chunked not last is 400, other codings 501, HTTP/1.0 400")
    func transferEncoding() {
        func problem(_ values: [String], version: HTTPVersion = .http1_1) -> HTTPResponseStatus? {
            var headers: HTTPHeaders = ["Host": "a"]
            for value in values { headers.add(name: "Transfer-Encoding", value: value) }
            return HeaderRewriting.transferEncodingProblem(HTTPRequestHead(version: version, method: .POST, uri: "/", headers: headers))
        }
        #expect(problem([]) == nil)
        #expect(problem(["chunked"]) == nil)
        #expect(problem(["Chunked"]) == nil)
        #expect(problem(["identity"]) == .badRequest)
        #expect(problem(["chunked, gzip"]) == .badRequest)
        #expect(problem(["gzip, chunked"]) == .notImplemented)
        #expect(problem(["gzip", "chunked"]) == .notImplemented)
        #expect(problem(["chunked"], version: .http1_0) == .badRequest)
    }
}
