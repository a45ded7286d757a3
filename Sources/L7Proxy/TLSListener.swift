import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import Synchronization

/// A certificate of an HTTPS listener: served to clients whose SNI matches `hostname`.
public struct ListenerCertificate: Sendable {
    /// The listener hostname: exact (`a.example.com`), wildcard (`*.example.com`, one label or more
    /// as the Gateway API says) or nil (any host).
    public var hostname: String?
    public var certificateChain: [NIOSSLCertificate]
    public var privateKey: NIOSSLPrivateKey

    public init(hostname: String?, certificateChain: [NIOSSLCertificate], privateKey: NIOSSLPrivateKey) {
        self.hostname = hostname
        self.certificateChain = certificateChain
        self.privateKey = privateKey
    }

    /// From PEM bytes, as a `kubernetes.io/tls` Secret holds them (`tls.crt`, `tls.key`).
    public init(hostname: String?, pemCertificateChain: [UInt8], pemPrivateKey: [UInt8]) throws {
        self.init(
            hostname: hostname,
            certificateChain: try NIOSSLCertificate.fromPEMBytes(pemCertificateChain),
            privateKey: try NIOSSLPrivateKey(bytes: pemPrivateKey, format: .pem))
    }
}

/// Client certificate validation on a proxy port (a Gateway's `spec.tls.frontend`): with
/// `required`, a handshake without a client certificate chaining to `trustRoots` fails (the CA
/// names are sent in the CertificateRequest); without, no client certificate is asked for (the
/// spec's AllowInsecureFallback: every client is served).
public struct ClientCertificateValidation: Sendable, Hashable {
    public var trustRoots: [NIOSSLCertificate]
    public var required: Bool

    public init(trustRoots: [NIOSSLCertificate], required: Bool = true) {
        self.trustRoots = trustRoots
        self.required = required
    }

    /// From a PEM bundle (a ConfigMap's `ca.crt`, several concatenated).
    public init(pemTrustRoots: [UInt8], required: Bool = true) throws {
        let roots = try NIOSSLCertificate.fromPEMBytes(pemTrustRoots)
        guard !roots.isEmpty else { throw TLSListener.Problem.noTrustRoot }
        self.init(trustRoots: roots, required: required)
    }

    /// Sets `configuration` to ask for and verify client certificates (chain only: a client
    /// certificate names no host to check).
    func apply(to configuration: inout TLSConfiguration) {
        guard required else { return }
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates(trustRoots)
        configuration.sendCANameList = true
    }
}

/// TLS termination for one proxy port: the HTTPS listeners sharing it, the certificate chosen by
/// SNI, and the port's client certificate validation (nil: none asked for).
public struct TLSListener: Sendable {
    public var certificates: [ListenerCertificate]
    public var clientValidation: ClientCertificateValidation?

    public enum Problem: Error, CustomStringConvertible {
        case noCertificate
        case noTrustRoot
        public var description: String {
            switch self {
            case .noCertificate: "an HTTPS listener needs at least one certificate"
            case .noTrustRoot: "client certificate validation needs at least one CA certificate"
            }
        }
    }

    public init(certificates: [ListenerCertificate], clientValidation: ClientCertificateValidation? = nil) {
        self.certificates = certificates
        self.clientValidation = clientValidation
    }

    /// The certificate for an SNI name: an exact hostname first, then the longest matching wildcard,
    /// then a listener without hostname; without SNI (or no match) that one, else the first.
    public static func choose(serverName: String?, among certificates: [ListenerCertificate]) -> ListenerCertificate? {
        let catchAll = certificates.first { $0.hostname == nil }
        guard var name = serverName?.lowercased(), !name.isEmpty else { return catchAll ?? certificates.first }
        if name.hasSuffix(".") { name.removeLast() }
        if let exact = certificates.first(where: { $0.hostname?.lowercased() == name }) { return exact }
        let wildcards = certificates.filter { cert in
            guard let pattern = cert.hostname?.lowercased(), pattern.hasPrefix("*.") else { return false }
            let suffix = pattern.dropFirst(1)  // ".example.com"
            return name.hasSuffix(suffix) && name.count > suffix.count
        }
        if let best = wildcards.max(by: { ($0.hostname?.count ?? 0) < ($1.hostname?.count ?? 0) }) { return best }
        return catchAll ?? certificates.first
    }

    /// The server context: the default certificate, swapped per handshake for the SNI's (ALPN http/1.1).
    public func makeContext() throws -> NIOSSLContext {
        try makeContext(store: TLSCertificateStore(certificates))
    }

    /// A server context that chooses among `store`'s certificates at each handshake, so replacing
    /// them (`TLSCertificateStore.replace`) changes what new handshakes get without reopening the
    /// port; handshakes done before keep their certificate.
    public func makeContext(store: TLSCertificateStore) throws -> NIOSSLContext {
        guard let fallback = Self.choose(serverName: nil, among: certificates) else { throw Problem.noCertificate }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: fallback.certificateChain.map { .certificate($0) }, privateKey: .privateKey(fallback.privateKey))
        configuration.applicationProtocols = ["http/1.1"]
        clientValidation?.apply(to: &configuration)
        configuration.sslContextCallback = { values, promise in
            guard let chosen = TLSListener.choose(serverName: values.serverHostname, among: store.certificates) else {
                promise.succeed(.noChanges)
                return
            }
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = chosen.certificateChain.map { .certificate($0) }
            override.privateKey = .privateKey(chosen.privateKey)
            promise.succeed(override)
        }
        return try NIOSSLContext(configuration: configuration)
    }
}

/// The certificates an open HTTPS proxy port serves, replaceable while the port stays open (a
/// Secret rotated): each handshake reads the current set once.
public final class TLSCertificateStore: Sendable {
    private let box: Mutex<[ListenerCertificate]>

    public init(_ certificates: [ListenerCertificate]) {
        box = Mutex(certificates)
    }

    /// The certificates new handshakes choose among.
    public var certificates: [ListenerCertificate] { box.withLock { $0 } }

    /// Installs `certificates` for every handshake from now on. An empty list is ignored (a port
    /// keeps serving its last certificates rather than failing every handshake).
    public func replace(_ certificates: [ListenerCertificate]) {
        guard !certificates.isEmpty else { return }
        box.withLock { $0 = certificates }
    }
}

/// The TLS of an open HTTPS proxy port: its certificates (`store`, replaced in place) and the
/// server context new connections get, remade when the client certificate validation changes
/// (a CA bundle rotated, the mode switched): connections accepted before keep theirs.
final class TLSPort: Sendable {
    let store: TLSCertificateStore
    private let current: Mutex<(context: NIOSSLContext, validation: ClientCertificateValidation?)>

    init(_ tls: TLSListener) throws {
        let store = TLSCertificateStore(tls.certificates)
        self.store = store
        current = Mutex((try tls.makeContext(store: store), tls.clientValidation))
    }

    /// The context for a connection accepted now.
    var context: NIOSSLContext { current.withLock { $0.context } }

    /// Installs `tls`'s certificates, and a new context when its validation differs. Throws (and
    /// changes nothing) when that context cannot be made.
    func update(_ tls: TLSListener) throws {
        if tls.clientValidation != current.withLock({ $0.validation }) {
            let context = try tls.makeContext(store: store)
            store.replace(tls.certificates)
            current.withLock { $0 = (context, tls.clientValidation) }
        } else {
            store.replace(tls.certificates)
        }
    }
}
