import Foundation
import KubeModels
import Yams

/// A kubeconfig file (or several merged, as kubectl merges `$KUBECONFIG`).
public struct KubeConfig: Sendable {
    public struct Cluster: Sendable {
        public var server: String
        public var certificateAuthority: String?
        public var certificateAuthorityData: Data?
        public var insecureSkipTLSVerify: Bool
    }

    public struct User: Sendable {
        public var token: String?
        public var tokenFile: String?
        public var clientCertificate: String?
        public var clientCertificateData: Data?
        public var clientKey: String?
        public var clientKeyData: Data?
        public var exec: ExecPlugin?
    }

    public struct Context: Sendable {
        public var cluster: String
        public var user: String?
        public var namespace: String?
    }

    public var clusters: [String: Cluster] = [:]
    public var users: [String: User] = [:]
    public var contexts: [String: Context] = [:]
    public var currentContext: String?

    public init() {}

    /// Parses one kubeconfig. Relative paths (certificate files, token files, exec commands)
    /// resolve against `directory`, the kubeconfig file's own directory.
    public init(yaml: String, directory: String, source: String = "kubeconfig") throws {
        let file: KubeConfigFile
        if yaml.allSatisfy(\.isWhitespace) { throw ConfigError("\(source): not a valid kubeconfig: the file is empty") }
        do {
            // Bounded before parsing (the parser recurses per level), like the YAML directory.
            try YAMLPreScan(limits: YAMLLimits(maxFileBytes: 16 << 20)).check(yaml)
            file = try YAMLDecoder().decode(KubeConfigFile.self, from: yaml)
        } catch {
            throw ConfigError("\(source): not a valid kubeconfig: \(Self.describe(error))")
        }
        func resolve(_ path: String?) -> String? {
            guard let path, !path.isEmpty else { return nil }
            if path.hasPrefix("/") { return path }
            return (directory as NSString).appendingPathComponent(path)
        }
        func base64(_ text: String?, _ field: String, _ name: String) throws -> Data? {
            guard let text, !text.isEmpty else { return nil }
            guard let data = Data(base64Encoded: text.filter { !$0.isWhitespace }) else {
                throw ConfigError("\(source): \(field) of \(name) is not valid base64")
            }
            return data
        }
        for entry in file.clusters ?? [] where clusters[entry.name] == nil {
            let c = entry.cluster
            clusters[entry.name] = Cluster(
                server: c.server ?? "", certificateAuthority: resolve(c.certificateAuthority),
                certificateAuthorityData: try base64(c.certificateAuthorityData, "certificate-authority-data", "cluster \(entry.name)"),
                insecureSkipTLSVerify: c.insecureSkipTLSVerify ?? false)
        }
        for entry in file.users ?? [] where users[entry.name] == nil {
            let u = entry.user ?? KubeConfigFile.UserFields()
            var exec: ExecPlugin?
            if let e = u.exec {
                guard let command = e.command, !command.isEmpty else { throw ConfigError("\(source): exec of user \(entry.name) has no command") }
                var env: [String: String] = [:]
                for pair in e.env ?? [] { env[pair.name] = pair.value }
                exec = ExecPlugin(command: command, args: e.args ?? [], env: env, apiVersion: e.apiVersion ?? "client.authentication.k8s.io/v1", workingDirectory: directory)
            }
            users[entry.name] = User(
                token: u.token, tokenFile: resolve(u.tokenFile),
                clientCertificate: resolve(u.clientCertificate),
                clientCertificateData: try base64(u.clientCertificateData, "client-certificate-data", "user \(entry.name)"),
                clientKey: resolve(u.clientKey),
                clientKeyData: try base64(u.clientKeyData, "client-key-data", "user \(entry.name)"),
                exec: exec)
        }
        for entry in file.contexts ?? [] where contexts[entry.name] == nil {
            guard let cluster = entry.context.cluster else { throw ConfigError("\(source): context \(entry.name) names no cluster") }
            contexts[entry.name] = Context(cluster: cluster, user: entry.context.user, namespace: entry.context.namespace)
        }
        if let current = file.currentContext, !current.isEmpty { currentContext = current }
    }

