import NIOCore

/// Limits and timeouts of the proxy. The defaults suit a node proxy in front of ordinary web backends.
public struct ProxyOptions: Sendable {
    /// Upstream TCP connect timeout; a connect that takes longer counts as a failed attempt (504 when final).
    public var connectTimeout: TimeAmount = .seconds(5)
    /// How long a client may take to send a complete request head once its first byte arrived (slowloris): 408.
    public var requestHeadTimeout: TimeAmount = .seconds(10)
    /// How long an idle keep-alive client connection is kept open waiting for its next request.
    public var keepAliveTimeout: TimeAmount = .seconds(60)
    /// No byte in either direction for this long during an exchange: 408 (client stalled), 504 (backend
    /// stalled) or, once the response has started, a closed connection.
    public var idleTimeout: TimeAmount = .seconds(60)
    /// From request head to the end of the response, unless the route sets its own; nil means no limit.
    public var requestTimeout: TimeAmount? = nil
    /// An Upgrade/WebSocket tunnel with no byte in either direction for this long is closed.
    public var tunnelIdleTimeout: TimeAmount = .hours(1)
    /// How long an unused pooled upstream connection is kept.
    public var upstreamIdleTimeout: TimeAmount = .seconds(30)
    /// Pooled idle connections per backend endpoint and event loop.
    public var maxIdleConnectionsPerBackend: Int = 32
    /// Request line plus all header names and values: beyond it 431 (the request line counts, so an
    /// overlong URL is refused the same way).
    public var maxHeaderBytes: Int = 64 * 1024
    /// Number of header fields in a request: beyond it 431.
    public var maxHeaderCount: Int = 100
    /// Bytes of a request body the proxy drops while answering locally (404, redirect) before it closes
    /// the connection instead of reading on.
    public var maxDiscardedBodyBytes: Int = 1 << 20
    /// Request body bytes copied to a RequestMirror: a request with a longer body is not mirrored
    /// (or its copy is cut and dropped once the body grows past it), so a mirror never holds more.
    public var maxMirroredBodyBytes: Int = 64 * 1024
    /// RequestMirror copies in flight at once (all connections): beyond it a copy is dropped.
    public var maxMirrorsInFlight: Int = 1024
    /// How long a mirror copy may take, from its connect to the end of the mirror's response; then
    /// it is dropped (its connection closed).
    public var mirrorTimeout: TimeAmount = .seconds(10)
    /// Request body bytes kept to replay a request on a retry (HTTPRoute `retry`): a request whose
    /// body grows past it is not retried once any of it was sent.
    public var maxRetryBodyBytes: Int = 64 * 1024
    /// Keep-alive requests answered on one client connection before the proxy closes it.
    public var maxRequestsPerConnection: Int = 10_000
    /// How request paths are normalized before routing and forwarding (docs/L7PROXY.md).
    public var pathNormalization: PathNormalization = .standard
    /// Client connections open at once (all ports); nil derives it from the process's descriptor
    /// limit (`ConnectionLimits.derived`). At the limit the proxy stops accepting and reaps idle ones.
    public var maxConnections: Int? = nil
    /// Client connections open at once from one client address; nil: a quarter of `maxConnections`,
    /// at most 1,024. Beyond it new connections from that address are closed at once.
    public var maxConnectionsPerClient: Int? = nil
    /// File descriptors the proxy leaves to the rest of the agent (maps, the API, files) when it
    /// derives `maxConnections`.
    public var fileDescriptorReserve: Int = 256

    /// The connection limits in force for a process allowed `fileDescriptorLimit` descriptors.
    public func connectionLimits(fileDescriptorLimit: Int = ConnectionLimits.processFileDescriptorLimit) -> ConnectionLimits {
        ConnectionLimits.derived(
            fileDescriptorLimit: fileDescriptorLimit, reserve: fileDescriptorReserve,
            maxConnections: maxConnections, maxConnectionsPerClient: maxConnectionsPerClient)
    }

    public init() {}
}
