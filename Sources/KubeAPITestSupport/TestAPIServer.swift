import Foundation
import KubeAPI
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// An in-process kube-apiserver for tests: HTTPS (a generated CA), bearer tokens and client
/// certificates, an in-memory store with resourceVersions, and list/watch/get/create/patch/delete
/// that answer like the recordings in ../shared/k8s-api-traces. Tests steer it with fault
/// injection (status codes, 410s, stalls, split events, dropped streams, restarts).
public final class TestAPIServer: @unchecked Sendable {
    public let certificates: TestCertificates
    let state = APIState()
    // The process-wide NIO group: never shut down, so a server can be released on any thread.
    private let group = MultiThreadedEventLoopGroup.singleton
    private let lock = NIOLock()
    private var serverChannel: (any Channel)?
    private var children: [ObjectIdentifier: any Channel] = [:]
    private var watchChannels: [ObjectIdentifier: any Channel] = [:]
    private var tokens: [String: String]
    private var forbidden: Set<String> = []
    private var faults: [FaultRule] = []
    private var splits: [[Int]] = []
    private var log: [RecordedRequest] = []
    private var boundPort = 0

    /// - Parameter tokens: bearer token -> user name.
    public init(tokens: [String: String] = ["test-token": "admin"]) throws {
        self.certificates = try TestCertificates.generate()
        self.tokens = tokens
    }

    deinit {
        certificates.remove()
    }

    public var port: Int { lock.withLock { boundPort } }
    public var url: String { "https://127.0.0.1:\(port)" }
    /// The current (highest) resourceVersion.
    public var resourceVersion: String { String(state.currentResourceVersion) }

    /// A client config trusting the server's CA, authenticating with `token`.
    public func clusterConfig(token: String? = "test-token") -> ClusterConfig {
        ClusterConfig(
            server: url, tls: TLSSettings(caData: certificates.read(certificates.caCertPath)),
            credentials: Credentials(token.map { .token($0) } ?? .none))
    }

    // MARK: lifecycle