    /// What is wrong with a kubeconfig, and where, without echoing its content (which may be
    /// binary garbage, or hold credentials).
    static func describe(_ error: any Error) -> String {
        if let limit = error as? YAMLLimitExceeded { return "\(limit)" }
        switch error as? YamlError {
        case .scanner(_, let problem, let mark, _)?, .parser(_, let problem, let mark, _)?, .composer(_, let problem, let mark, _)?:
            return "YAML syntax error at line \(mark.line), column \(mark.column): \(problem)"
        case .reader(let problem, let offset, _, _)?:
            return "not readable as text (\(problem)" + (offset.map { " at byte \($0)" } ?? "") + ")"
        case .some:
            return "not YAML"
        case nil:
            break
        }
        guard let decoding = error as? DecodingError else { return "cannot be read" }
        func path(_ keys: [any CodingKey]) -> String {
            let text = keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return text.isEmpty ? "the top level" : String(text.drop { $0 == "." })
        }
        switch decoding {
        case .typeMismatch(let type, let context):
            if context.codingPath.isEmpty { return "the file is not a YAML mapping of clusters, users and contexts" }
            return "\(path(context.codingPath)): expected \(kind(type))"
        case .valueNotFound(let type, let context):
            if context.codingPath.isEmpty { return "the file is empty or not a YAML mapping" }
            return "\(path(context.codingPath)): expected \(kind(type)), found null"
        case .keyNotFound(let key, let context):
            return "\(path(context.codingPath + [key])): required field is missing"
        case .dataCorrupted(let context):
            // Yams wraps its parser errors.
            if let underlying = context.underlyingError { return describe(underlying) }
            if context.codingPath.isEmpty { return "the file is empty or not a YAML mapping" }
            return "\(path(context.codingPath)): not a valid value"
        @unknown default:
            return "cannot be decoded"
        }
    }

    private static func kind(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        case is Int.Type: "a number"
        default:
            // Yams names structural mismatches by its node types.
            switch String(describing: type) {
            case let name where name.contains("Sequence") || name.contains("Array") || name.hasPrefix("["): "a list"
            case let name where name.contains("Scalar"): "a single value"
            default: "a mapping"
            }
        }
    }

    /// Loads and merges files the way kubectl merges `$KUBECONFIG`: the first file to define a
    /// cluster, user or context name wins, and current-context comes from the first file that sets it.
    /// Missing files in the list are skipped (as kubectl does); if none exists that is an error.
    public static func load(paths: [String]) throws -> KubeConfig {
        var merged = KubeConfig()
        var loaded = 0
        for path in paths where !path.isEmpty {
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            loaded += 1
            let one = try KubeConfig(yaml: String(decoding: data, as: UTF8.self), directory: (path as NSString).deletingLastPathComponent, source: path)
            merged.merge(one)
        }
        if loaded == 0 { throw ConfigError("no kubeconfig found at \(paths.joined(separator: ":"))") }
        return merged
    }

    /// Adds `other`'s entries where this config has none (first wins).
    public mutating func merge(_ other: KubeConfig) {
        clusters.merge(other.clusters) { mine, _ in mine }
        users.merge(other.users) { mine, _ in mine }
        contexts.merge(other.contexts) { mine, _ in mine }
        if currentContext == nil { currentContext = other.currentContext }
    }

    /// The kubeconfig paths to use: an explicit file, else `$KUBECONFIG` (colon list), else ~/.kube/config.
    public static func defaultPaths(explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        if let explicit, !explicit.isEmpty { return [explicit] }
        if let list = environment["KUBECONFIG"], !list.isEmpty { return list.split(separator: ":").map(String.init) }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return [(home as NSString).appendingPathComponent(".kube/config")]
    }

    /// The cluster config for `context` (or the current context).
    public func clusterConfig(context name: String? = nil) throws -> ClusterConfig {
        guard let contextName = name ?? currentContext else { throw ConfigError("kubeconfig has no current-context; pass --context") }
        guard let context = contexts[contextName] else { throw ConfigError("context \"\(contextName)\" not found in kubeconfig") }
        guard let cluster = clusters[context.cluster] else { throw ConfigError("cluster \"\(context.cluster)\" of context \"\(contextName)\" not found") }
        guard !cluster.server.isEmpty else { throw ConfigError("cluster \"\(context.cluster)\" has no server") }
        try Self.checkServer(cluster.server, cluster: context.cluster)
        for (field, file) in [("certificate-authority", cluster.certificateAuthority)] {
            try Self.checkReadable(file, field: field, of: "cluster \"\(context.cluster)\"")
        }
        let user = context.user.flatMap { users[$0] } ?? User()
        if let u = context.user, users[u] == nil { throw ConfigError("user \"\(u)\" of context \"\(contextName)\" not found") }
        if let name = context.user {
            try Self.checkReadable(user.clientCertificate, field: "client-certificate", of: "user \"\(name)\"")
            try Self.checkReadable(user.clientKey, field: "client-key", of: "user \"\(name)\"")
        }
        let tls = TLSSettings(
            caData: cluster.certificateAuthorityData, caFile: cluster.certificateAuthority,
            insecureSkipVerify: cluster.insecureSkipTLSVerify,
            clientCertData: user.clientCertificateData, clientCertFile: user.clientCertificate,
            clientKeyData: user.clientKeyData, clientKey: user.clientKey)
        let source: CredentialSource
        if let token = user.token, !token.isEmpty { source = .token(token) }
        else if let file = user.tokenFile { source = .tokenFile(file) }
        else if let exec = user.exec { source = .exec(exec) }
        else { source = .none }
        return ClusterConfig(server: cluster.server, tls: tls, credentials: Credentials(source), namespace: context.namespace)
    }
}

