import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOSSL

/// Serves one connection: parses the Kubernetes URL, authenticates, authorises, injects faults,
/// and answers from the APIState. Watches stream through a `WatchStreamWriter`.
final class APIRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: TestAPIServer
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var watch: WatchStreamWriter?

    init(server: TestAPIServer) {
        self.server = server
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.clear()
        case .body(var b):
            body.writeBuffer(&b)
        case .end:
            guard let head else { return }
            self.head = nil
            handle(context: context, head: head, body: Data(body.readableBytesView))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        watch?.close()
        watch = nil
        context.fireChannelInactive()
    }

    // MARK: routing

    struct Route {
        var resource: ServedResource
        var version: String
        var namespace: String?
        var name: String?
        var subresource: String?
    }

    private func route(_ segments: [String]) -> Route? {
        var s = segments[...]
        let group: String
        let version: String
        if s.first == "api", s.count >= 2 {
            group = ""
            version = s[s.startIndex + 1]
            s = s.dropFirst(2)
        } else if s.first == "apis", s.count >= 3 {
            group = s[s.startIndex + 1]
            version = s[s.startIndex + 2]
            s = s.dropFirst(3)
        } else {
            return nil
        }
        var namespace: String?
        if s.first == "namespaces", s.count >= 3 {
            namespace = s[s.startIndex + 1]
            s = s.dropFirst(2)
        }
        guard let plural = s.first, let r = ServedResource.find(group: group, version: version, plural: plural) else { return nil }
        s = s.dropFirst()
        let name = s.first
        s = s.dropFirst()
        let sub = s.first
        if s.count > 1 { return nil }
        if r.namespaced == false, namespace != nil { return nil }
        return Route(resource: r, version: version, namespace: namespace, name: name, subresource: sub)
    }

    private func handle(context: ChannelHandlerContext, head: HTTPRequestHead, body: Data) {
        let components = URLComponents(string: head.uri)
        let path = components?.percentEncodedPath ?? head.uri
        var query: [String: String] = [:]
        for item in components?.queryItems ?? [] { query[item.name] = item.value ?? "" }
        let segments = path.split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }
        let keepAlive = head.isKeepAlive

        // Authentication: bearer token, else a client certificate signed by the test CA.
        var user: String?
        if let auth = head.headers.first(name: "authorization"), auth.hasPrefix("Bearer ") {
            user = server.user(forToken: String(auth.dropFirst(7)))
        } else if let ssl = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self),
            let cert = ssl.peerCertificate
        {
            user = cert.description.components(separatedBy: "common_name=").dropFirst().first?
                .split(separator: ";").first.map { String($0).trimmingCharacters(in: CharacterSet(charactersIn: ">")) } ?? "cert-user"
        }

        guard let route = route(segments) else {
            let verbGuess = head.method == .GET ? "get" : head.method.rawValue.lowercased()
            server.record(RecordedRequest(method: head.method.rawValue, verb: verbGuess, plural: "", path: path, query: query, user: user,
                                          userAgent: head.headers.first(name: "user-agent"), contentType: head.headers.first(name: "content-type")))
            if user == nil { return respond(context, APIFailure.forFault(code: 401), keepAlive: keepAlive) }
            return respond(context, APIFailure(code: 404, reason: "NotFound", message: "the server could not find the requested resource", details: .object([:])), keepAlive: keepAlive)
        }
        let verb: String
        switch head.method {
        case .GET: verb = route.name == nil ? (query["watch"] == "true" || query["watch"] == "1" ? "watch" : "list") : "get"
        case .POST: verb = "create"
        case .PUT: verb = "update"
        case .PATCH: verb = "patch"
        case .DELETE: verb = "delete"
        default: verb = head.method.rawValue.lowercased()
        }
        server.record(RecordedRequest(method: head.method.rawValue, verb: verb, plural: route.resource.plural, path: path, query: query, user: user,
                                      userAgent: head.headers.first(name: "user-agent"), contentType: head.headers.first(name: "content-type")))

        guard let user else { return respond(context, APIFailure.forFault(code: 401), keepAlive: keepAlive) }
        let r = route.resource
        let fullPlural = route.subresource.map { "\(r.plural)/\($0)" } ?? r.plural
        if server.isForbidden(user: user, verb: verb, plural: r.plural) || server.isForbidden(user: user, verb: verb, plural: fullPlural) {
            let scope = route.namespace.map { "in the namespace \"\($0)\"" } ?? "at the cluster scope"
            var details: [String: JSONValue] = ["kind": .string(r.plural)]
            if let name = route.name { details["name"] = .string(name) }
            if !r.group.isEmpty { details["group"] = .string(r.group) }
            let subject = route.name.map { "\(r.plural)\(r.group.isEmpty ? "" : "." + r.group) \"\($0)\"" } ?? "\(r.plural)\(r.group.isEmpty ? "" : "." + r.group)"
            return respond(context, APIFailure(
                code: 403, reason: "Forbidden",
                message: "\(subject) is forbidden: User \"\(user)\" cannot \(verb) resource \"\(fullPlural)\" in API group \"\(r.group)\" \(scope)",
                details: .object(details)), keepAlive: keepAlive)
        }

        let fault = server.takeFault(verb: verb, plural: r.plural)
        if case .status(let code)? = fault {
            return respond(context, APIFailure.forFault(code: code), keepAlive: keepAlive, extraHeaders: code == 429 ? [("Retry-After", "1")] : [])
        }

        do {
            switch verb {
            case "get":
                if route.subresource != nil && route.subresource != "status" { throw APIFailure(code: 404, reason: "NotFound", message: "the server could not find the requested resource", details: .object([:])) }
                respond(context, code: 200, json: try server.state.get(r, namespace: route.namespace, name: route.name!), keepAlive: keepAlive)
            case "list":
                respond(context, code: 200, json: try list(route, query), keepAlive: keepAlive)
            case "watch":
                startWatch(context: context, route: route, query: query, fault: fault)
            case "create":
                let object = try parseBody(body)
                if let ns = object["metadata"]?["namespace"]?.stringValue, let pathNS = route.namespace, ns != pathNS {
                    throw APIFailure(code: 400, reason: "BadRequest", message: "the namespace of the provided object does not match the namespace sent on the request")
                }
                if r.namespaced, let namespace = route.namespace { try server.state.admitCreate(namespace: namespace) }
                respond(context, code: 201, json: try server.state.create(r, version: route.version, namespace: route.namespace, object: object), keepAlive: keepAlive)
            case "update":
                let object = try parseBody(body)
                respond(context, code: 200, json: try server.state.update(r, namespace: route.namespace, name: route.name ?? "", change: .replace(object)), keepAlive: keepAlive)
            case "patch":
                let type = head.headers.first(name: "content-type") ?? ""
                guard type.hasPrefix("application/merge-patch+json") || type.hasPrefix("application/strategic-merge-patch+json") else {
                    throw APIFailure(code: 415, reason: "UnsupportedMediaType", message: "the body of the request was in an unknown format - accepted media types include: application/merge-patch+json")
                }
                let patch = try parseBody(body)
                let change: APIState.Change = route.subresource == "status" ? .statusMergePatch(patch) : .mergePatch(patch)
                respond(context, code: 200, json: try server.state.update(r, namespace: route.namespace, name: route.name ?? "", change: change), keepAlive: keepAlive)
            case "delete":
                let removed = try server.state.delete(r, namespace: route.namespace, name: route.name ?? "")
                var details: [String: JSONValue] = ["name": removed["metadata"]?["name"] ?? .null, "kind": .string(r.plural)]
                if !r.group.isEmpty { details["group"] = .string(r.group) }
                details["uid"] = removed["metadata"]?["uid"]
                respond(context, code: 200, json: .object([
                    "kind": .string("Status"), "apiVersion": .string("v1"), "metadata": .object([:]),
                    "status": .string("Success"), "details": .object(details),
                ]), keepAlive: keepAlive)
            default:
                throw APIFailure(code: 405, reason: "MethodNotAllowed", message: "the server does not allow this method on the requested resource")
            }
        } catch let failure as APIFailure {
            respond(context, failure, keepAlive: keepAlive)
        } catch {
            respond(context, APIFailure(code: 500, reason: "InternalError", message: "\(error)"), keepAlive: keepAlive)
        }
    }

    private func parseBody(_ body: Data) throws -> JSONValue {
        do {
            let v = try JSONValue.parse(body)
            guard case .object = v else { throw APIFailure(code: 400, reason: "BadRequest", message: "the object provided is not a JSON object") }
            return v
        } catch let f as APIFailure {
            throw f
        } catch {
            throw APIFailure(code: 400, reason: "BadRequest", message: "the object provided is unrecognized: \(error)")
        }
    }

    private func list(_ route: Route, _ query: [String: String]) throws -> JSONValue {
        let r = route.resource
        let page = try server.state.list(
            r, namespace: route.namespace, labels: Selector(query["labelSelector"]), fields: Selector(query["fieldSelector"]),
            limit: query["limit"].flatMap(Int.init), continueToken: query["continue"],
            resourceVersion: query["resourceVersion"], resourceVersionMatch: query["resourceVersionMatch"])
        var meta: [String: JSONValue] = ["resourceVersion": .string(String(page.rv))]
        if let c = page.continue {
            meta["continue"] = .string(c)
            if let remaining = page.remaining { meta["remainingItemCount"] = .number(Double(remaining)) }
        }
        let items: [JSONValue] = page.items.map { item in
            guard r.builtin else { return item }
            var i = item
            i["kind"] = nil
            i["apiVersion"] = nil
            return i
        }
        return .object([
            "kind": .string(r.kind + "List"), "apiVersion": .string(r.apiVersion(route.version)),
            "metadata": .object(meta), "items": .array(items),
        ])
    }

    // MARK: watch

    private func startWatch(context: ChannelHandlerContext, route: Route, query: [String: String], fault: InjectedFault?) {
        var headers = baseHeaders()
        headers.add(name: "transfer-encoding", value: "chunked")
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        let channel = context.channel
        server.registerWatchChannel(channel)
        let writer = WatchStreamWriter(channel: channel, server: server)
        watch = writer
        if fault == .stall { return }  // headers only; never ends on its own
        if fault == .watchExpired {
            writer.sendRaw(APIFailure.expired("The resourceVersion for the provided watch is too old.").body, type: "ERROR")
            writer.finish()
            return
        }
        let watcher = Watcher(
            resource: route.resource, namespace: route.namespace, labels: Selector(query["labelSelector"]),
            fields: Selector(query["fieldSelector"]), bookmarks: query["allowWatchBookmarks"] == "true", version: route.version,
            send: { [weak writer] type, object in writer?.sendRaw(object, type: type) })
        do {
            writer.watchID = try server.state.watch(watcher, resourceVersion: query["resourceVersion"])
        } catch let failure as APIFailure {
            // Like the real server: HTTP 200, then one ERROR event with the 410 Status, then the end.
            writer.sendRaw(failure.body, type: "ERROR")
            writer.finish()
            return
        } catch {
            writer.finish()
            return
        }
        let timeout = Int64(query["timeoutSeconds"].flatMap(Int.init) ?? 1800)
        context.eventLoop.scheduleTask(in: .seconds(timeout)) { [weak writer] in writer?.finish() }
    }

    // MARK: responses

    private func baseHeaders() -> HTTPHeaders {
        var h = HTTPHeaders()
        h.add(name: "audit-id", value: UUID().uuidString.lowercased())
        h.add(name: "cache-control", value: "no-cache, private")
        h.add(name: "content-type", value: "application/json")
        return h
    }

    private func respond(_ context: ChannelHandlerContext, _ failure: APIFailure, keepAlive: Bool, extraHeaders: [(String, String)] = []) {
        respond(context, code: failure.code, json: failure.body, keepAlive: keepAlive, extraHeaders: extraHeaders)
    }

    private func respond(_ context: ChannelHandlerContext, code: Int, json: JSONValue, keepAlive: Bool, extraHeaders: [(String, String)] = []) {
        let data = json.serialized()
        var headers = baseHeaders()
        for (k, v) in extraHeaders { headers.add(name: k, value: v) }
        headers.add(name: "content-length", value: String(data.count))
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: code), headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: data)))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}

