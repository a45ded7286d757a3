// Slim models of the Gateway API (gateway.networking.k8s.io) objects Portway reads and writes.
// Only the fields Portway uses; unknown fields are ignored when decoding, except in an HTTPRoute's
// spec, where the models record them (`unknownFields`, UnknownFields.swift): the route is refused
// rather than served without them.

/// A standard `metav1.Condition`, as used in Gateway API statuses.
public struct Condition: Codable, Hashable, Sendable {
    public var type: String
    /// "True", "False" or "Unknown".
    public var status: String
    public var reason: String?
    public var message: String?
    public var lastTransitionTime: String?
    public var observedGeneration: Int64?

    public init(type: String, status: String, reason: String? = nil, message: String? = nil, lastTransitionTime: String? = nil, observedGeneration: Int64? = nil) {
        self.type = type
        self.status = status
        self.reason = reason
        self.message = message
        self.lastTransitionTime = lastTransitionTime
        self.observedGeneration = observedGeneration
    }
}

/// gateway.networking.k8s.io/v1 GatewayClass (cluster-scoped).
public struct GatewayClass: KubeResource, Hashable {
    public static let resource = ResourceDescriptor(group: "gateway.networking.k8s.io", version: "v1", plural: "gatewayclasses", kind: "GatewayClass", namespaced: false)
    public var metadata: ObjectMeta
    public var spec: GatewayClassSpec
    public var status: GatewayClassStatus?

    public init(metadata: ObjectMeta, spec: GatewayClassSpec, status: GatewayClassStatus? = nil) {
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }
}

public struct GatewayClassSpec: Codable, Hashable, Sendable {
    public var controllerName: String
    public var description: String?
    public init(controllerName: String, description: String? = nil) {
        self.controllerName = controllerName
        self.description = description
    }
}

public struct GatewayClassStatus: Codable, Hashable, Sendable {
    public var conditions: [Condition]?
    /// The conformance features the class's controller supports, sorted by name (v1.2+ shape:
    /// objects with a `name`).
    public var supportedFeatures: [SupportedFeature]?
    public init(conditions: [Condition]? = nil, supportedFeatures: [SupportedFeature]? = nil) {
        self.conditions = conditions
        self.supportedFeatures = supportedFeatures
    }
}

/// One `status.supportedFeatures` entry of a GatewayClass.
public struct SupportedFeature: Codable, Hashable, Sendable {
    public var name: String
    public init(name: String) { self.name = name }
}

/// gateway.networking.k8s.io/v1 Gateway.
public struct Gateway: KubeResource, Hashable {
    public static let resource = ResourceDescriptor(group: "gateway.networking.k8s.io", version: "v1", plural: "gateways", kind: "Gateway", namespaced: true)
    public var metadata: ObjectMeta
    public var spec: GatewaySpec
    public var status: GatewayStatus?

    public init(metadata: ObjectMeta, spec: GatewaySpec, status: GatewayStatus? = nil) {
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }
}

public struct GatewaySpec: Codable, Hashable, Sendable {
    public var gatewayClassName: String
    public var listeners: [Listener]
    public var addresses: [GatewayAddress]?
    /// `spec.infrastructure`: what the implementation's own objects carry, and its parameters.
    public var infrastructure: GatewayInfrastructure?
    /// `spec.allowedListeners`: which ListenerSets may attach (nil: none, the spec's default).
    public var allowedListeners: AllowedListeners?
    /// `spec.tls`: the Gateway-wide TLS settings (its frontend client certificate validation).
    public var tls: GatewayWideTLSConfig?

    public init(
        gatewayClassName: String, listeners: [Listener], addresses: [GatewayAddress]? = nil, infrastructure: GatewayInfrastructure? = nil,
        allowedListeners: AllowedListeners? = nil, tls: GatewayWideTLSConfig? = nil
    ) {
        self.gatewayClassName = gatewayClassName
        self.listeners = listeners
        self.addresses = addresses
        self.infrastructure = infrastructure
        self.allowedListeners = allowedListeners
        self.tls = tls
    }
}

/// A Gateway's `spec.tls` (`GatewayTLSConfig` upstream; this name keeps the listener's
/// `GatewayTLSConfig`): only `frontend` is read (`backend`, the Gateway's client certificate
/// towards backends, is not supported).
public struct GatewayWideTLSConfig: Codable, Hashable, Sendable {
    public var frontend: FrontendTLSConfig?
    public init(frontend: FrontendTLSConfig? = nil) { self.frontend = frontend }
}