extension KubeConfig {
    /// The server must be an `https://` URL with a host: the API server speaks TLS only, and a
    /// server without a scheme or with `http://` gets HTTP 400 answers that would be retried forever.
    static func checkServer(_ server: String, cluster: String) throws {
        let lower = server.lowercased()
        if lower.hasPrefix("http://") {
            throw ConfigError("cluster \"\(cluster)\": server \(server) uses http://; the Kubernetes API is served over TLS: use https://")
        }
        guard lower.hasPrefix("https://") else {
            let scheme = server.range(of: "://").map { String(server[..<$0.lowerBound]) }
            if let scheme { throw ConfigError("cluster \"\(cluster)\": server \(server) has scheme \(scheme):// ; use https://") }
            throw ConfigError("cluster \"\(cluster)\": server \(server) has no scheme; write it as https://\(server)")
        }
        guard let url = URLComponents(string: server), let host = url.host, !host.isEmpty else {
            throw ConfigError("cluster \"\(cluster)\": server \(server) is not a valid URL (https://HOST[:PORT])")
        }
    }

    /// A file a kubeconfig names must be readable now: a missing CA is a configuration error at
    /// start, not a TLS failure retried forever.
    static func checkReadable(_ path: String?, field: String, of owner: String) throws {
        guard let path else { return }
        guard FileManager.default.isReadableFile(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "permission denied" : "no such file"
            throw ConfigError("\(field) of \(owner): cannot read \(path): \(reason)")
        }
    }
}

extension TLSSettings {
    init(caData: Data?, caFile: String?, insecureSkipVerify: Bool, clientCertData: Data?, clientCertFile: String?, clientKeyData: Data?, clientKey: String?) {
        self.init(caData: caData, caFile: caFile, insecureSkipVerify: insecureSkipVerify, clientCertData: clientCertData, clientCertFile: clientCertFile, clientKeyData: clientKeyData, clientKeyFile: clientKey)
    }
}

/// The kubeconfig file format (only the fields Portway uses).
struct KubeConfigFile: Decodable {
    struct NamedCluster: Decodable {
        var name: String
        var cluster: ClusterFields
    }
    struct ClusterFields: Decodable {
        var server: String?
        var certificateAuthority: String?
        var certificateAuthorityData: String?
        var insecureSkipTLSVerify: Bool?
        enum CodingKeys: String, CodingKey {
            case server
            case certificateAuthority = "certificate-authority"
            case certificateAuthorityData = "certificate-authority-data"
            case insecureSkipTLSVerify = "insecure-skip-tls-verify"
        }
    }
    struct NamedUser: Decodable {
        var name: String
        var user: UserFields?
    }
    struct UserFields: Decodable {
        var token: String?
        var tokenFile: String?
        var clientCertificate: String?
        var clientCertificateData: String?
        var clientKey: String?
        var clientKeyData: String?
        var exec: ExecFields?
        enum CodingKeys: String, CodingKey {
            case token, tokenFile, exec
            case clientCertificate = "client-certificate"
            case clientCertificateData = "client-certificate-data"
            case clientKey = "client-key"
            case clientKeyData = "client-key-data"
        }
    }
    struct ExecFields: Decodable {
        struct EnvVar: Decodable {
            var name: String
            var value: String
        }
        var apiVersion: String?
        var command: String?
        var args: [String]?
        var env: [EnvVar]?
    }
    struct NamedContext: Decodable {
        var name: String
        var context: ContextFields
    }
    struct ContextFields: Decodable {
        var cluster: String?
        var user: String?
        var namespace: String?
    }
    var clusters: [NamedCluster]?
    var users: [NamedUser]?
    var contexts: [NamedContext]?
    var currentContext: String?
    enum CodingKeys: String, CodingKey {
        case clusters, users, contexts
        case currentContext = "current-context"
    }
}
