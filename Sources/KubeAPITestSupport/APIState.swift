import Foundation
import NIOConcurrencyHelpers

/// An error the server answers with: an HTTP code and a meta/v1 Status body.
struct APIFailure: Error {
    var code: Int
    var body: JSONValue

    init(code: Int, reason: String, message: String, details: JSONValue? = nil) {
        var status: [String: JSONValue] = [
            "kind": .string("Status"), "apiVersion": .string("v1"), "metadata": .object([:]),
            "status": .string("Failure"), "message": .string(message), "reason": .string(reason), "code": .number(Double(code)),
        ]
        if let details { status["details"] = details }
        self.code = code
        self.body = .object(status)
    }

    static func notFound(_ r: ServedResource, _ name: String) -> APIFailure {
        APIFailure(code: 404, reason: "NotFound", message: "\(r.plural)\(r.group.isEmpty ? "" : "." + r.group) \"\(name)\" not found",
                   details: .object(["name": .string(name), "kind": .string(r.plural)] .merging(r.group.isEmpty ? [:] : ["group": .string(r.group)]) { a, _ in a }))
    }

    static func expired(_ message: String) -> APIFailure {
        APIFailure(code: 410, reason: "Expired", message: message)
    }
}

/// One watch connection's subscription.
struct Watcher: Sendable {
    var resource: ServedResource
    var namespace: String?
    var labels: Selector
    var fields: Selector
    var bookmarks: Bool
    var version: String
    /// Writes one event line (type, object) to the connection.
    var send: @Sendable (String, JSONValue) -> Void

    /// How this watch sees an event, as the real server's watch cache: a change that makes an
    /// object start matching the selectors is ADDED, one that makes it stop matching is DELETED
    /// (with the new object); nil when the watch does not see it at all.
    func view(of e: APIState.Event) -> String? {
        let now = wants(e.object, resourceID: e.resourceID)
        guard e.type == "MODIFIED", let previous = e.previous else { return now ? e.type : nil }
        switch (wants(previous, resourceID: e.resourceID), now) {
        case (true, true): return "MODIFIED"
        case (false, true): return "ADDED"
        case (true, false): return "DELETED"
        case (false, false): return nil
        }
    }

    func wants(_ object: JSONValue, resourceID: String) -> Bool {
        guard resourceID == resource.id else { return false }
        if let namespace, object["metadata"]?["namespace"]?.stringValue != namespace { return false }
        return labels.matches(Selector.labels(of: object)) && fields.matches(Selector.fields(of: object))
    }
}

/// The server's data: objects by resource, a global resourceVersion counter, the event history
/// watches replay from, and the compaction point below which versions are "too old".
final class APIState: @unchecked Sendable {
    struct Event {
        var rv: Int
        var resourceID: String
        var type: String
        var object: JSONValue
        /// For MODIFIED: the object before the change (selector transitions, see `Watcher.view`).
        var previous: JSONValue? = nil
    }

    private let lock = NIOLock()
    private var rv = 100
    private var objects: [String: [String: JSONValue]] = [:]
    private var history: [Event] = []
    private var compactedRV = 0
    private var listSnapshots: [String: [JSONValue]] = [:]
    private var watchers: [UInt64: Watcher] = [:]
    private var nextWatcher: UInt64 = 1
    private var uidCounter = 0
    /// ClusterIPs in use (from --service-cluster-ip-range 10.96.0.0/16, as the envtest server).
    private var allocatedClusterIPs: Set<String> = ["10.96.0.1"]
    private var nextClusterIP = 10

    /// Gives a Service without `spec.clusterIP` the next free address; refuses one already in use
    /// with the real server's 422. Headless (`None`) and ExternalName Services get none. Call under the lock.
    private func allocateClusterIP(_ object: JSONValue, name: String) throws -> JSONValue {
        var o = object
        if o["spec"]?["type"]?.stringValue == "ExternalName" { return o }
        if let ip = o["spec"]?["clusterIP"]?.stringValue, !ip.isEmpty {
            guard ip == "None" || !allocatedClusterIPs.contains(ip) else {
                let message = "spec.clusterIPs: Invalid value: []string{\"\(ip)\"}: failed to allocate IP \(ip): provided IP is already allocated"
                throw APIFailure(
                    code: 422, reason: "Invalid", message: "Service \"\(name)\" is invalid: \(message)",
                    details: .object([
                        "name": .string(name), "kind": .string("Service"),
                        "causes": .array([.object([
                            "reason": .string("FieldValueInvalid"), "field": .string("spec.clusterIPs"),
                            "message": .string("Invalid value: []string{\"\(ip)\"}: failed to allocate IP \(ip): provided IP is already allocated"),
                        ])]),
                    ]))
            }
        } else {
            var ip: String
            repeat {
                ip = "10.96.\(nextClusterIP / 256).\(nextClusterIP % 256)"
                nextClusterIP += 1
            } while allocatedClusterIPs.contains(ip)
            var spec = o["spec"]?.objectValue ?? [:]
            spec["clusterIP"] = .string(ip)
            spec["clusterIPs"] = .array([.string(ip)])
            o["spec"] = .object(spec)
        }
        return o
    }

