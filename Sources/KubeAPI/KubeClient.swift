import Foundation
import KubeModels

/// A page or a whole list: the items and the resourceVersion all pages share.
public struct ListResult<R: KubeResource>: Sendable {
    public var items: [R]
    public var resourceVersion: String
}

/// Options common to list and watch.
public struct ListOptions: Sendable, Hashable {
    /// nil = all namespaces (for namespaced resources).
    public var namespace: String?
    public var labelSelector: String?
    public var fieldSelector: String?

    public init(namespace: String? = nil, labelSelector: String? = nil, fieldSelector: String? = nil) {
        self.namespace = namespace
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
    }
}

/// A typed Kubernetes API client over the libcurl transport: get, list (paginated), watch, create,
/// merge-patch of status, delete. Generic over `KubeResource`; errors are `KubeAPIError`.
public final class KubeClient: Sendable {
    public let config: ClusterConfig
    public let transport: CurlTransport
    /// Timeout of ordinary (non-watch) requests.
    public let requestTimeout: Duration

    public init(config: ClusterConfig, transport: CurlTransport = .shared, requestTimeout: Duration = .seconds(30)) {
        self.config = config
        self.transport = transport
        self.requestTimeout = requestTimeout
    }

    // MARK: URLs

    /// "/api/v1/namespaces/demo/services/web/status" and friends.
    public static func path(_ r: ResourceDescriptor, namespace: String?, name: String? = nil, subresource: String? = nil) -> String {
        var path = r.group.isEmpty ? "/api/\(r.version)" : "/apis/\(r.group)/\(r.version)"
        if r.namespaced, let namespace { path += "/namespaces/\(escapePath(namespace))" }
        path += "/\(r.plural)"
        if let name { path += "/\(escapePath(name))" }
        if let subresource { path += "/\(subresource)" }
        return path
    }

    static func escapePath(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? s
    }

    static func query(_ items: [(String, String?)]) -> String {
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+,;!$'()*?/")
        let parts = items.compactMap { k, v in v.map { "\(k)=\($0.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0)" } }
        return parts.isEmpty ? "" : "?" + parts.joined(separator: "&")
    }

    // MARK: requests

    func request(method: String, path: String, body: Data? = nil, contentType: String? = nil, timeout: Duration?) async throws -> HTTPRequest {
        var headers = ["Accept: application/json"]
        if let auth = try await config.credentials.authorizationHeader() { headers.append("Authorization: \(auth)") }
        if let contentType { headers.append("Content-Type: \(contentType)") }
        return HTTPRequest(method: method, url: config.server + path, headers: headers, body: body, timeout: timeout, tls: config.tls)
    }

    /// Sends a request; returns the body of a 2xx response, throws KubeAPIError otherwise.
    func perform(_ what: RequestDescription, method: String, path: String, body: Data? = nil, contentType: String? = nil) async throws -> Data {
        let req: HTTPRequest
        do {
            req = try await request(method: method, path: path, body: body, contentType: contentType, timeout: requestTimeout)
        } catch let error as ConfigError {
            throw KubeAPIError(kind: .decoding("credentials: \(error)"), request: what)
        }
        let response: HTTPResponse
        do {
            response = try await transport.send(req)
        } catch let error as TransportError {
            APIErrorMetrics.count(code: "transport")
            throw KubeAPIError(kind: .transport(error), request: what)
        }
        guard (200..<300).contains(response.status) else {
            if response.status == 401 { config.credentials.invalidate() }
            throw KubeAPIError.fromResponse(code: response.status, body: response.body, request: what)
        }
        return response.body
    }

    static func decode<T: Decodable>(_ type: T.Type, _ data: Data, _ what: RequestDescription) throws -> T {
        do {
            // Bounded before decoding: a deep document must be an error, not a stack overflow.
            try JSONLimits.default.check(data)
            return try JSONDecoder().decode(type, from: data)
        } catch {
            throw KubeAPIError(kind: .decoding("\(error)"), request: what)
        }
    }

    // MARK: verbs