/// `spec.tls.frontend`: client certificate validation for every HTTPS listener (`default`), or
/// for those on one port (`perPort`, which replaces the default there).
public struct FrontendTLSConfig: Codable, Hashable, Sendable {
    public var `default`: FrontendTLSSettings?
    public var perPort: [FrontendTLSPortConfig]?
    public init(default: FrontendTLSSettings? = nil, perPort: [FrontendTLSPortConfig]? = nil) {
        self.default = `default`
        self.perPort = perPort
    }
}

/// `TLSConfig` upstream: the frontend settings applied to a set of listeners.
public struct FrontendTLSSettings: Codable, Hashable, Sendable {
    public var validation: FrontendTLSValidation?
    public init(validation: FrontendTLSValidation? = nil) { self.validation = validation }
}

/// One `spec.tls.frontend.perPort` entry.
public struct FrontendTLSPortConfig: Codable, Hashable, Sendable {
    public var port: Int
    public var tls: FrontendTLSSettings
    public init(port: Int, tls: FrontendTLSSettings) {
        self.port = port
        self.tls = tls
    }
}

/// `validation`: the CA certificates client certificates must chain to, and what happens without one.
public struct FrontendTLSValidation: Codable, Hashable, Sendable {
    /// Core: one ConfigMap (group "") with the PEM bundle under `ca.crt`.
    public var caCertificateRefs: [ObjectReference]
    /// AllowValidOnly (the default) or AllowInsecureFallback.
    public var mode: String?
    public init(caCertificateRefs: [ObjectReference], mode: String? = nil) {
        self.caCertificateRefs = caCertificateRefs
        self.mode = mode
    }

    /// `mode` values.
    public static let allowValidOnly = "AllowValidOnly"
    public static let allowInsecureFallback = "AllowInsecureFallback"
}

/// A reference to an object by group, kind and name, possibly in another namespace (`ObjectReference` upstream).
public struct ObjectReference: Codable, Hashable, Sendable {
    /// "" (the core group) when absent.
    public var group: String?
    public var kind: String
    public var name: String
    public var namespace: String?
    public init(group: String? = "", kind: String, name: String, namespace: String? = nil) {
        self.group = group
        self.kind = kind
        self.name = name
        self.namespace = namespace
    }
}

/// `spec.allowedListeners` of a Gateway: the namespaces whose ListenerSets may attach.
public struct AllowedListeners: Codable, Hashable, Sendable {
    /// `from`: All, Same, Selector or None (the default).
    public var namespaces: RouteNamespaces?
    public init(namespaces: RouteNamespaces? = nil) { self.namespaces = namespaces }
}

/// gateway.networking.k8s.io/v1 ListenerSet (GEP-1713, standard since v1.5): listeners added to
/// a Gateway (its `parentRef`) that allows them (`spec.allowedListeners`).
public struct ListenerSet: KubeResource, Hashable {
    public static let resource = ResourceDescriptor(group: "gateway.networking.k8s.io", version: "v1", plural: "listenersets", kind: "ListenerSet", namespaced: true)
    public var metadata: ObjectMeta
    public var spec: ListenerSetSpec
    public var status: ListenerSetStatus?

    public init(metadata: ObjectMeta, spec: ListenerSetSpec, status: ListenerSetStatus? = nil) {
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }
}

public struct ListenerSetSpec: Codable, Hashable, Sendable {
    public var parentRef: ListenerSetParentReference
    /// Same fields as a Gateway's listeners (`ListenerEntry`).
    public var listeners: [Listener]
    public init(parentRef: ListenerSetParentReference, listeners: [Listener]) {
        self.parentRef = parentRef
        self.listeners = listeners
    }
}

/// A ListenerSet's `spec.parentRef`: a Gateway (group and kind default to the Gateway API's
/// Gateway, the namespace to the ListenerSet's).
public struct ListenerSetParentReference: Codable, Hashable, Sendable {
    public var group: String?
    public var kind: String?
    public var namespace: String?
    public var name: String
    public init(group: String? = nil, kind: String? = nil, namespace: String? = nil, name: String) {
        self.group = group
        self.kind = kind
        self.namespace = namespace
        self.name = name
    }
}

public struct ListenerSetStatus: Codable, Hashable, Sendable {
    public var conditions: [Condition]?
    public var listeners: [ListenerStatus]?
    public init(conditions: [Condition]? = nil, listeners: [ListenerStatus]? = nil) {
        self.conditions = conditions
        self.listeners = listeners
    }
}

/// `spec.infrastructure` of a Gateway.
public struct GatewayInfrastructure: Codable, Hashable, Sendable {
    public var labels: [String: String]?
    public var annotations: [String: String]?
    /// Implementation-specific parameters (Portway has none to name).
    public var parametersRef: LocalParametersReference?
    public init(labels: [String: String]? = nil, annotations: [String: String]? = nil, parametersRef: LocalParametersReference? = nil) {
        self.labels = labels
        self.annotations = annotations
        self.parametersRef = parametersRef
    }
}

