import GatewayCore
import NIOCore
import NIOSSL
import NIOTLS
import Synchronization

/// The client TLS of one BackendTLSPolicy, ready for connections: the context (trusted CA
/// certificates), the SNI and the names the backend's certificate must carry.
///
/// Verification: the chain must lead to the policy's CA certificates (or the system's). Without
/// `subjectAltNames` the certificate must name the SNI hostname (NIOSSL's RFC 6125 check); with
/// them, it must carry one of them (a DNS name or a URI) and the hostname is only the SNI. A
/// failure fails the connect: the request gets 502 (after the proxy's one retry), with a log line
/// naming the endpoint and what was wrong.
///
/// Instances are shared per policy content (`make`), compared by identity: the pool keys its
/// connections on them cheaply, and a route table rebuilt with the same policy keeps its pooled
/// connections.
public final class UpstreamTLS: Hashable, Sendable, CustomStringConvertible {
    let context: NIOSSLContext
    /// The SNI (`validation.hostname`).
    public let serverName: String
    let subjectAltNames: [BackendSubjectAltName]
    let policy: NamespacedName

    private init(_ tls: BackendTLS) throws {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if tls.systemCACertificates {
            configuration.trustRoots = .default
        } else {
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(tls.caCertificates))
        }
        // With subjectAltNames the hostname is not the identity: the chain is checked here, the
        // names after the handshake (before anything is written).
        configuration.certificateVerification = tls.subjectAltNames.isEmpty ? .fullVerification : .noHostnameVerification
        context = try NIOSSLContext(configuration: configuration)
        serverName = tls.hostname
        subjectAltNames = tls.subjectAltNames
        policy = tls.policy
    }

    /// One instance per policy content; NIOSSL's errors (a CA bundle it cannot load) are thrown.
    public static func make(_ tls: BackendTLS) throws -> UpstreamTLS {
        if let known = cache.withLock({ $0[tls] }) { return known }
        let made = try UpstreamTLS(tls)
        return cache.withLock { cache in
            // Policies are few; a cache grown past the bound starts over (pools then reconnect).
            if cache.count >= 256 { cache.removeAll() }
            if let raced = cache[tls] { return raced }
            cache[tls] = made
            return made
        }
    }

    private static let cache = Mutex<[BackendTLS: UpstreamTLS]>([:])

    public static func == (lhs: UpstreamTLS, rhs: UpstreamTLS) -> Bool { lhs === rhs }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }

    public var description: String {
        "TLS SNI \(serverName)" + (subjectAltNames.isEmpty ? "" : " SAN \(subjectAltNames.map(\.description).joined(separator: ","))")
    }

    /// Starts TLS on a connected channel (on its event loop): succeeds with the channel once the
    /// handshake is done and the certificate verified, fails (and closes it) otherwise or after `timeout`.
    func secure(_ channel: any Channel, timeout: TimeAmount) -> EventLoopFuture<any Channel> {
        let promise = channel.eventLoop.makePromise(of: (any Channel).self)
        do {
            let sync = channel.pipeline.syncOperations
            try sync.addHandler(NIOSSLClientHandler(context: context, serverHostname: serverName))
            try sync.addHandler(BackendHandshakeHandler(tls: self, promise: promise))
        } catch {
            channel.close(promise: nil)
            promise.fail(BackendTLSError(policy: policy, serverName: serverName, problem: "TLS setup failed: \(error)"))
            return promise.futureResult
        }
        let timer = channel.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [policy, serverName] in
            promise.fail(BackendTLSError(policy: policy, serverName: serverName, problem: "TLS handshake timed out"))
            channel.close(promise: nil)
        }
        promise.futureResult.whenComplete { _ in timer.cancel() }
        return promise.futureResult
    }

    /// Whether `certificate` carries one of the policy's Subject Alternative Names; nil when it
    /// does, else the names it carries (for the log line).
    func subjectAltNameMismatch(_ certificate: NIOSSLCertificate) -> String? {
        var dnsNames: [String] = []
        var uris: [String] = []
        for name in certificate._subjectAlternativeNames() {
            let text = name.contents.withUnsafeBufferPointer { String(decoding: $0, as: UTF8.self) }
            switch name.nameType {
            case .dnsName: dnsNames.append(text.lowercased())
            case .uri: uris.append(text)
            default: continue
            }
        }
        for wanted in subjectAltNames {
            switch wanted.type {
            case .hostname:
                if dnsNames.contains(where: { Self.dnsName($0, matches: wanted.value) }) { return nil }
            case .uri:
                if uris.contains(wanted.value) { return nil }
            }
        }
        let found = dnsNames.map { "DNS:\($0)" } + uris.map { "URI:\($0)" }
        return "the certificate's subject alternative names (\(found.isEmpty ? "none" : found.joined(separator: ", "))) include none of \(subjectAltNames.map(\.description).joined(separator: ", "))"
    }

    /// A certificate's DNS name against a wanted name: equal (case-insensitive), or the
    /// certificate's `*.suffix` covering exactly one label of it (RFC 6125).
    static func dnsName(_ presented: String, matches wanted: String) -> Bool {
        if presented == wanted { return true }
        guard presented.hasPrefix("*."), let dot = wanted.firstIndex(of: ".") else { return false }
        return wanted[wanted.startIndex..<dot].count > 0 && wanted[dot...] == presented.dropFirst()
    }
}

/// Why TLS to a backend failed (the connect's error: logged with the endpoint, then 502).
struct BackendTLSError: Error, CustomStringConvertible {
    var policy: NamespacedName
    var serverName: String
    var problem: String

    var description: String { "backend TLS (BackendTLSPolicy \(policy), SNI \(serverName)): \(problem)" }
}

/// Waits for the TLS handshake with a backend and checks its certificate's names; then passes
/// everything through (it stays in the pipeline, before the HTTP handlers).
private final class BackendHandshakeHandler: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    private let tls: UpstreamTLS
    private var promise: EventLoopPromise<any Channel>?

    init(tls: UpstreamTLS, promise: EventLoopPromise<any Channel>) {
        self.tls = tls
        self.promise = promise
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let promise, let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            self.promise = nil
            if !tls.subjectAltNames.isEmpty {
                let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self).peerCertificate
                guard let certificate else {
                    fail(promise, "the backend presented no certificate", context: context)
                    return
                }
                if let mismatch = tls.subjectAltNameMismatch(certificate) {
                    fail(promise, mismatch, context: context)
                    return
                }
            }
            promise.succeed(context.channel)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let promise {
            self.promise = nil
            fail(promise, "TLS handshake failed: \(error)", context: context)
            return
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let promise {
            self.promise = nil
            promise.fail(BackendTLSError(policy: tls.policy, serverName: tls.serverName, problem: "the backend closed the connection during the TLS handshake"))
        }
        context.fireChannelInactive()
    }

    private func fail(_ promise: EventLoopPromise<any Channel>, _ problem: String, context: ChannelHandlerContext) {
        promise.fail(BackendTLSError(policy: tls.policy, serverName: tls.serverName, problem: problem))
        context.close(promise: nil)
    }
}
