import Foundation

/// TLS settings for one API server: trust (CA or insecure) and an optional client certificate.
public struct TLSSettings: Sendable, Hashable {
    /// PEM CA bundle (the `-data` form, already base64-decoded), or a file path.
    public var caData: Data?
    public var caFile: String?
    public var insecureSkipVerify: Bool
    /// PEM client certificate and key, as data or as file paths.
    public var clientCertData: Data?
    public var clientCertFile: String?
    public var clientKeyData: Data?
    public var clientKeyFile: String?

    public init(
        caData: Data? = nil, caFile: String? = nil, insecureSkipVerify: Bool = false,
        clientCertData: Data? = nil, clientCertFile: String? = nil, clientKeyData: Data? = nil, clientKeyFile: String? = nil
    ) {
        self.caData = caData
        self.caFile = caFile
        self.insecureSkipVerify = insecureSkipVerify
        self.clientCertData = clientCertData
        self.clientCertFile = clientCertFile
        self.clientKeyData = clientKeyData
        self.clientKeyFile = clientKeyFile
    }
}

/// One HTTP request as the transport sends it.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    /// Header lines as "Name: value".
    public var headers: [String]
    public var body: Data?
    /// Whole-request timeout; nil for none (watches set their own).
    public var timeout: Duration?
    public var connectTimeout: Duration
    public var tls: TLSSettings

    public init(method: String = "GET", url: String, headers: [String] = [], body: Data? = nil, timeout: Duration? = .seconds(30), connectTimeout: Duration = .seconds(10), tls: TLSSettings = TLSSettings()) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.tls = tls
    }
}

/// A complete (buffered) HTTP response.
public struct HTTPResponse: Sendable {
    public var status: Int
    /// Header names lower-cased; the last value wins.
    public var headers: [String: String]
    public var body: Data
}

/// Parts of a streamed response: the head once, then body chunks as they arrive.
public enum HTTPStreamPart: Sendable {
    case head(status: Int, headers: [String: String])
    case data(Data)
}

/// A transport failure (no HTTP status): DNS, connect, TLS, timeout.
public struct TransportError: Error, CustomStringConvertible, Sendable {
    /// The libcurl result code.
    public var code: Int
    public var message: String
    /// True when the request hit its timeout.
    public var isTimeout: Bool
    /// True when the response head had arrived before the failure (a stream that broke or went silent).
    public var afterResponseHead: Bool = false
    public var description: String { "transport error: \(message) (curl \(code))" }
}