/// A reference to an object in the Gateway's namespace by group, kind and name.
public struct LocalParametersReference: Codable, Hashable, Sendable {
    public var group: String
    public var kind: String
    public var name: String
    public init(group: String, kind: String, name: String) {
        self.group = group
        self.kind = kind
        self.name = name
    }
}

public struct Listener: Codable, Hashable, Sendable {
    public var name: String
    public var hostname: String?
    public var port: Int
    /// HTTP, HTTPS, TLS, TCP, UDP.
    public var `protocol`: String
    public var allowedRoutes: AllowedRoutes?
    /// HTTPS and TLS listeners: how TLS is handled and with which certificates.
    public var tls: GatewayTLSConfig?

    public init(name: String, hostname: String? = nil, port: Int, protocol: String, allowedRoutes: AllowedRoutes? = nil, tls: GatewayTLSConfig? = nil) {
        self.name = name
        self.hostname = hostname
        self.port = port
        self.protocol = `protocol`
        self.allowedRoutes = allowedRoutes
        self.tls = tls
    }
}

/// `listeners[].tls`.
public struct GatewayTLSConfig: Codable, Hashable, Sendable {
    /// Terminate (default) or Passthrough.
    public var mode: String?
    public var certificateRefs: [SecretObjectReference]?
    public init(mode: String? = nil, certificateRefs: [SecretObjectReference]? = nil) {
        self.mode = mode
        self.certificateRefs = certificateRefs
    }
}

/// A reference to a Secret (group "" and kind "Secret" by default), possibly in another namespace.
public struct SecretObjectReference: Codable, Hashable, Sendable {
    public var group: String?
    public var kind: String?
    public var name: String
    public var namespace: String?
    public init(group: String? = nil, kind: String? = nil, name: String, namespace: String? = nil) {
        self.group = group
        self.kind = kind
        self.name = name
        self.namespace = namespace
    }
}

public struct AllowedRoutes: Codable, Hashable, Sendable {
    public var namespaces: RouteNamespaces?
    public var kinds: [RouteGroupKind]?
    public init(namespaces: RouteNamespaces? = nil, kinds: [RouteGroupKind]? = nil) {
        self.namespaces = namespaces
        self.kinds = kinds
    }
}

public struct RouteNamespaces: Codable, Hashable, Sendable {
    /// All, Same (default) or Selector.
    public var from: String?
    public var selector: LabelSelector?
    public init(from: String? = nil, selector: LabelSelector? = nil) {
        self.from = from
        self.selector = selector
    }
}

public struct RouteGroupKind: Codable, Hashable, Sendable {
    public var group: String?
    public var kind: String
    public init(group: String? = nil, kind: String) {
        self.group = group
        self.kind = kind
    }
}

/// meta/v1 LabelSelector.
public struct LabelSelector: Codable, Hashable, Sendable {
    public var matchLabels: [String: String]?
    public var matchExpressions: [LabelSelectorRequirement]?
    public init(matchLabels: [String: String]? = nil, matchExpressions: [LabelSelectorRequirement]? = nil) {
        self.matchLabels = matchLabels
        self.matchExpressions = matchExpressions
    }
}

public struct LabelSelectorRequirement: Codable, Hashable, Sendable {
    public var key: String
    /// In, NotIn, Exists, DoesNotExist.
    public var `operator`: String
    public var values: [String]?
    public init(key: String, operator: String, values: [String]? = nil) {
        self.key = key
        self.operator = `operator`
        self.values = values
    }
}

public struct GatewayAddress: Codable, Hashable, Sendable {
    /// IPAddress (default) or Hostname.
    public var type: String?
    /// Absent or empty in `spec.addresses`: any address of that type, the implementation's choice
    /// (GatewayAddressEmpty). Always set in `status.addresses`.
    public var value: String?
    public init(type: String? = nil, value: String?) {
        self.type = type
        self.value = value
    }
}

public struct GatewayStatus: Codable, Hashable, Sendable {
    public var addresses: [GatewayAddress]?
    public var conditions: [Condition]?
    public var listeners: [ListenerStatus]?
    /// How many ListenerSets are attached (accepted); nil when the Gateway allows none.
    public var attachedListenerSets: Int?
    public init(addresses: [GatewayAddress]? = nil, conditions: [Condition]? = nil, listeners: [ListenerStatus]? = nil, attachedListenerSets: Int? = nil) {
        self.addresses = addresses
        self.conditions = conditions
        self.listeners = listeners
        self.attachedListenerSets = attachedListenerSets
    }
}