    var currentResourceVersion: Int { lock.withLock { rv } }

    static func key(namespace: String?, name: String) -> String {
        if let namespace, !namespace.isEmpty { return "\(namespace)/\(name)" }
        return name
    }

    static func timestamp() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: Date())
    }

    // MARK: reads

    func get(_ r: ServedResource, namespace: String?, name: String) throws -> JSONValue {
        try lock.withLock {
            guard let o = objects[r.id]?[Self.key(namespace: namespace, name: name)] else { throw APIFailure.notFound(r, name) }
            return o
        }
    }

    /// One list page at a consistent resourceVersion. Returns (items, rv, continue, remaining).
    func list(
        _ r: ServedResource, namespace: String?, labels: Selector, fields: Selector, limit: Int?, continueToken: String?,
        resourceVersion: String?, resourceVersionMatch: String?
    ) throws -> (items: [JSONValue], rv: Int, continue: String?, remaining: Int?) {
        try lock.withLock {
            if resourceVersionMatch == "Exact", let text = resourceVersion, let want = Int(text), want < compactedRV {
                throw APIFailure.expired("The resourceVersion for the provided list is too old.")
            }
            var listRV = rv
            var start = ""
            var all: [JSONValue]
            if let token = continueToken, !token.isEmpty {
                guard let decoded = Self.decodeContinue(token) else {
                    throw APIFailure(code: 400, reason: "BadRequest", message: "continue key is not valid: illegal base64 data")
                }
                listRV = decoded.rv
                start = decoded.start
                let snapKey = "\(r.id)|\(namespace ?? "")|\(listRV)"
                guard listRV >= compactedRV, let snap = listSnapshots[snapKey] else {
                    throw APIFailure.expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
                }
                all = snap
            } else {
                all = (objects[r.id] ?? [:]).sorted { $0.key < $1.key }.map(\.value)
                    .filter { namespace == nil || $0["metadata"]?["namespace"]?.stringValue == namespace }
                listSnapshots["\(r.id)|\(namespace ?? "")|\(rv)"] = all
            }
            all = all.filter { labels.matches(Selector.labels(of: $0)) && fields.matches(Selector.fields(of: $0)) }
            let rest = all.filter { Self.storeKey($0) > start }
            guard let limit, limit > 0, rest.count > limit else { return (rest, listRV, nil, nil) }
            let page = Array(rest.prefix(limit))
            let token = Self.encodeContinue(rv: listRV, start: Self.storeKey(page.last!) + "\u{0}")
            return (page, listRV, token, rest.count - limit)
        }
    }

    static func storeKey(_ o: JSONValue) -> String {
        key(namespace: o["metadata"]?["namespace"]?.stringValue, name: o["metadata"]?["name"]?.stringValue ?? "")
    }

    /// The real server's token: base64url (no padding) of {"v":"meta.k8s.io/v1","rv":N,"start":"key\u0000"}.
    static func encodeContinue(rv: Int, start: String) -> String {
        let json = JSONValue.object(["v": .string("meta.k8s.io/v1"), "rv": .number(Double(rv)), "start": .string(start)]).serialized()
        return json.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decodeContinue(_ token: String) -> (rv: Int, start: String)? {
        var b64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b64.count % 4 != 0 { b64 += "=" }
        guard let data = Data(base64Encoded: b64), let v = try? JSONValue.parse(data),
            case .number(let rv)? = v["rv"], let start = v["start"]?.stringValue
        else { return nil }
        return (Int(rv), start.hasSuffix("\u{0}") ? String(start.dropLast()) : start)
    }

    /// Namespaces the real server creates itself and never lets go (not listed here: the test
    /// server holds only the objects a test makes; creates into them are admitted all the same).
    static let systemNamespaces: Set<String> = ["default", "kube-system", "kube-public", "kube-node-lease"]

    /// The NamespaceLifecycle admission check of a create: the namespace must exist. The real
    /// server answers 404 with the missing namespace as the object not found, before validating.
    func admitCreate(namespace: String) throws {
        guard !Self.systemNamespaces.contains(namespace) else { return }
        let exists = lock.withLock { objects["/namespaces"]?[namespace] != nil }
        guard !exists else { return }
        throw APIFailure(
            code: 404, reason: "NotFound", message: "namespaces \"\(namespace)\" not found",
            details: .object(["name": .string(namespace), "kind": .string("namespaces")]))
    }

    // MARK: writes

    /// Creates an object (409 if it exists). Fills uid, resourceVersion, creationTimestamp, kind/apiVersion.
    @discardableResult
    func create(_ r: ServedResource, version: String, namespace: String?, object: JSONValue) throws -> JSONValue {
        guard let name = object["metadata"]?["name"]?.stringValue, !name.isEmpty else {
            throw APIFailure(code: 422, reason: "Invalid", message: "\(r.kind).\(r.group.isEmpty ? "" : r.group) \"\" is invalid: metadata.name: Required value: name or generateName is required",
                             details: .object(["kind": .string(r.kind), "causes": .array([.object(["reason": .string("FieldValueRequired"), "message": .string("Required value: name or generateName is required"), "field": .string("metadata.name")])])]))
        }
        try Validation.validate(r, object)
        let (event, stored) = try lock.withLock { () throws -> (Event, JSONValue) in
            let key = Self.key(namespace: r.namespaced ? namespace : nil, name: name)
            // Like the real server: the ClusterIP is allocated (or refused, 422) before the name is
            // checked (409); a create that then fails releases what it allocated.
            var o = object
            if r.plural == "services", r.group.isEmpty { o = try allocateClusterIP(o, name: name) }
            if objects[r.id]?[key] != nil {
                throw APIFailure(code: 409, reason: "AlreadyExists", message: "\(r.plural)\(r.group.isEmpty ? "" : "." + r.group) \"\(name)\" already exists",
                                 details: .object(["name": .string(name), "kind": .string(r.plural)].merging(r.group.isEmpty ? [:] : ["group": .string(r.group)]) { a, _ in a }))
            }
            rv += 1
            uidCounter += 1
            if let ip = o["spec"]?["clusterIP"]?.stringValue, ip != "None" { allocatedClusterIPs.insert(ip) }
            var meta = o["metadata"]?.objectValue ?? [:]
            if r.namespaced { meta["namespace"] = .string(namespace ?? "default") } else { meta["namespace"] = nil }
            meta["uid"] = .string(String(format: "00000000-0000-4000-8000-%012d", uidCounter))
            meta["resourceVersion"] = .string(String(rv))
            meta["creationTimestamp"] = .string(Self.timestamp())
            if r.hasGeneration { meta["generation"] = .number(1) }
            o["metadata"] = .object(meta)
            o["kind"] = .string(r.kind)
            o["apiVersion"] = .string(r.apiVersion(version))
            objects[r.id, default: [:]][key] = o
            let e = Event(rv: rv, resourceID: r.id, type: "ADDED", object: o)
            history.append(e)
            return (e, o)
        }
        broadcast(event)
        return stored
    }

    /// Replaces an object (or its status only), or merge-patches it.
    enum Change {
        case replace(JSONValue)
        case mergePatch(JSONValue)
        case statusMergePatch(JSONValue)
    }

    @discardableResult
    func update(_ r: ServedResource, namespace: String?, name: String, change: Change) throws -> JSONValue {
        let (event, stored) = try lock.withLock { () throws -> (Event, JSONValue) in
            let key = Self.key(namespace: r.namespaced ? namespace : nil, name: name)
            guard let old = objects[r.id]?[key] else { throw APIFailure.notFound(r, name) }
            var o: JSONValue
            switch change {
            case .replace(let new):
                o = new
                o["status"] = new["status"] ?? old["status"]
            case .mergePatch(let patch):
                var p = patch
                p["status"] = nil
                p["metadata"] = p["metadata"].map { m in
                    var m = m
                    for k in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] { m[k] = nil }
                    return m
                }
                o = old.mergePatched(with: p)
            case .statusMergePatch(let patch):
                o = old
                if let s = patch["status"] { o["status"] = (old["status"] ?? .object([:])).mergePatched(with: s) }
            }
            var meta = o["metadata"]?.objectValue ?? [:]
            let oldMeta = old["metadata"]?.objectValue ?? [:]
            for k in ["name", "namespace", "uid", "creationTimestamp"] { meta[k] = oldMeta[k] }
            if r.hasGeneration, case .number(let g)? = oldMeta["generation"] {
                let specChanged: Bool
                if case .statusMergePatch = change { specChanged = false } else { specChanged = o["spec"] != old["spec"] }
                meta["generation"] = .number(specChanged ? g + 1 : g)
            }
            rv += 1
            meta["resourceVersion"] = .string(String(rv))
            o["metadata"] = .object(meta)
            o["kind"] = old["kind"]
            o["apiVersion"] = old["apiVersion"]
            objects[r.id]![key] = o
            let e = Event(rv: rv, resourceID: r.id, type: "MODIFIED", object: o, previous: old)
            history.append(e)
            return (e, o)
        }
        if case .replace = change { try? Validation.validate(r, stored) }
        broadcast(event)
        return stored
    }

    @discardableResult
    func delete(_ r: ServedResource, namespace: String?, name: String) throws -> JSONValue {
        let (event, removed) = try lock.withLock { () throws -> (Event, JSONValue) in
            let key = Self.key(namespace: r.namespaced ? namespace : nil, name: name)
            guard var o = objects[r.id]?.removeValue(forKey: key) else { throw APIFailure.notFound(r, name) }
            if r.plural == "services", r.group.isEmpty, let ip = o["spec"]?["clusterIP"]?.stringValue { allocatedClusterIPs.remove(ip) }
            rv += 1
            o["metadata"]?["resourceVersion"] = .string(String(rv))
            let e = Event(rv: rv, resourceID: r.id, type: "DELETED", object: o)
            history.append(e)
            return (e, o)
        }
        broadcast(event)
        return removed
    }

    private func broadcast(_ e: Event) {
        let targets = lock.withLock { watchers.values.compactMap { w in w.view(of: e).map { (w, $0) } } }
        for (w, type) in targets { w.send(type, e.object) }
    }

    // MARK: watch

    /// Registers a watcher starting after `resourceVersion`: replays newer history (or synthetic
    /// ADDEDs when rv is empty/"0"), then delivers live events. Throws Expired for a compacted rv.
    func watch(_ w: Watcher, resourceVersion: String?) throws -> UInt64 {
        let (id, replay) = try lock.withLock { () throws -> (UInt64, [(String, JSONValue)]) in
            var replay: [(String, JSONValue)] = []
            if let text = resourceVersion, !text.isEmpty, text != "0" {
                guard let from = Int(text), from >= compactedRV else {
                    throw APIFailure.expired("The resourceVersion for the provided watch is too old.")
                }
                replay = history.filter { $0.rv > from }.compactMap { e in w.view(of: e).map { ($0, e.object) } }
            } else {
                replay = (objects[w.resource.id] ?? [:]).sorted { $0.key < $1.key }.map(\.value)
                    .filter { w.wants($0, resourceID: w.resource.id) }.map { ("ADDED", $0) }
            }
            let id = nextWatcher
            nextWatcher += 1
            watchers[id] = w
            return (id, replay)
        }
        for (type, o) in replay { w.send(type, o) }
        return id
    }

    func unwatch(_ id: UInt64) {
        lock.withLock { _ = watchers.removeValue(forKey: id) }
    }

    var watcherCount: Int { lock.withLock { watchers.count } }

    /// Sends a BOOKMARK at the current resourceVersion to every watch that allowed bookmarks.
    func sendBookmarks() {
        let (targets, current) = lock.withLock { (watchers.values.filter(\.bookmarks), rv) }
        for w in targets {
            var o: [String: JSONValue] = ["kind": .string(w.resource.kind), "apiVersion": .string(w.resource.apiVersion(w.version))]
            var meta: [String: JSONValue] = ["resourceVersion": .string(String(current))]
            if w.resource.builtin { meta["creationTimestamp"] = .null }
            o["metadata"] = .object(meta)
            for (k, v) in w.resource.bookmarkFields { o[k] = v }
            w.send("BOOKMARK", .object(o))
        }
    }

    /// Forgets history and list snapshots: older versions now answer 410 Expired.
    func compact() {
        lock.withLock {
            compactedRV = rv
            history.removeAll()
            listSnapshots.removeAll()
        }
    }

    /// Drops all objects (a restored/replaced etcd): versions continue upward, older ones are expired.
    func reset() {
        lock.withLock {
            objects.removeAll()
            allocatedClusterIPs = ["10.96.0.1"]
            rv += 100
            compactedRV = rv
            history.removeAll()
            listSnapshots.removeAll()
        }
    }

    func removeAllWatchers() {
        lock.withLock { watchers.removeAll() }
    }
}
