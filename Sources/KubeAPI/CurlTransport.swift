import CCurlShim
import Foundation
import Runtime
import Synchronization


/// libcurl behind Swift concurrency. One dedicated thread runs a curl multi handle; requests are
/// handed over through a lock-protected queue and `curl_multi_wakeup`, and results come back through
/// continuations (buffered) or an `AsyncThrowingStream` (streaming). No curl call ever runs on the
/// cooperative pool. The multi handle keeps a connection cache, so requests to the same server reuse
/// connections (and multiplex over HTTP/2 when the server offers it via ALPN).
public final class CurlTransport: Sendable {
    /// A process-wide transport, started on first use.
    public static let shared = CurlTransport()

    struct Queues {
        var adds: [RequestContext] = []
        var cancels: [UInt64] = []
        /// Paused streaming transfers whose consumer caught up.
        var resumes: [UInt64] = []
        var nextID: UInt64 = 1
    }

    private let queues = QueueBox()
    /// The multi handle, touched by `curl_multi_wakeup` from any thread (documented thread-safe) and by the loop thread.
    private struct Multi: @unchecked Sendable { let raw: UnsafeMutableRawPointer }
    private let multiHandle: Multi
    private var multi: UnsafeMutableRawPointer { multiHandle.raw }
    public let userAgent: String

    public init(userAgent: String = "portway/\(portwayVersion)") {
        _ = CurlTransport.globalInit
        let handle = Multi(raw: curl_multi_init())
        multiHandle = handle
        self.userAgent = userAgent
        let thread = Thread { [queues] in CurlTransport.loop(multi: handle.raw, queues: queues) }
        thread.name = "portway-curl"
        thread.start()
    }

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_ALL)) }()

    /// Sends a request and buffers the whole response. Task cancellation aborts the transfer, also
    /// when it comes before the transfer has started (the request is then never sent).
    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        let id = queues.withLock { q -> UInt64 in defer { q.nextID += 1 }; return q.nextID }
        let cancelled = CancelFlag()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (cont: CheckedContinuation<HTTPResponse, any Error>) in
                let ctx = RequestContext(id: id, request: request, userAgent: userAgent, sink: .buffered(cont), cancelled: cancelled)
                enqueue(ctx)
            }
        } onCancel: {
            // The flag is read by the curl thread before it starts the transfer: a cancel that
            // overtakes the hand-over is not lost.
            cancelled.set()
            cancel(id)
        }
    }

    /// Starts a streaming request: yields the head, then each body chunk as it arrives, and finishes
    /// when the transfer ends. Terminating the stream (or cancelling the consuming task) removes the
    /// curl handle.
    ///
    /// Flow control: at most about `bufferLimit` bytes wait for the consumer; beyond that the
    /// transfer is paused (CURL_WRITEFUNC_PAUSE) until the consumer has taken half of them, so a
    /// slow consumer slows the socket (TCP flow control), not memory.
    public func stream(_ request: HTTPRequest, bufferLimit: Int = 1 << 20) -> HTTPPartStream {
        let id = queues.withLock { q -> UInt64 in defer { q.nextID += 1 }; return q.nextID }
        let (stream, continuation) = AsyncThrowingStream<HTTPStreamPart, any Error>.makeStream()
        let flow = FlowControl(limit: bufferLimit) { [weak self] in self?.resume(id) }
        let cancelled = CancelFlag()
        let ctx = RequestContext(id: id, request: request, userAgent: userAgent, sink: .streaming(continuation), cancelled: cancelled, flow: flow)
        continuation.onTermination = { [weak self] _ in
            cancelled.set()
            self?.cancel(id)
        }
        enqueue(ctx)
        return HTTPPartStream(base: stream, flow: flow)
    }

    private func enqueue(_ ctx: RequestContext) {
        queues.withLock { $0.adds.append(ctx) }
        curl_multi_wakeup(multi)
    }

    private func cancel(_ id: UInt64) {
        queues.withLock { $0.cancels.append(id) }
        curl_multi_wakeup(multi)
    }

    private func resume(_ id: UInt64) {
        queues.withLock { $0.resumes.append(id) }
        curl_multi_wakeup(multi)
    }

    /// The loop of the curl thread. Runs for the life of the process (the shared transport is never torn down).
    private static func loop(multi: UnsafeMutableRawPointer, queues: QueueBox) {
        var active: [UInt64: RequestContext] = [:]
        var byHandle: [UnsafeMutableRawPointer: RequestContext] = [:]
        while true {
            let (adds, cancels, resumes) = queues.withLock { q -> ([RequestContext], [UInt64], [UInt64]) in
                defer { q.adds.removeAll(); q.cancels.removeAll(); q.resumes.removeAll() }
                return (q.adds, q.cancels, q.resumes)
            }
            for ctx in adds {
                if ctx.cancelled.isSet {
                    // Cancelled before it started (its cancel may have been drained already): never sent.
                    ctx.finish(error: CancellationError())
                    ctx.cleanup()
                    continue
                }
                do {
                    try ctx.configure()
                    curl_multi_add_handle(multi, ctx.easy)
                    active[ctx.id] = ctx
                    byHandle[ctx.easy] = ctx
                } catch {
                    ctx.finish(error: error)
                    ctx.cleanup()
                }
            }
            for id in cancels {
                guard let ctx = active.removeValue(forKey: id) else { continue }
                byHandle[ctx.easy] = nil
                curl_multi_remove_handle(multi, ctx.easy)
                ctx.finish(error: CancellationError())
                ctx.cleanup()
            }
            for id in resumes {
                guard let ctx = active[id] else { continue }
                // CURLPAUSE_CONT (0): the paused data is delivered again, from inside this call.
                _ = curl_easy_pause(ctx.easy, 0)
            }
            var running: Int32 = 0
            curl_multi_perform(multi, &running)
            var remaining: Int32 = 0
            while let msg = curl_multi_info_read(multi, &remaining) {
                guard msg.pointee.msg == CURLMSG_DONE, let easy = msg.pointee.easy_handle,
                    let ctx = byHandle.removeValue(forKey: easy)
                else { continue }
                let result = msg.pointee.data.result
                active[ctx.id] = nil
                curl_multi_remove_handle(multi, easy)
                ctx.complete(result: result)
                ctx.cleanup()
            }
            curl_multi_poll(multi, nil, 0, 1000, nil)
        }
    }
}