public struct ListenerStatus: Codable, Hashable, Sendable {
    public var name: String
    public var supportedKinds: [RouteGroupKind]
    public var attachedRoutes: Int
    public var conditions: [Condition]
    public init(name: String, supportedKinds: [RouteGroupKind], attachedRoutes: Int, conditions: [Condition]) {
        self.name = name
        self.supportedKinds = supportedKinds
        self.attachedRoutes = attachedRoutes
        self.conditions = conditions
    }
}

/// gateway.networking.k8s.io/v1 HTTPRoute.
public struct HTTPRoute: KubeResource, Hashable {
    public static let resource = ResourceDescriptor(group: "gateway.networking.k8s.io", version: "v1", plural: "httproutes", kind: "HTTPRoute", namespaced: true)
    public var metadata: ObjectMeta
    public var spec: HTTPRouteSpec
    public var status: HTTPRouteStatus?

    public init(metadata: ObjectMeta, spec: HTTPRouteSpec, status: HTTPRouteStatus? = nil) {
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }
}

public struct HTTPRouteSpec: Codable, Hashable, Sendable {
    public var parentRefs: [ParentReference]?
    public var hostnames: [String]?
    public var rules: [HTTPRouteRule]?
    /// Fields of the object the model does not know (never encoded).
    public var unknownFields: [String] = []
    public init(parentRefs: [ParentReference]? = nil, hostnames: [String]? = nil, rules: [HTTPRouteRule]? = nil) {
        self.parentRefs = parentRefs
        self.hostnames = hostnames
        self.rules = rules
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case parentRefs, hostnames, rules }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        parentRefs = try c.decodeIfPresent([ParentReference].self, forKey: .parentRefs)
        hostnames = try c.decodeIfPresent([String].self, forKey: .hostnames)
        rules = try c.decodeIfPresent([HTTPRouteRule].self, forKey: .rules)
        unknownFields = try decoder.unknownKeys(besides: CodingKeys.self)
    }
}

public struct ParentReference: Codable, Hashable, Sendable {
    public var group: String?
    public var kind: String?
    public var namespace: String?
    public var name: String
    public var sectionName: String?
    public var port: Int?
    public init(group: String? = nil, kind: String? = nil, namespace: String? = nil, name: String, sectionName: String? = nil, port: Int? = nil) {
        self.group = group
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.sectionName = sectionName
        self.port = port
    }
}

public struct HTTPRouteRule: Codable, Hashable, Sendable {
    public var name: String?
    public var matches: [HTTPRouteMatch]?
    public var filters: [HTTPRouteFilter]?
    public var backendRefs: [HTTPBackendRef]?
    public var timeouts: HTTPRouteTimeouts?
    /// `rules[].retry` (v1.6: codes, attempts, backoff).
    public var retry: HTTPRouteRetry?
    /// Fields of the object the model does not know (never encoded), e.g. `sessionPersistence`.
    public var unknownFields: [String] = []
    public init(
        name: String? = nil, matches: [HTTPRouteMatch]? = nil, filters: [HTTPRouteFilter]? = nil, backendRefs: [HTTPBackendRef]? = nil,
        timeouts: HTTPRouteTimeouts? = nil, retry: HTTPRouteRetry? = nil
    ) {
        self.name = name
        self.matches = matches
        self.filters = filters
        self.backendRefs = backendRefs
        self.timeouts = timeouts
        self.retry = retry
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case name, matches, filters, backendRefs, timeouts, retry }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        matches = try c.decodeIfPresent([HTTPRouteMatch].self, forKey: .matches)
        filters = try c.decodeIfPresent([HTTPRouteFilter].self, forKey: .filters)
        backendRefs = try c.decodeIfPresent([HTTPBackendRef].self, forKey: .backendRefs)
        timeouts = try c.decodeIfPresent(HTTPRouteTimeouts.self, forKey: .timeouts)
        retry = try c.decodeIfPresent(HTTPRouteRetry.self, forKey: .retry)
        unknownFields = try decoder.unknownKeys(besides: CodingKeys.self)
    }
}

/// `rules[].timeouts`: Gateway API Durations (GEP-2257, e.g. `500ms`, `1h2m3s`), validated when the
/// route tables are built.
public struct HTTPRouteTimeouts: Codable, Hashable, Sendable {
    public var request: String?
    public var backendRequest: String?
    public init(request: String? = nil, backendRequest: String? = nil) {
        self.request = request
        self.backendRequest = backendRequest
    }
}

