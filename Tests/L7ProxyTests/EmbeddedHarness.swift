import GatewayCore
import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
@testable import L7Proxy

/// Hands out in-memory upstream channels on the harness loop; can be told to fail connects.
final class EmbeddedConnector: UpstreamConnector, @unchecked Sendable {
    let loop: EmbeddedEventLoop
    var upstreams: [EmbeddedChannel] = []
    var endpoints: [UpstreamEndpoint] = []
    var failures: [any Error] = []

    init(loop: EmbeddedEventLoop) { self.loop = loop }

    func connect(to endpoint: UpstreamEndpoint, on eventLoop: any EventLoop, timeout: TimeAmount) -> EventLoopFuture<any Channel> {
        endpoints.append(endpoint)
        if !failures.isEmpty { return loop.makeFailedFuture(failures.removeFirst()) }
        let channel = EmbeddedChannel(loop: loop)
        _ = try? channel.connect(to: SocketAddress(ipAddress: endpoint.host, port: endpoint.port)).wait()
        upstreams.append(channel)
        return loop.makeSucceededFuture(channel)
    }
}

/// One client connection of the proxy on an EmbeddedChannel, with embedded upstreams: the whole
/// handler stack runs, no socket is opened.
final class EmbeddedHarness {
    let loop = EmbeddedEventLoop()
    let client: EmbeddedChannel
    let connector: EmbeddedConnector
    let routes: RouteTableHolder
    let metrics = ProxyMetrics()
    let pool: UpstreamPool

    init(router: any RequestRouter, options: ProxyOptions = ProxyOptions(),
         random: @escaping @Sendable (UInt64) -> UInt64 = { UInt64.random(in: 0..<$0) }) throws {
        client = EmbeddedChannel(loop: loop)
        connector = EmbeddedConnector(loop: loop)
        routes = RouteTableHolder(router)
        pool = UpstreamPool(eventLoop: loop, connector: connector, options: options, metrics: metrics)
        let shared = ConnectionContext(proxyPort: 8080, isTLS: false, options: options, routes: routes, metrics: metrics, pool: pool, random: random)
        try L7Proxy.configure(client, shared: shared, tls: nil)
        try client.connect(to: SocketAddress(ipAddress: "10.1.2.3", port: 5555)).wait()
    }

    /// Sends raw bytes from the client.
    func send(_ text: String) {
        _ = try? client.writeInbound(ByteBuffer(string: text))
        loop.run()
    }

    /// Everything the proxy wrote to the client so far.
    func clientReceived() -> String { Self.drain(client) }

    /// Everything the proxy wrote to upstream `index` so far.
    func upstreamReceived(_ index: Int) -> String { Self.drain(connector.upstreams[index]) }

    /// Bytes from backend `index` to the proxy.
    func upstreamSends(_ index: Int, _ text: String) {
        _ = try? connector.upstreams[index].writeInbound(ByteBuffer(string: text))
        loop.run()
    }

    static func drain(_ channel: EmbeddedChannel) -> String {
        var out = ""
        while let data = try? channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let buffer) = data { out += String(buffer: buffer) }
        }
        return out
    }
}

/// Routes by Host: `a` and `b` to one endpoint each, `split` to both, `gone` to a backend without
/// endpoints (503), `bad` to an unresolved ref (500), `redirect` to https; anything else 404.
struct HostRouter: RequestRouter {
    var a: [UpstreamEndpoint]
    var b: [UpstreamEndpoint]
    var requestHeaders = HeaderModifier()
    var responseHeaders = HeaderModifier()
    var requestTimeoutSeconds: Double? = nil
    var backendRequestTimeoutSeconds: Double? = nil

    func route(_ request: RoutingRequest) -> RoutingDecision {
        switch request.host {
        case "a.example.com":
            return .forward(ForwardDecision(backends: [.endpoints(a)], requestHeaders: requestHeaders, responseHeaders: responseHeaders,
                                            requestTimeoutSeconds: requestTimeoutSeconds, backendRequestTimeoutSeconds: backendRequestTimeoutSeconds,
                                            route: RouteLabel("default/a/rule0")))
        case "b.example.com":
            return .forward(ForwardDecision(backends: [.endpoints(b)], route: RouteLabel("default/b/rule0")))
        case "split.example.com":
            return .forward(ForwardDecision(backends: [.endpoints(a, weight: 50), .endpoints(b, weight: 50)], route: RouteLabel("default/split/rule0")))
        case "gone.example.com":
            return .forward(ForwardDecision(backends: [.endpoints([])], route: RouteLabel("default/gone/rule0")))
        case "bad.example.com":
            return .forward(ForwardDecision(backends: [WeightedUpstream(weight: 1, target: .status(500))], route: RouteLabel("default/bad/rule0")))
        case "redirect.example.com":
            return .redirect(RedirectDecision(scheme: "https", statusCode: 301, route: RouteLabel("default/redirect/rule0")))
        default:
            return .respond(status: 404, route: .none)
        }
    }
}

/// A parsed HTTP/1.1 response (test-side parser: Content-Length and chunked bodies).
struct ParsedResponse {
    var status: Int
    var headers: [(String, String)]
    var body: String

    func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
}

/// Splits a byte stream of responses (bodies framed by Content-Length or chunked; others run to the
/// end). Works on bytes: Swift treats "\r\n" as one Character.
func parseResponses(_ text: String) -> [ParsedResponse] {
    let bytes = Array(text.utf8)
    var out: [ParsedResponse] = []
    var at = 0
    func find(_ needle: [UInt8], from start: Int) -> Int? {
        guard needle.count <= bytes.count else { return nil }
        var i = start
        while i + needle.count <= bytes.count {
            if bytes[i] == needle[0] && Array(bytes[i..<i + needle.count]) == needle { return i }
            i += 1
        }
        return nil
    }
    func string(_ range: Range<Int>) -> String { String(decoding: bytes[range], as: UTF8.self) }
    let crlf = Array("\r\n".utf8)
    while let headEnd = find(crlf + crlf, from: at) {
        let lines = string(at..<headEnd).components(separatedBy: "\r\n")
        guard let statusLine = lines.first, statusLine.hasPrefix("HTTP/1."), let status = Int(statusLine.dropFirst(9).prefix(3)) else { break }
        let headers = lines.dropFirst().compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        var response = ParsedResponse(status: status, headers: headers, body: "")
        at = headEnd + 4
        if let length = response.header("content-length").flatMap(Int.init) {
            let end = min(at + length, bytes.count)
            response.body = string(at..<end)
            at = end
        } else if response.header("transfer-encoding")?.lowercased() == "chunked" {
            while let lineEnd = find(crlf, from: at), let size = Int(string(at..<lineEnd), radix: 16) {
                let start = lineEnd + 2
                let end = min(start + size, bytes.count)
                response.body += string(start..<end)
                at = min(end + 2, bytes.count)
                if size == 0 { break }
            }
        } else if status != 204 && status != 304 && !(100..<200).contains(status) {
            response.body = string(at..<bytes.count)
            at = bytes.count
        }
        out.append(response)
    }
    return out
}