/// One transfer: its easy handle, buffers and where its results go. Only the curl thread touches
/// it after hand-over.
final class RequestContext: @unchecked Sendable {
    enum Sink {
        case buffered(CheckedContinuation<HTTPResponse, any Error>)
        case streaming(AsyncThrowingStream<HTTPStreamPart, any Error>.Continuation)
    }

    let id: UInt64
    let request: HTTPRequest
    let userAgent: String
    let easy: UnsafeMutableRawPointer
    var sink: Sink?
    var headerList: UnsafeMutablePointer<curl_slist>?
    var status = 0
    var headers: [String: String] = [:]
    var headSent = false
    var body = Data()
    /// curl writes its error detail here for the life of the handle: owned memory, freed in `cleanup`.
    let errorBuffer: UnsafeMutablePointer<CChar>
    let cancelled: CancelFlag
    /// Streaming only: how many bytes wait for the consumer.
    let flow: FlowControl?

    init(id: UInt64, request: HTTPRequest, userAgent: String, sink: Sink, cancelled: CancelFlag = CancelFlag(), flow: FlowControl? = nil) {
        self.id = id
        self.request = request
        self.userAgent = userAgent
        self.easy = curl_easy_init()
        self.sink = sink
        self.cancelled = cancelled
        self.flow = flow
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    struct SetupError: Error, CustomStringConvertible {
        var description: String
    }

    func configure() throws {
        func check(_ rc: CURLcode, _ what: String) throws {
            if rc != CURLE_OK { throw SetupError(description: "curl option \(what): \(String(cString: curl_easy_strerror(rc)))") }
        }
        try check(portway_curl_setopt_string(easy, CURLOPT_URL, request.url), "url")
        try check(portway_curl_setopt_long(easy, CURLOPT_NOSIGNAL, 1), "nosignal")
        try check(portway_curl_setopt_long(easy, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS)), "http version")
        _ = portway_curl_setopt_long(easy, CURLOPT_PIPEWAIT, 1)
        _ = portway_curl_setopt_long(easy, CURLOPT_TCP_KEEPALIVE, 1)
        try check(portway_curl_setopt_string(easy, CURLOPT_USERAGENT, userAgent), "user agent")
        try check(portway_curl_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(request.connectTimeout)), "connect timeout")
        if let timeout = request.timeout {
            try check(portway_curl_setopt_long(easy, CURLOPT_TIMEOUT_MS, Self.milliseconds(timeout)), "timeout")
        }
        try check(portway_curl_setopt_pointer(easy, CURLOPT_ERRORBUFFER, errorBuffer), "error buffer")