/// `rules[].retry`: the response codes retried, the retries at most (`attempts`) and the least wait
/// between attempts (`backoff`, a Gateway API Duration), validated when the route tables are built.
public struct HTTPRouteRetry: Codable, Hashable, Sendable {
    public var codes: [Int]?
    public var attempts: Int?
    public var backoff: String?
    /// Fields of the object the model does not know (never encoded).
    public var unknownFields: [String] = []
    public init(codes: [Int]? = nil, attempts: Int? = nil, backoff: String? = nil) {
        self.codes = codes
        self.attempts = attempts
        self.backoff = backoff
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case codes, attempts, backoff }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        codes = try c.decodeIfPresent([Int].self, forKey: .codes)
        attempts = try c.decodeIfPresent(Int.self, forKey: .attempts)
        backoff = try c.decodeIfPresent(String.self, forKey: .backoff)
        unknownFields = try decoder.unknownKeys(besides: CodingKeys.self)
    }
}

public struct HTTPRouteMatch: Codable, Hashable, Sendable {
    public var path: HTTPPathMatch?
    public var headers: [HTTPHeaderMatch]?
    public var queryParams: [HTTPHeaderMatch]?
    public var method: String?
    /// Fields of the object the model does not know (never encoded).
    public var unknownFields: [String] = []
    public init(path: HTTPPathMatch? = nil, headers: [HTTPHeaderMatch]? = nil, queryParams: [HTTPHeaderMatch]? = nil, method: String? = nil) {
        self.path = path
        self.headers = headers
        self.queryParams = queryParams
        self.method = method
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case path, headers, queryParams, method }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        path = try c.decodeIfPresent(HTTPPathMatch.self, forKey: .path)
        headers = try c.decodeIfPresent([HTTPHeaderMatch].self, forKey: .headers)
        queryParams = try c.decodeIfPresent([HTTPHeaderMatch].self, forKey: .queryParams)
        method = try c.decodeIfPresent(String.self, forKey: .method)
        unknownFields = try decoder.unknownKeys(besides: CodingKeys.self)
    }
}

public struct HTTPPathMatch: Codable, Hashable, Sendable {
    /// Exact, PathPrefix (default) or RegularExpression.
    public var type: String?
    public var value: String?
    public init(type: String? = nil, value: String? = nil) {
        self.type = type
        self.value = value
    }
}

/// A header or query parameter match.
public struct HTTPHeaderMatch: Codable, Hashable, Sendable {
    /// Exact (default) or RegularExpression.
    public var type: String?
    public var name: String
    public var value: String
    public init(type: String? = nil, name: String, value: String) {
        self.type = type
        self.name = name
        self.value = value
    }
}

public struct HTTPRouteFilter: Codable, Hashable, Sendable {
    /// RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect, URLRewrite, RequestMirror, ExtensionRef.
    public var type: String
    public var requestHeaderModifier: HTTPHeaderFilter?
    public var responseHeaderModifier: HTTPHeaderFilter?
    public var requestRedirect: HTTPRequestRedirectFilter?
    public var urlRewrite: HTTPURLRewriteFilter?
    public var requestMirror: HTTPRequestMirrorFilter?
    public var cors: HTTPCORSFilter?
    /// Fields of the object the model does not know (never encoded), e.g. `extensionRef`.
    public var unknownFields: [String] = []
    public init(
        type: String, requestHeaderModifier: HTTPHeaderFilter? = nil, responseHeaderModifier: HTTPHeaderFilter? = nil,
        requestRedirect: HTTPRequestRedirectFilter? = nil, urlRewrite: HTTPURLRewriteFilter? = nil, requestMirror: HTTPRequestMirrorFilter? = nil,
        cors: HTTPCORSFilter? = nil
    ) {
        self.type = type
        self.requestHeaderModifier = requestHeaderModifier
        self.responseHeaderModifier = responseHeaderModifier
        self.requestRedirect = requestRedirect
        self.urlRewrite = urlRewrite
        self.requestMirror = requestMirror
        self.cors = cors
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case type, requestHeaderModifier, responseHeaderModifier, requestRedirect, urlRewrite, requestMirror, cors
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decode(String.self, forKey: .type)
        requestHeaderModifier = try c.decodeIfPresent(HTTPHeaderFilter.self, forKey: .requestHeaderModifier)
        responseHeaderModifier = try c.decodeIfPresent(HTTPHeaderFilter.self, forKey: .responseHeaderModifier)
        requestRedirect = try c.decodeIfPresent(HTTPRequestRedirectFilter.self, forKey: .requestRedirect)
        urlRewrite = try c.decodeIfPresent(HTTPURLRewriteFilter.self, forKey: .urlRewrite)
        requestMirror = try c.decodeIfPresent(HTTPRequestMirrorFilter.self, forKey: .requestMirror)
        cors = try c.decodeIfPresent(HTTPCORSFilter.self, forKey: .cors)
        unknownFields = try decoder.unknownKeys(besides: CodingKeys.self)
    }
}

