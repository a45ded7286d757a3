import Foundation

/// Everything needed to talk to one API server: where, how to trust it, and who we are.
public struct ClusterConfig: Sendable {
    /// Base URL, e.g. "https://10.96.0.1:443" (no trailing slash).
    public var server: String
    public var tls: TLSSettings
    public var credentials: Credentials
    /// The default namespace (the context's, or the service account's in a pod).
    public var namespace: String?

    public init(server: String, tls: TLSSettings = TLSSettings(), credentials: Credentials = Credentials(.none), namespace: String? = nil) {
        var server = server
        while server.hasSuffix("/") { server.removeLast() }
        self.server = server
        self.tls = tls
        self.credentials = credentials
        self.namespace = namespace
    }
}

/// A configuration problem, reported with the file and field it comes from.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