        // TLS: data forms as blobs (copied by curl), file forms as paths.
        let tls = request.tls
        if var ca = tls.caData {
            try ca.withUnsafeMutableBytes { try check(portway_curl_setopt_blob(easy, CURLOPT_CAINFO_BLOB, $0.baseAddress, $0.count), "CA data") }
        } else if let caFile = tls.caFile {
            try check(portway_curl_setopt_string(easy, CURLOPT_CAINFO, caFile), "CA file")
        }
        if tls.insecureSkipVerify {
            _ = portway_curl_setopt_long(easy, CURLOPT_SSL_VERIFYPEER, 0)
            _ = portway_curl_setopt_long(easy, CURLOPT_SSL_VERIFYHOST, 0)
        }
        if var cert = tls.clientCertData {
            try cert.withUnsafeMutableBytes { try check(portway_curl_setopt_blob(easy, CURLOPT_SSLCERT_BLOB, $0.baseAddress, $0.count), "client certificate data") }
            _ = portway_curl_setopt_string(easy, CURLOPT_SSLCERTTYPE, "PEM")
        } else if let certFile = tls.clientCertFile {
            try check(portway_curl_setopt_string(easy, CURLOPT_SSLCERT, certFile), "client certificate file")
        }
        if var key = tls.clientKeyData {
            try key.withUnsafeMutableBytes { try check(portway_curl_setopt_blob(easy, CURLOPT_SSLKEY_BLOB, $0.baseAddress, $0.count), "client key data") }
            _ = portway_curl_setopt_string(easy, CURLOPT_SSLKEYTYPE, "PEM")
        } else if let keyFile = tls.clientKeyFile {
            try check(portway_curl_setopt_string(easy, CURLOPT_SSLKEY, keyFile), "client key file")
        }

        // Method and body.
        switch request.method {
        case "GET": break
        case "POST": _ = portway_curl_setopt_long(easy, CURLOPT_POST, 1)
        default: try check(portway_curl_setopt_string(easy, CURLOPT_CUSTOMREQUEST, request.method), "method")
        }
        if let body = request.body {
            try check(portway_curl_setopt_long(easy, CURLOPT_POSTFIELDSIZE, body.count), "body size")
            try body.withUnsafeBytes { buf in
                // COPYPOSTFIELDS copies, so the Data need not outlive this call.
                let base = buf.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!
                try check(portway_curl_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: base)), "body")
            }
        }
        for line in request.headers { headerList = curl_slist_append(headerList, line) }
        // Kubernetes long requests: no "Expect: 100-continue" round trip.
        headerList = curl_slist_append(headerList, "Expect:")
        try check(portway_curl_setopt_slist(easy, CURLOPT_HTTPHEADER, headerList), "headers")

        let me = Unmanaged.passUnretained(self).toOpaque()
        try check(portway_curl_set_write_callback(easy, { data, size, count, user in
            let ctx = Unmanaged<RequestContext>.fromOpaque(user!).takeUnretainedValue()
            let n = size * count
            guard let data, n > 0 else { return n }
            // A slow consumer: leave the data with curl and pause the transfer (it is delivered
            // again when the consumer resumes it).
            if let flow = ctx.flow, !flow.admit(n) { return Int(CURL_WRITEFUNC_PAUSE) }
            ctx.received(Data(bytes: data, count: n))
            return n
        }, me), "write callback")
        try check(portway_curl_set_header_callback(easy, { data, size, count, user in
            let ctx = Unmanaged<RequestContext>.fromOpaque(user!).takeUnretainedValue()
            let n = size * count
            if let data { ctx.headerLine(Data(bytes: data, count: n)) }
            return n
        }, me), "header callback")
    }

    static func milliseconds(_ d: Duration) -> Int {
        let c = d.components
        return Int(c.seconds) * 1000 + Int(c.attoseconds / 1_000_000_000_000_000)
    }

    /// Header lines arrive one per call; a status line restarts the set (redirects, 100 Continue),
    /// the blank line ends it.
    func headerLine(_ data: Data) {
        guard let line = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines) else { return }
        if line.hasPrefix("HTTP/") {
            headers = [:]
            return
        }
        if line.isEmpty {
            var code = 0
            _ = portway_curl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &code)
            if code >= 200 {
                status = code
                sendHead()
            }
            return
        }
        if let colon = line.firstIndex(of: ":") {
            let name = line[..<colon].lowercased()
            headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
    }

    private func sendHead() {
        guard !headSent else { return }
        headSent = true
        if case .streaming(let c) = sink { c.yield(.head(status: status, headers: headers)) }
    }

    func received(_ data: Data) {
        if !headSent {
            var code = 0
            _ = portway_curl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &code)
            status = code
            sendHead()
        }
        switch sink {
        case .buffered: body.append(data)
        case .streaming(let c): c.yield(.data(data))
        case nil: break
        }
    }

    func complete(result: CURLcode) {
        if result == CURLE_OK {
            if status == 0 { _ = portway_curl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status) }
            switch sink {
            case .buffered(let c): c.resume(returning: HTTPResponse(status: status, headers: headers, body: body))
            case .streaming(let c):
                sendHeadIfNeeded(c)
                c.finish()
            case nil: break
            }
            sink = nil
        } else {
            let detail = String(cString: errorBuffer)
            let message = detail.isEmpty ? String(cString: curl_easy_strerror(result)) : detail
            finish(error: TransportError(code: Int(result.rawValue), message: message, isTimeout: result == CURLE_OPERATION_TIMEDOUT, afterResponseHead: headSent))
        }
    }

    private func sendHeadIfNeeded(_ c: AsyncThrowingStream<HTTPStreamPart, any Error>.Continuation) {
        if !headSent {
            headSent = true
            c.yield(.head(status: status, headers: headers))
        }
    }

    func finish(error: any Error) {
        switch sink {
        case .buffered(let c): c.resume(throwing: error)
        case .streaming(let c): c.finish(throwing: error)
        case nil: break
        }
        sink = nil
    }

    func cleanup() {
        curl_easy_cleanup(easy)
        curl_slist_free_all(headerList)
        headerList = nil
    }

    deinit { errorBuffer.deallocate() }
}