/// Writes one watch's event lines in order, from any thread. A line the server was told to split
/// goes out in pieces with a short pause between them, and later lines wait their turn.
final class WatchStreamWriter: @unchecked Sendable {
    private enum Item {
        case bytes(Data, pauseAfter: Bool)
        case end
    }
    private let channel: any Channel
    private let server: TestAPIServer
    private let lock = NIOLock()
    private var queue: [Item] = []
    private var pumping = false
    private var closed = false
    var watchID: UInt64?

    init(channel: any Channel, server: TestAPIServer) {
        self.channel = channel
        self.server = server
    }

    /// One event line, with "type" first as the real server writes it.
    func sendRaw(_ object: JSONValue, type: String) {
        var line = Data("{\"type\":\"\(type)\",\"object\":".utf8)
        line.append(object.serialized())
        line.append(Data("}\n".utf8))
        var items: [Item] = []
        if let offsets = server.takeSplit() {
            var start = 0
            for cut in offsets.sorted() where cut > start && cut < line.count {
                items.append(.bytes(line.subdata(in: start..<cut), pauseAfter: true))
                start = cut
            }
            items.append(.bytes(line.subdata(in: start..<line.count), pauseAfter: false))
        } else {
            items.append(.bytes(line, pauseAfter: false))
        }
        enqueue(items)
    }