/// The RequestMirror filter: a copy of each request (or of `percent` / `fraction` of them) to
/// `backendRef`, whose answer is ignored. The backendRef is a BackendObjectReference (no weight,
/// no filters).
public struct HTTPRequestMirrorFilter: Codable, Hashable, Sendable {
    public var backendRef: HTTPBackendRef
    public var percent: Int?
    public var fraction: GatewayFraction?
    /// Fields of the object the model does not know (never encoded).
    public var unknownFields: [String] = []
    public init(backendRef: HTTPBackendRef, percent: Int? = nil, fraction: GatewayFraction? = nil) {
        self.backendRef = backendRef
        self.percent = percent
        self.fraction = fraction
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case backendRef, percent, fraction }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        backendRef = try c.decode(HTTPBackendRef.self, forKey: .backendRef)
        percent = try c.decodeIfPresent(Int.self, forKey: .percent)
        fraction = try c.decodeIfPresent(GatewayFraction.self, forKey: .fraction)
        unknownFields = try decoder.unknownKeys(besides: CodingKeys.self)
    }
}

/// The CORS filter (v1.6): which origins may read the responses, with which methods and headers.
public struct HTTPCORSFilter: Codable, Hashable, Sendable {
    public var allowOrigins: [String]?
    public var allowCredentials: Bool?
    public var allowMethods: [String]?
    public var allowHeaders: [String]?
    public var exposeHeaders: [String]?
    public var maxAge: Int?
    /// Fields of the object the model does not know (never encoded).
    public var unknownFields: [String] = []
    public init(
        allowOrigins: [String]? = nil, allowCredentials: Bool? = nil, allowMethods: [String]? = nil, allowHeaders: [String]? = nil,
        exposeHeaders: [String]? = nil, maxAge: Int? = nil
    ) {
        self.allowOrigins = allowOrigins
        self.allowCredentials = allowCredentials
        self.allowMethods = allowMethods
        self.allowHeaders = allowHeaders
        self.exposeHeaders = exposeHeaders
        self.maxAge = maxAge
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case allowOrigins, allowCredentials, allowMethods, allowHeaders, exposeHeaders, maxAge }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        allowOrigins = try c.decodeIfPresent([String].self, forKey: .allowOrigins)
        allowCredentials = try c.decodeIfPresent(Bool.self, forKey: .allowCredentials)
        allowMethods = try c.decodeIfPresent([String].self, forKey: .allowMethods)
        allowHeaders = try c.decodeIfPresent([String].self, forKey: .allowHeaders)
        exposeHeaders = try c.decodeIfPresent([String].self, forKey: .exposeHeaders)
        maxAge = try c.decodeIfPresent(Int.self, forKey: .maxAge)
        unknownFields = try decoder.unknownKeys(besides: CodingKeys.self)
    }
}

/// The Gateway API `Fraction`: numerator / denominator (100 when absent).
public struct GatewayFraction: Codable, Hashable, Sendable {
    public var numerator: Int
    public var denominator: Int?
    public init(numerator: Int, denominator: Int? = nil) {
        self.numerator = numerator
        self.denominator = denominator
    }
}

public struct HTTPHeader: Codable, Hashable, Sendable {
    public var name: String
    public var value: String
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

public struct HTTPHeaderFilter: Codable, Hashable, Sendable {
    public var set: [HTTPHeader]?
    public var add: [HTTPHeader]?
    public var remove: [String]?
    public init(set: [HTTPHeader]? = nil, add: [HTTPHeader]? = nil, remove: [String]? = nil) {
        self.set = set
        self.add = add
        self.remove = remove
    }
}

public struct HTTPPathModifier: Codable, Hashable, Sendable {
    /// ReplaceFullPath or ReplacePrefixMatch.
    public var type: String
    public var replaceFullPath: String?
    public var replacePrefixMatch: String?
    public init(type: String, replaceFullPath: String? = nil, replacePrefixMatch: String? = nil) {
        self.type = type
        self.replaceFullPath = replaceFullPath
        self.replacePrefixMatch = replacePrefixMatch
    }
}

public struct HTTPRequestRedirectFilter: Codable, Hashable, Sendable {
    public var scheme: String?
    public var hostname: String?
    public var path: HTTPPathModifier?
    public var port: Int?
    public var statusCode: Int?
    /// Fields of the object the model does not know (never encoded).
    public var unknownFields: [String] = []
    public init(scheme: String? = nil, hostname: String? = nil, path: HTTPPathModifier? = nil, port: Int? = nil, statusCode: Int? = nil) {
        self.scheme = scheme
        self.hostname = hostname
        self.path = path
        self.port = port
        self.statusCode = statusCode
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case scheme, hostname, path, port, statusCode }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        scheme = try c.decodeIfPresent(String.self, forKey: .scheme)
        hostname = try c.decodeIfPresent(String.self, forKey: .hostname)
        path = try c.decodeIfPresent(HTTPPathModifier.self, forKey: .path)
        port = try c.decodeIfPresent(Int.self, forKey: .port)
        statusCode = try c.decodeIfPresent(Int.self, forKey: .statusCode)
        unknownFields = try decoder.unknownKeys(besides: CodingKeys.self)
    }
}

