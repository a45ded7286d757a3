import Foundation
import Synchronization

/// Where the bearer token comes from.
public enum CredentialSource: Sendable {
    case none
    case token(String)
    /// A file re-read as it rotates (service account tokens, `tokenFile` in kubeconfig).
    case tokenFile(String)
    /// An exec credential plugin (client.authentication.k8s.io ExecCredential).
    case exec(ExecPlugin)
}

/// The bearer token for requests, with caching: token files are re-read after `fileRefresh`
/// (kubelet rotates projected tokens well before expiry), exec plugins are re-run when their
/// credential expires, and both are refreshed at once after a 401.
public final class Credentials: Sendable {
    public let source: CredentialSource
    private let fileRefresh: Duration
    private struct Cached {
        var token: String
        var expires: ContinuousClock.Instant?
    }
    private let cache = Mutex<Cached?>(nil)

    public init(_ source: CredentialSource, fileRefresh: Duration = .seconds(60)) {
        self.source = source
        self.fileRefresh = fileRefresh
    }

    /// The `Authorization` header value, or nil when anonymous.
    public func authorizationHeader() async throws -> String? {
        guard let token = try await token() else { return nil }
        return "Bearer \(token)"
    }

    /// The current token (cached while valid).
    public func token() async throws -> String? {
        let now = ContinuousClock.now
        switch source {
        case .none: return nil
        case .token(let token): return token
        case .tokenFile(let path):
            if let cached = cache.withLock({ $0 }), let expires = cached.expires, now < expires { return cached.token }
            let token = try await credentialExecutor.run {
                guard let data = FileManager.default.contents(atPath: path) else { throw ConfigError("cannot read token file \(path)") }
                return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            cache.withLock { $0 = Cached(token: token, expires: now + fileRefresh) }
            return token
        case .exec(let plugin):
            if let cached = cache.withLock({ $0 }), cached.expires.map({ now < $0 }) ?? true { return cached.token }
            let credential = try await plugin.run()
            // Refresh a little before the plugin's expiry so a request never carries a just-expired token.
            let expires = credential.expiresIn.map { now + max(.zero, $0 - .seconds(10)) }
            cache.withLock { $0 = Cached(token: credential.token, expires: expires) }
            return credential.token
        }
    }

    /// Forgets the cached token (after a 401) so the next request reads or runs it again.
    public func invalidate() {
        cache.withLock { $0 = nil }
    }
}