    /// GET one object.
    public func get<R: KubeResource>(_ type: R.Type, name: String, namespace: String? = nil) async throws -> R {
        let what = RequestDescription(verb: "get", resource: R.resource, namespace: namespace, name: name)
        let data = try await perform(what, method: "GET", path: Self.path(R.resource, namespace: namespace, name: name))
        return try Self.decode(R.self, data, what)
    }

    /// One page of a list.
    public func listPage<R: KubeResource>(
        _ type: R.Type, options: ListOptions = ListOptions(), limit: Int? = nil, continue token: String? = nil,
        resourceVersion: String? = nil, resourceVersionMatch: String? = nil
    ) async throws -> KubeList<R> {
        let what = RequestDescription(verb: "list", resource: R.resource, namespace: options.namespace)
        let q = Self.query([
            ("labelSelector", options.labelSelector), ("fieldSelector", options.fieldSelector),
            ("limit", limit.map(String.init)), ("continue", token),
            ("resourceVersion", resourceVersion), ("resourceVersionMatch", resourceVersionMatch),
        ])
        let data = try await perform(what, method: "GET", path: Self.path(R.resource, namespace: options.namespace) + q)
        return try Self.decode(KubeList<R>.self, data, what)
    }

    /// The whole list, following `continue` pages (`limit` items each). All pages are served at
    /// the first page's resourceVersion, which is returned.
    public func list<R: KubeResource>(_ type: R.Type, options: ListOptions = ListOptions(), pageSize: Int = 500) async throws -> ListResult<R> {
        var items: [R] = []
        var token: String?
        var resourceVersion = ""
        repeat {
            let page = try await listPage(R.self, options: options, limit: pageSize, continue: token)
            items.append(contentsOf: page.items)
            if token == nil { resourceVersion = page.metadata.resourceVersion ?? "" }
            token = page.metadata.continue.flatMap { $0.isEmpty ? nil : $0 }
        } while token != nil
        return ListResult(items: items, resourceVersion: resourceVersion)
    }

    /// POST a new object; returns what the server stored.
    public func create<R: KubeResource>(_ object: R, namespace: String? = nil) async throws -> R {
        let ns = namespace ?? object.metadata.namespace
        let what = RequestDescription(verb: "create", resource: R.resource, namespace: ns, name: object.metadata.name)
        let body = try Self.encodeWithKind(object)
        let data = try await perform(what, method: "POST", path: Self.path(R.resource, namespace: ns), body: body, contentType: "application/json")
        return try Self.decode(R.self, data, what)
    }

    /// PATCH the status subresource with a JSON merge patch (`{"status": {...}}`).
    public func patchStatus<R: KubeResource>(_ type: R.Type, name: String, namespace: String? = nil, mergePatch: Data) async throws -> R {
        let what = RequestDescription(verb: "patch", resource: R.resource, namespace: namespace, name: name)
        let data = try await perform(
            what, method: "PATCH", path: Self.path(R.resource, namespace: namespace, name: name, subresource: "status"),
            body: mergePatch, contentType: "application/merge-patch+json")
        return try Self.decode(R.self, data, what)
    }

    /// PATCH the status subresource with `{"status": <status>}`.
    public func patchStatus<R: KubeResource, S: Encodable>(_ type: R.Type, name: String, namespace: String? = nil, status: S) async throws -> R {
        try await patchStatus(R.self, name: name, namespace: namespace, mergePatch: try JSONEncoder().encode(StatusPatch(status: status)))
    }

    /// DELETE one object.
    public func delete<R: KubeResource>(_ type: R.Type, name: String, namespace: String? = nil) async throws {
        let what = RequestDescription(verb: "delete", resource: R.resource, namespace: namespace, name: name)
        _ = try await perform(what, method: "DELETE", path: Self.path(R.resource, namespace: namespace, name: name))
    }

    /// Encodes an object with the `kind` and `apiVersion` the slim models leave out.
    static func encodeWithKind<R: KubeResource>(_ object: R) throws -> Data {
        let data = try JSONEncoder().encode(object)
        guard var dict = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { return data }
        dict["kind"] = R.resource.kind
        dict["apiVersion"] = R.resource.apiVersion
        return try JSONSerialization.data(withJSONObject: dict, options: [.sortedKeys])
    }
}

/// The body of a status merge patch.
struct StatusPatch<S: Encodable>: Encodable {
    var status: S
}