    /// Ends the chunked response (the watch's timeout), keeping the connection for reuse.
    func finish() { enqueue([.end]) }

    /// The connection went away.
    func close() {
        let id = lock.withLock { () -> UInt64? in
            closed = true
            queue.removeAll()
            return watchID
        }
        if let id { server.state.unwatch(id) }
        server.unregisterWatchChannel(channel)
    }

    private func enqueue(_ items: [Item]) {
        let start = lock.withLock { () -> Bool in
            guard !closed else { return false }
            queue.append(contentsOf: items)
            if pumping { return false }
            pumping = true
            return true
        }
        if start { channel.eventLoop.execute { self.pump() } }
    }

    private func pump() {
        while true {
            let item = lock.withLock { () -> Item? in
                if closed || queue.isEmpty {
                    pumping = false
                    return nil
                }
                return queue.removeFirst()
            }
            guard let item else { return }
            switch item {
            case .bytes(let data, let pauseAfter):
                channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: data))), promise: nil)
                if pauseAfter {
                    channel.eventLoop.scheduleTask(in: .milliseconds(5)) { self.pump() }
                    return
                }
            case .end:
                let id = lock.withLock { () -> UInt64? in
                    closed = true
                    queue.removeAll()
                    pumping = false
                    return watchID
                }
                if let id { server.state.unwatch(id) }
                server.unregisterWatchChannel(channel)
                channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
                return
            }
        }
    }
}
