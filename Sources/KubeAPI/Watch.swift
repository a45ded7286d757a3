import Foundation
import KubeModels

/// Parameters of one watch request.
public struct WatchOptions: Sendable {
    public var list: ListOptions
    /// Start after this version (from a list or the last event); nil/"" = from now with synthetic ADDEDs.
    public var resourceVersion: String?
    public var allowBookmarks: Bool
    /// The server ends the stream after this many seconds.
    public var timeoutSeconds: Int
    /// The client gives up on a stream still open this long after `timeoutSeconds` (a stalled stream).
    public var stallMargin: Duration

    public init(list: ListOptions = ListOptions(), resourceVersion: String? = nil, allowBookmarks: Bool = true, timeoutSeconds: Int = Int.random(in: 300...600), stallMargin: Duration = .seconds(30)) {
        self.list = list
        self.resourceVersion = resourceVersion
        self.allowBookmarks = allowBookmarks
        self.timeoutSeconds = timeoutSeconds
        self.stallMargin = stallMargin
    }
}

extension KubeClient {
    /// Watches a resource: a sequence of events decoded line by line, read from the connection only
    /// as fast as the consumer takes them (a slow consumer pauses the transfer; nothing piles up in
    /// memory). It ends when the server ends the watch (its timeout); it throws `KubeAPIError` for a
    /// non-200 answer (e.g. HTTP 410) or a broken connection. ERROR events are delivered as
    /// `.error(Status)`. Cancelling the consuming task (or dropping the iterator) closes the connection.
    /// `onConnected` is called once the server has answered 200: the watch is really established
    /// (before that it may still fail to connect).
    public func watch<R: KubeResource>(
        _ type: R.Type, options: WatchOptions, onConnected: (@Sendable () -> Void)? = nil
    ) -> WatchEventStream<R> {
        let what = RequestDescription(verb: "watch", resource: R.resource, namespace: options.list.namespace)
        let q = Self.query([
            ("watch", "true"), ("allowWatchBookmarks", options.allowBookmarks ? "true" : nil),
            ("labelSelector", options.list.labelSelector), ("fieldSelector", options.list.fieldSelector),
            ("resourceVersion", options.resourceVersion.flatMap { $0.isEmpty ? nil : $0 }),
            ("timeoutSeconds", String(options.timeoutSeconds)),
        ])
        let path = Self.path(R.resource, namespace: options.list.namespace) + q
        let timeout = Duration.seconds(options.timeoutSeconds) + options.stallMargin
        return WatchEventStream(what: what, credentials: config.credentials, onConnected: onConnected) { [self] in
            transport.stream(try await request(method: "GET", path: path, timeout: timeout))
        }
    }
}

/// The events of one watch request (see `KubeClient.watch`).
public struct WatchEventStream<R: KubeResource>: AsyncSequence, Sendable {
    public typealias Element = WatchEvent<R>
    let what: RequestDescription
    let credentials: Credentials
    let onConnected: (@Sendable () -> Void)?
    let start: @Sendable () async throws -> HTTPPartStream

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(stream: self) }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let stream: WatchEventStream
        var parts: HTTPPartStream.AsyncIterator?
        var status = 0
        var errorBody = Data()
        var splitter = LineSplitter()
        var ready: [[UInt8]] = []
        var nextReady = 0
        var finished = false
        let decoder = JSONDecoder()

        init(stream: WatchEventStream) { self.stream = stream }

        public mutating func next() async throws -> WatchEvent<R>? {
            while true {
                if nextReady < ready.count {
                    defer { nextReady += 1 }
                    return try decode(ready[nextReady])
                }
                ready = []
                nextReady = 0
                if finished { return nil }
                do {
                    if parts == nil { parts = try await stream.start().makeAsyncIterator() }
                    guard let part = try await parts!.next() else {
                        finished = true
                        parts = nil
                        if status != 200 {
                            if status == 401 { stream.credentials.invalidate() }
                            throw KubeAPIError.fromResponse(code: status, body: errorBody, request: stream.what)
                        }
                        if let rest = splitter.finish() { ready = [rest] }
                        continue
                    }
                    switch part {
                    case .head(let code, _):
                        status = code
                        if code == 200 { stream.onConnected?() }
                    case .data(let data):
                        if status != 200 {
                            errorBody.append(data)
                        } else {
                            ready = try splitter.append(data)
                        }
                    }
                } catch let error as TransportError {
                    finished = true
                    APIErrorMetrics.count(code: "transport")
                    throw KubeAPIError(kind: .transport(error), request: stream.what)
                }
            }
        }

        private func decode(_ line: [UInt8]) throws -> WatchEvent<R> {
            do {
                return try decodeWatchEvent(R.self, line: line, decoder: decoder)
            } catch {
                throw KubeAPIError(kind: .decoding("watch event: \(error)"), request: stream.what)
            }
        }
    }
}

/// Decodes one watch event line, in one pass: `type` picks how `object` is decoded.
/// The line is checked against `JSONLimits` first: a deep or huge event is an error, not a crash.
public func decodeWatchEvent<R: KubeResource>(_ type: R.Type, line: [UInt8], decoder: JSONDecoder = JSONDecoder(), limits: JSONLimits = .default) throws -> WatchEvent<R> {
    try limits.check(line)
    return try decoder.decode(WatchEventLine<R>.self, from: Data(line)).event
}

/// An event line: JSONDecoder parses the line once and the keyed container reads `type` before
/// `object` whatever their order (decoding a head first and the body second parsed it twice).
struct WatchEventLine<R: KubeResource>: Decodable {
    let event: WatchEvent<R>

    enum CodingKeys: String, CodingKey {
        case type, object
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(WatchEventType.self, forKey: .type) {
        case .added: event = .added(try container.decode(R.self, forKey: .object))
        case .modified: event = .modified(try container.decode(R.self, forKey: .object))
        case .deleted: event = .deleted(try container.decode(R.self, forKey: .object))
        case .bookmark: event = .bookmark(resourceVersion: try container.decode(BookmarkObject.self, forKey: .object).metadata.resourceVersion ?? "")
        case .error: event = .error(try container.decode(Status.self, forKey: .object))
        }
    }
}