/// Set once a request's task is cancelled or its stream dropped.
final class CancelFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { flag.store(true, ordering: .releasing) }
    var isSet: Bool { flag.load(ordering: .acquiring) }
}

/// The curl thread's hand-over queues.
final class QueueBox: Sendable {
    private let queues = Mutex(CurlTransport.Queues())
    func withLock<T>(_ body: (inout CurlTransport.Queues) -> T) -> T { queues.withLock { body(&$0) } }
}

/// Back-pressure for one streamed response: bytes handed to the consumer but not yet taken.
public final class FlowControl: Sendable {
    private struct State {
        var outstanding = 0
        var paused = false
        var pauses = 0
        var maxOutstanding = 0
    }
    private let state = Mutex(State())
    /// Above this many waiting bytes the transfer pauses.
    public let limit: Int
    private let resume: @Sendable () -> Void

    init(limit: Int, resume: @escaping @Sendable () -> Void) {
        self.limit = max(limit, 1)
        self.resume = resume
    }

    /// On the curl thread, before `count` bytes are yielded: false means pause (the bytes stay with curl).
    func admit(_ count: Int) -> Bool {
        state.withLock { s in
            if s.outstanding > 0 && s.outstanding + count > limit {
                if !s.paused { s.pauses += 1 }
                s.paused = true
                return false
            }
            s.outstanding += count
            s.maxOutstanding = max(s.maxOutstanding, s.outstanding)
            return true
        }
    }

    /// The consumer took `count` bytes; below half the limit a paused transfer resumes.
    func consumed(_ count: Int) {
        let wake = state.withLock { s -> Bool in
            s.outstanding -= count
            guard s.paused && s.outstanding <= limit / 2 else { return false }
            s.paused = false
            return true
        }
        if wake { resume() }
    }

    /// How often the transfer paused, and the most bytes that ever waited (tests).
    public var statistics: (pauses: Int, maxOutstanding: Int) { state.withLock { ($0.pauses, $0.maxOutstanding) } }
}

/// The parts of a streamed response (see `CurlTransport.stream`); taking a part tells the flow control.
public struct HTTPPartStream: AsyncSequence, Sendable {
    public typealias Element = HTTPStreamPart
    let base: AsyncThrowingStream<HTTPStreamPart, any Error>
    public let flow: FlowControl

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncThrowingStream<HTTPStreamPart, any Error>.AsyncIterator
        let flow: FlowControl

        public mutating func next() async throws -> HTTPStreamPart? {
            let part = try await base.next()
            if case .data(let data)? = part { flow.consumed(data.count) }
            return part
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator(), flow: flow) }
}