    /// Starts listening (on a free port below the ephemeral range the first time, on the same
    /// port after a restart).
    public func start() async throws {
        let tls = try makeTLSContext()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 64)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [weak self] channel in
                guard let self else { return channel.eventLoop.makeSucceededVoidFuture() }
                self.lock.withLock { self.children[ObjectIdentifier(channel)] = channel }
                channel.closeFuture.whenComplete { _ in
                    self.lock.withLock {
                        self.children[ObjectIdentifier(channel)] = nil
                        self.watchChannels[ObjectIdentifier(channel)] = nil
                    }
                }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(APIRequestHandler(server: self))
                }
            }
        let channel: any Channel
        if port != 0 {
            channel = try await bootstrap.bind(host: "127.0.0.1", port: port).get()
        } else {
            // The first start: a port of its own below the ephemeral range, so that while the
            // server is stopped (a restart) no other test's outgoing connection can take it.
            var bound: (any Channel)?
            var lastError: (any Error)?
            for _ in 0..<200 where bound == nil {
                do {
                    bound = try await bootstrap.bind(host: "127.0.0.1", port: Self.nextPort()).get()
                } catch {
                    lastError = error
                }
            }
            guard let bound else { throw lastError ?? ChannelError.inappropriateOperationForState }
            channel = bound
        }
        lock.withLock {
            serverChannel = channel
            boundPort = channel.localAddress?.port ?? 0
        }
    }

    private func makeTLSContext() throws -> NIOSSLContext {
        var config = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificates.serverCertPath).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: certificates.serverKeyPath, format: .pem)))
        config.certificateVerification = .optionalVerification
        config.shutdownTimeout = .milliseconds(200)
        config.trustRoots = .file(certificates.caCertPath)
        return try NIOSSLContext(configuration: config)
    }

    /// Ports for first starts, one per call across the process: 31000–32499, below the kernel's
    /// ephemeral range (32768 up) and apart from the ports other tests pick (20000–29999 for the
    /// proxy's), from an offset by process so runs side by side rarely meet.
    private static let portCounter = NIOLockedValueBox(Int(getpid()) % 100 * 15)
    private static func nextPort() -> Int {
        portCounter.withLockedValue { counter in
            defer { counter += 1 }
            return 31000 + counter % 1500
        }
    }

    /// Stops listening and closes every connection (watches end abruptly).
    public func stop() async throws {
        let (server, open) = lock.withLock { () -> ((any Channel)?, [any Channel]) in
            defer { serverChannel = nil }
            return (serverChannel, Array(children.values))
        }
        try? await server?.close()
        for c in open { try? await c.close() }
        state.removeAllWatchers()
    }

    /// Stops and starts again on the same port, keeping the data or starting over (a replaced
    /// etcd: versions keep rising, older ones answer 410).
    public func restart(keepData: Bool = true) async throws {
        try await stop()
        if !keepData { state.reset() }
        try await start()
    }

    // MARK: data (as the "other side" of the cluster)

    func resource(_ plural: String, group: String? = nil) -> ServedResource {
        guard let r = ServedResource.all.first(where: { $0.plural == plural && (group == nil || $0.group == group) }) else {
            preconditionFailure("TestAPIServer does not serve \(plural)")
        }
        return r
    }

    /// Creates an object (as JSON); returns it as stored.
    @discardableResult
    public func create(_ plural: String, _ object: JSONValue) throws -> JSONValue {
        let r = resource(plural)
        do {
            return try state.create(r, version: r.versions[0], namespace: object["metadata"]?["namespace"]?.stringValue, object: object)
        } catch let f as APIFailure {
            throw TestServerError(code: f.code, body: f.body)
        }
    }

    /// Creates a typed object.
    @discardableResult
    public func create<T: Encodable>(_ plural: String, object: T) throws -> JSONValue {
        try create(plural, JSONValue.from(object))
    }

    /// Replaces an object's contents (a MODIFIED event).
    @discardableResult
    public func replace(_ plural: String, _ object: JSONValue) throws -> JSONValue {
        let r = resource(plural)
        let ns = object["metadata"]?["namespace"]?.stringValue
        let name = object["metadata"]?["name"]?.stringValue ?? ""
        do { return try state.update(r, namespace: ns, name: name, change: .replace(object)) } catch let f as APIFailure {
            throw TestServerError(code: f.code, body: f.body)
        }
    }

    /// Applies a merge patch to an object (a MODIFIED event).
    @discardableResult
    public func patch(_ plural: String, namespace: String?, name: String, _ patch: JSONValue) throws -> JSONValue {
        do { return try state.update(resource(plural), namespace: namespace, name: name, change: .mergePatch(patch)) } catch let f as APIFailure {
            throw TestServerError(code: f.code, body: f.body)
        }
    }

    public func delete(_ plural: String, namespace: String?, name: String) throws {
        do { try state.delete(resource(plural), namespace: namespace, name: name) } catch let f as APIFailure {
            throw TestServerError(code: f.code, body: f.body)
        }
    }

    public func get(_ plural: String, namespace: String?, name: String) -> JSONValue? {
        try? state.get(resource(plural), namespace: namespace, name: name)
    }

    // MARK: controls

    /// Sends a BOOKMARK (current resourceVersion) on every watch that allowed bookmarks.
    public func sendBookmarks() { state.sendBookmarks() }

    /// Watches registered with the object store (they receive events and bookmarks from now on).
    public var registeredWatches: Int { state.watcherCount }

    /// Compacts history: watches and continued lists from older versions answer 410.
    public func compact() { state.compact() }

    /// Injects `fault` into the next `count` requests matching verb (get/list/watch/create/patch/delete) and resource.
    public func inject(_ fault: InjectedFault, verb: String? = nil, resource plural: String? = nil, count: Int = 1) {
        lock.withLock { faults.append(FaultRule(fault: fault, verb: verb, plural: plural, remaining: count)) }
    }

    public func clearFaults() { lock.withLock { faults.removeAll() } }

    /// The next event line written to a watch is written in pieces cut at these byte offsets
    /// (each piece flushed separately, a moment apart, so the client reads them separately).
    public func splitNextEvent(at offsets: [Int]) { lock.withLock { splits.append(offsets) } }

    /// Closes every open watch connection (the client sees the stream break).
    public func dropWatches() {
        let open = lock.withLock { Array(watchChannels.values) }
        for c in open { c.close(promise: nil) }
    }

    /// 403 for `user` doing `verb` on `plural`.
    public func forbid(user: String, verb: String, resource plural: String) {
        lock.withLock { _ = forbidden.insert("\(user)|\(verb)|\(plural)") }
    }

    public func addToken(_ token: String, user: String) { lock.withLock { tokens[token] = user } }
    public func removeToken(_ token: String) { lock.withLock { tokens[token] = nil } }

    /// Every request seen so far.
    public var requests: [RecordedRequest] { lock.withLock { log } }
    public func requests(verb: String, resource plural: String) -> [RecordedRequest] {
        requests.filter { $0.verb == verb && $0.plural == plural }
    }

    /// Number of watches currently registered.
    public var openWatches: Int { lock.withLock { watchChannels.count } }

    // MARK: used by the handler

    func record(_ r: RecordedRequest) { lock.withLock { log.append(r) } }

    func user(forToken token: String) -> String? { lock.withLock { tokens[token] } }

    func isForbidden(user: String, verb: String, plural: String) -> Bool {
        lock.withLock { forbidden.contains("\(user)|\(verb)|\(plural)") }
    }

    func takeFault(verb: String, plural: String) -> InjectedFault? {
        lock.withLock {
            guard let i = faults.firstIndex(where: { ($0.verb == nil || $0.verb == verb) && ($0.plural == nil || $0.plural == plural) && $0.remaining > 0 })
            else { return nil }
            faults[i].remaining -= 1
            let f = faults[i].fault
            if faults[i].remaining == 0 { faults.remove(at: i) }
            return f
        }
    }

    func takeSplit() -> [Int]? {
        lock.withLock { splits.isEmpty ? nil : splits.removeFirst() }
    }

    func registerWatchChannel(_ channel: any Channel) {
        lock.withLock { watchChannels[ObjectIdentifier(channel)] = channel }
    }

    func unregisterWatchChannel(_ channel: any Channel) {
        lock.withLock { _ = watchChannels.removeValue(forKey: ObjectIdentifier(channel)) }
    }
}

/// A direct-manipulation call the server refused (carries the Status it would have sent).
public struct TestServerError: Error, CustomStringConvertible {
    public var code: Int
    public var body: JSONValue
    public var description: String { "HTTP \(code): \(String(decoding: body.serialized(), as: UTF8.self))" }
}

extension TestAPIServer {
    /// Generates the PKI (openssl, on its own thread) and starts a server.
    public static func started(tokens: [String: String] = ["test-token": "admin"]) async throws -> TestAPIServer {
        let server = try await withCheckedThrowingContinuation { (c: CheckedContinuation<TestAPIServer, any Error>) in
            Thread {
                do { c.resume(returning: try TestAPIServer(tokens: tokens)) } catch { c.resume(throwing: error) }
            }.start()
        }
        try await server.start()
        return server
    }
}