public struct HTTPURLRewriteFilter: Codable, Hashable, Sendable {
    public var hostname: String?
    public var path: HTTPPathModifier?
    /// Fields of the object the model does not know (never encoded).
    public var unknownFields: [String] = []
    public init(hostname: String? = nil, path: HTTPPathModifier? = nil) {
        self.hostname = hostname
        self.path = path
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case hostname, path }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        hostname = try c.decodeIfPresent(String.self, forKey: .hostname)
        path = try c.decodeIfPresent(HTTPPathModifier.self, forKey: .path)
        unknownFields = try decoder.unknownKeys(besides: CodingKeys.self)
    }
}

public struct HTTPBackendRef: Codable, Hashable, Sendable {
    public var group: String?
    public var kind: String?
    public var name: String
    public var namespace: String?
    public var port: Int?
    public var weight: Int?
    public var filters: [HTTPRouteFilter]?
    /// Fields of the object the model does not know (never encoded).
    public var unknownFields: [String] = []
    public init(group: String? = nil, kind: String? = nil, name: String, namespace: String? = nil, port: Int? = nil, weight: Int? = nil, filters: [HTTPRouteFilter]? = nil) {
        self.group = group
        self.kind = kind
        self.name = name
        self.namespace = namespace
        self.port = port
        self.weight = weight
        self.filters = filters
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case group, kind, name, namespace, port, weight, filters }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        group = try c.decodeIfPresent(String.self, forKey: .group)
        kind = try c.decodeIfPresent(String.self, forKey: .kind)
        name = try c.decode(String.self, forKey: .name)
        namespace = try c.decodeIfPresent(String.self, forKey: .namespace)
        port = try c.decodeIfPresent(Int.self, forKey: .port)
        weight = try c.decodeIfPresent(Int.self, forKey: .weight)
        filters = try c.decodeIfPresent([HTTPRouteFilter].self, forKey: .filters)
        unknownFields = try decoder.unknownKeys(besides: CodingKeys.self)
    }
}

public struct HTTPRouteStatus: Codable, Hashable, Sendable {
    public var parents: [RouteParentStatus]?
    public init(parents: [RouteParentStatus]? = nil) { self.parents = parents }
}

public struct RouteParentStatus: Codable, Hashable, Sendable {
    public var parentRef: ParentReference
    public var controllerName: String
    public var conditions: [Condition]?
    public init(parentRef: ParentReference, controllerName: String, conditions: [Condition]? = nil) {
        self.parentRef = parentRef
        self.controllerName = controllerName
        self.conditions = conditions
    }
}

/// gateway.networking.k8s.io/v1beta1 ReferenceGrant: allows references into its namespace.
public struct ReferenceGrant: KubeResource, Hashable {
    public static let resource = ResourceDescriptor(group: "gateway.networking.k8s.io", version: "v1beta1", plural: "referencegrants", kind: "ReferenceGrant", namespaced: true)
    public var metadata: ObjectMeta
    public var spec: ReferenceGrantSpec

    public init(metadata: ObjectMeta, spec: ReferenceGrantSpec) {
        self.metadata = metadata
        self.spec = spec
    }
}

public struct ReferenceGrantSpec: Codable, Hashable, Sendable {
    public var from: [ReferenceGrantFrom]
    public var to: [ReferenceGrantTo]
    public init(from: [ReferenceGrantFrom], to: [ReferenceGrantTo]) {
        self.from = from
        self.to = to
    }
}

public struct ReferenceGrantFrom: Codable, Hashable, Sendable {
    public var group: String
    public var kind: String
    public var namespace: String
    public init(group: String, kind: String, namespace: String) {
        self.group = group
        self.kind = kind
        self.namespace = namespace
    }
}

