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
    /// Watches a resource: a stream of events decoded line by line. The stream finishes when the
    /// server ends the watch (its timeout); it throws `KubeAPIError` for a non-200 answer (e.g. HTTP
    /// 410) or a broken connection. ERROR events are delivered as `.error(Status)`. Cancelling the
    /// consuming task closes the connection. `onConnected` is called once the server has answered
    /// 200: the watch is really established (before that it may still fail to connect).
    public func watch<R: KubeResource>(
        _ type: R.Type, options: WatchOptions, onConnected: (@Sendable () -> Void)? = nil
    ) -> AsyncThrowingStream<WatchEvent<R>, any Error> {
        let what = RequestDescription(verb: "watch", resource: R.resource, namespace: options.list.namespace)
        let q = Self.query([
            ("watch", "true"), ("allowWatchBookmarks", options.allowBookmarks ? "true" : nil),
            ("labelSelector", options.list.labelSelector), ("fieldSelector", options.list.fieldSelector),
            ("resourceVersion", options.resourceVersion.flatMap { $0.isEmpty ? nil : $0 }),
            ("timeoutSeconds", String(options.timeoutSeconds)),
        ])
        let path = Self.path(R.resource, namespace: options.list.namespace) + q
        let timeout = Duration.seconds(options.timeoutSeconds) + options.stallMargin
        let (stream, continuation) = AsyncThrowingStream<WatchEvent<R>, any Error>.makeStream()
        let task = Task {
            do {
                let req = try await request(method: "GET", path: path, timeout: timeout)
                try await Self.pump(transport.stream(req), into: continuation, what: what, credentials: config.credentials, onConnected: onConnected)
                continuation.finish()
            } catch let error as TransportError {
                continuation.finish(throwing: KubeAPIError(kind: .transport(error), request: what))
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    private static func pump<R: KubeResource>(
        _ parts: AsyncThrowingStream<HTTPStreamPart, any Error>, into out: AsyncThrowingStream<WatchEvent<R>, any Error>.Continuation,
        what: RequestDescription, credentials: Credentials, onConnected: (@Sendable () -> Void)?
    ) async throws {
        var status = 0
        var errorBody = Data()
        var splitter = LineSplitter()
        let decoder = JSONDecoder()
        func emit(_ line: [UInt8]) throws {
            do {
                out.yield(try decodeWatchEvent(R.self, line: line, decoder: decoder))
            } catch {
                throw KubeAPIError(kind: .decoding("watch event: \(error)"), request: what)
            }
        }
        for try await part in parts {
            switch part {
            case .head(let code, _):
                status = code
                if code == 200 { onConnected?() }
            case .data(let data):
                if status != 200 {
                    errorBody.append(data)
                    continue
                }
                for line in try splitter.append(data) { try emit(line) }
            }
        }
        if status != 200 {
            if status == 401 { credentials.invalidate() }
            throw KubeAPIError.fromResponse(code: status, body: errorBody, request: what)
        }
        if let rest = splitter.finish() { try emit(rest) }
    }
}

/// Decodes one watch event line.
/// The line is checked against `JSONLimits` first: a deep or huge event is an error, not a crash.
public func decodeWatchEvent<R: KubeResource>(_ type: R.Type, line: [UInt8], decoder: JSONDecoder = JSONDecoder(), limits: JSONLimits = .default) throws -> WatchEvent<R> {
    try limits.check(line)
    let data = Data(line)
    let head = try decoder.decode(WatchEventHead.self, from: data)
    switch head.type {
    case .added: return .added(try decoder.decode(WatchEventBody<R>.self, from: data).object)
    case .modified: return .modified(try decoder.decode(WatchEventBody<R>.self, from: data).object)
    case .deleted: return .deleted(try decoder.decode(WatchEventBody<R>.self, from: data).object)
    case .bookmark: return .bookmark(resourceVersion: try decoder.decode(WatchEventBody<BookmarkObject>.self, from: data).object.metadata.resourceVersion ?? "")
    case .error: return .error(try decoder.decode(WatchEventBody<Status>.self, from: data).object)
    }
}