public struct ReferenceGrantTo: Codable, Hashable, Sendable {
    public var group: String
    public var kind: String
    public var name: String?
    public init(group: String, kind: String, name: String? = nil) {
        self.group = group
        self.kind = kind
        self.name = name
    }
}

/// gateway.networking.k8s.io/v1 BackendTLSPolicy (GEP-1897): how the Gateway's proxy connects to a
/// Service's port over TLS (the CA certificates that verify the backend, the SNI and the names its
/// certificate must carry). `options` are implementation-specific; Portway defines none and
/// ignores them.
public struct BackendTLSPolicy: KubeResource, Hashable {
    public static let resource = ResourceDescriptor(
        group: "gateway.networking.k8s.io", version: "v1", plural: "backendtlspolicies", kind: "BackendTLSPolicy", namespaced: true)
    public var metadata: ObjectMeta
    public var spec: BackendTLSPolicySpec
    public var status: PolicyStatus?

    public init(metadata: ObjectMeta, spec: BackendTLSPolicySpec, status: PolicyStatus? = nil) {
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }
}

public struct BackendTLSPolicySpec: Codable, Hashable, Sendable {
    public var targetRefs: [PolicyTargetReference]
    public var validation: BackendTLSPolicyValidation
    /// Implementation-specific keys; Portway defines none (they are ignored).
    public var options: [String: String]?
    public init(targetRefs: [PolicyTargetReference], validation: BackendTLSPolicyValidation, options: [String: String]? = nil) {
        self.targetRefs = targetRefs
        self.validation = validation
        self.options = options
    }
}

/// `LocalPolicyTargetReferenceWithSectionName`: an object in the policy's namespace (a Service),
/// optionally one section of it (a Service port, by name).
public struct PolicyTargetReference: Codable, Hashable, Sendable {
    public var group: String
    public var kind: String
    public var name: String
    public var sectionName: String?
    public init(group: String = "", kind: String = "Service", name: String, sectionName: String? = nil) {
        self.group = group
        self.kind = kind
        self.name = name
        self.sectionName = sectionName
    }
}

public struct BackendTLSPolicyValidation: Codable, Hashable, Sendable {
    /// ConfigMaps (group "") in the policy's namespace with the PEM bundle under `ca.crt`.
    public var caCertificateRefs: [LocalObjectReference]?
    /// "System": the system's trusted CA certificates (instead of caCertificateRefs).
    public var wellKnownCACertificates: String?
    /// The SNI, and the name the backend's certificate must carry unless `subjectAltNames` is set.
    public var hostname: String
    /// When set, the backend's certificate must carry one of these (and `hostname` is not checked).
    public var subjectAltNames: [SubjectAltName]?
    public init(
        caCertificateRefs: [LocalObjectReference]? = nil, wellKnownCACertificates: String? = nil, hostname: String,
        subjectAltNames: [SubjectAltName]? = nil
    ) {
        self.caCertificateRefs = caCertificateRefs
        self.wellKnownCACertificates = wellKnownCACertificates
        self.hostname = hostname
        self.subjectAltNames = subjectAltNames
    }

    /// The `wellKnownCACertificates` value Portway supports.
    public static let systemCACertificates = "System"
}

/// A reference to an object in the referrer's namespace.
public struct LocalObjectReference: Codable, Hashable, Sendable {
    public var group: String
    public var kind: String
    public var name: String
    public init(group: String = "", kind: String = "ConfigMap", name: String) {
        self.group = group
        self.kind = kind
        self.name = name
    }
}

/// One Subject Alternative Name a backend's certificate may carry: `Hostname` (a DNS name) or `URI`.
public struct SubjectAltName: Codable, Hashable, Sendable {
    public var type: String
    public var hostname: String?
    public var uri: String?
    public init(type: String, hostname: String? = nil, uri: String? = nil) {
        self.type = type
        self.hostname = hostname
        self.uri = uri
    }
}

/// A policy's status: one entry per ancestor (a Gateway) and controller.
public struct PolicyStatus: Codable, Hashable, Sendable {
    public var ancestors: [PolicyAncestorStatus]
    public init(ancestors: [PolicyAncestorStatus] = []) { self.ancestors = ancestors }
}

public struct PolicyAncestorStatus: Codable, Hashable, Sendable {
    public var ancestorRef: ParentReference
    public var controllerName: String
    public var conditions: [Condition]?
    public init(ancestorRef: ParentReference, controllerName: String, conditions: [Condition]? = nil) {
        self.ancestorRef = ancestorRef
        self.controllerName = controllerName
        self.conditions = conditions
    }
}
