import KubeModels

/// What decides which objects of a kind the agent watches: the node it runs for and its flags.
public struct WatchScope: Hashable, Sendable {
    public var nodeName: String
    public var endpointsSource: EndpointsSource
    /// False when `--node-ip` gives the node's addresses: the agent then reads no Node objects
    /// (and needs no RBAC on nodes).
    public var watchNode: Bool
    /// Whether the Gateway API kinds (and Namespaces, whose labels they select by) are watched.
    public var watchGateways: Bool

    public init(nodeName: String, endpointsSource: EndpointsSource = .endpointSlices, watchNode: Bool = true, watchGateways: Bool = true) {
        self.nodeName = nodeName
        self.endpointsSource = endpointsSource
        self.watchNode = watchNode
        self.watchGateways = watchGateways
    }
}

/// The list (and watch) selectors of a watched kind.
public struct ListSelectors: Hashable, Sendable {
    public var labelSelector: String?
    public var fieldSelector: String?

    public init(labelSelector: String? = nil, fieldSelector: String? = nil) {
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
    }
}

/// One watched kind, declared once: its model type (which carries the API path), its list
/// options, where it goes in a snapshot and which keys its changes touch (the `ClusterChange` it
/// makes, which `ClusterIndex` turns into touched keys). The API source (informers) and the file
/// source both read `ResourceRegistry.kinds`.
public struct ResourceKind<Resource: KubeResource & Hashable>: Sendable {
    /// The object's `kind` as files and the API name it ("Service").
    public var kind: String { Resource.resource.kind }
    /// True for a kind defined by a CRD that may not be installed: a list answering 404 means
    /// "none" (with a warning), not an error that holds back the first snapshot.
    public let optional: Bool
    /// True for a kind the agent can do without when RBAC refuses it: a list answering 403 means
    /// "none" (with a warning, retried later), so a missing grant does not hold back the first
    /// snapshot and the L4 half keeps working.
    public let forbiddenIsNone: Bool
    /// The list options in `scope`; nil when the kind is not watched there.
    public let selectors: @Sendable (WatchScope) -> ListSelectors?
    /// Puts an object into a snapshot.
    public let store: @Sendable (inout ClusterSnapshot, Resource) -> Void
    /// The objects of a kind in a snapshot.
    public let objects: @Sendable (ClusterSnapshot) -> [Resource]
    /// The change that stores `objects` (empty: deleted) under the name of `metadata`; nil for a
    /// kind no reconciler consumes yet.
    public let change: @Sendable (_ metadata: ObjectMeta, _ objects: [Resource]) -> ClusterChange?

    public init(
        _ type: Resource.Type, optional: Bool = false, forbiddenIsNone: Bool = false, selectors: @escaping @Sendable (WatchScope) -> ListSelectors? = { _ in ListSelectors() },
        store: @escaping @Sendable (inout ClusterSnapshot, Resource) -> Void,
        objects: @escaping @Sendable (ClusterSnapshot) -> [Resource],
        change: @escaping @Sendable (ObjectMeta, [Resource]) -> ClusterChange?
    ) {
        self.optional = optional
        self.forbiddenIsNone = forbiddenIsNone
        self.selectors = selectors
        self.store = store
        self.objects = objects
        self.change = change
    }
}

/// A `ResourceKind` of any model type, for lists of kinds; generic code opens it (`declaration`).
public protocol AnyResourceKind: Sendable {
    associatedtype Resource: KubeResource & Hashable
    var declaration: ResourceKind<Resource> { get }
    /// The object's `kind` ("Service").
    var kind: String { get }
}

extension ResourceKind: AnyResourceKind {
    public var declaration: ResourceKind<Resource> { self }
}

/// Every kind Portway watches. Adding one (Gateways, HTTPRoutes, ReferenceGrants, Namespaces,
/// Secrets, Pods) is one declaration here, its array in `ClusterSnapshot` and its `ClusterChange`.
public enum ResourceRegistry {
    /// As kube-proxy: Services of another proxy (service-proxy-name) or headless-labelled ones are never watched.
    public static let services = ResourceKind(
        Service.self, selectors: { _ in ListSelectors(labelSelector: KubeProxyRules.serviceLabelSelector) },
        store: { $0.services.append($1) }, objects: \.services,
        change: { .services(ObjectKey($0), $1) })

    public static let endpointSlices = ResourceKind(
        EndpointSlice.self, selectors: { $0.endpointsSource == .endpointSlices ? ListSelectors() : nil },
        store: { $0.endpointSlices.append($1) }, objects: \.endpointSlices,
        change: { .endpointSlices(ObjectKey($0), $1) })

    public static let endpoints = ResourceKind(
        Endpoints.self, selectors: { $0.endpointsSource == .endpoints ? ListSelectors() : nil },
        store: { $0.endpoints.append($1) }, objects: \.endpoints,
        change: { .endpoints(ObjectKey($0), $1) })

    /// Only the agent's own Node, and only when its addresses are not given on the command line.
    public static let nodes = ResourceKind(
        Node.self, selectors: { $0.watchNode ? ListSelectors(fieldSelector: "metadata.name=\($0.nodeName)") : nil },
        store: { $0.nodes.append($1) }, objects: \.nodes,
        change: { .nodes($0.name, $1) })

    // Gateway API kinds and what they refer to. Cluster mode watches them when `watchGateways`
    // (the default); the CRD-backed ones are `optional`: without the CRDs their lists answer 404,
    // which the informer takes as empty (one warning) and retries later, the L4 half unaffected.
    // A Gateway change touches its own key, an HTTPRoute its parent Gateways (`ClusterIndex.apply`).
    public static let gatewayClasses = ResourceKind(
        GatewayClass.self, optional: true, selectors: gatewaySelectors, store: { $0.gatewayClasses.append($1) }, objects: \.gatewayClasses,
        change: { .gatewayClasses($0.name, $1) })
    public static let gateways = ResourceKind(
        Gateway.self, optional: true, selectors: gatewaySelectors, store: { $0.gateways.append($1) }, objects: \.gateways,
        change: { .gateways(ObjectKey($0), $1) })
    public static let httpRoutes = ResourceKind(
        HTTPRoute.self, optional: true, selectors: gatewaySelectors, store: { $0.httpRoutes.append($1) }, objects: \.httpRoutes,
        change: { .httpRoutes(ObjectKey($0), $1) })
    public static let referenceGrants = ResourceKind(
        ReferenceGrant.self, optional: true, selectors: gatewaySelectors, store: { $0.referenceGrants.append($1) }, objects: \.referenceGrants,
        change: { .referenceGrants(ObjectKey($0), $1) })
    /// Namespace labels decide `allowedRoutes.namespaces.from: Selector`.
    public static let namespaces = ResourceKind(
        Namespace.self, selectors: gatewaySelectors, store: { $0.namespaces.append($1) }, objects: \.namespaces,
        change: { .namespaces($0.name, $1) })
    /// HTTPS listeners' certificateRefs: every node's proxy terminates TLS, so every agent reads
    /// them. Only `kubernetes.io/tls` Secrets are listed and watched (field selector `type=`, which
    /// the API server supports for Secrets); RBAC cannot narrow by type (manifests/portway.yaml).
    /// A change touches the Gateways whose listeners name the Secret. Without the RBAC grant (a
    /// list answering 403) there are none, with a warning: HTTPS listeners then stay unprogrammed.
    public static let secrets = ResourceKind(
        Secret.self, forbiddenIsNone: true, selectors: { $0.watchGateways ? ListSelectors(fieldSelector: tlsSecretFieldSelector) : nil },
        store: { $0.secrets.append($1) }, objects: \.secrets, change: { .secrets(ObjectKey($0), $1) })

    /// ListenerSets (v1 since Gateway API v1.5): a change touches its parent Gateway.
    public static let listenerSets = ResourceKind(
        ListenerSet.self, optional: true, selectors: gatewaySelectors, store: { $0.listenerSets.append($1) }, objects: \.listenerSets,
        change: { .listenerSets(ObjectKey($0), $1) })

    /// CA certificates of Gateways' frontend TLS validation (`spec.tls.frontend` caCertificateRefs,
    /// a ConfigMap's `ca.crt`): every node's proxy verifies client certificates, so every agent
    /// reads them. Neither the API (ConfigMaps have no useful field selector) nor RBAC can narrow
    /// ConfigMaps to the referenced ones, so every ConfigMap is watched; the model keeps only
    /// `ca.crt` and the name. A change touches the Gateways naming it. Without the RBAC grant (a
    /// list answering 403) there are none, with a warning: listeners asking for client
    /// certificate validation then stay unprogrammed (NoValidCACertificate), the rest is served.
    public static let configMaps = ResourceKind(
        ConfigMap.self, forbiddenIsNone: true, selectors: gatewaySelectors,
        store: { $0.configMaps.append($1) }, objects: \.configMaps, change: { .configMaps(ObjectKey($0), $1) })

    /// BackendTLSPolicies (v1 since Gateway API v1.4): TLS from every node's proxy to the Services
    /// they target. A change touches those Services (so the Gateways reading them are rebuilt).
    public static let backendTLSPolicies = ResourceKind(
        BackendTLSPolicy.self, optional: true, selectors: gatewaySelectors, store: { $0.backendTLSPolicies.append($1) },
        objects: \.backendTLSPolicies, change: { .backendTLSPolicies(ObjectKey($0), $1) })

    /// `type=kubernetes.io/tls`: the Secrets the cluster source lists and watches.
    public static let tlsSecretFieldSelector = "type=\(Secret.tlsType)"

    private static let gatewaySelectors: @Sendable (WatchScope) -> ListSelectors? = { $0.watchGateways ? ListSelectors() : nil }

    /// All kinds, in the order their informers start.
    public static let kinds: [any AnyResourceKind] = [
        services, endpointSlices, endpoints, nodes, gatewayClasses, gateways, httpRoutes, referenceGrants, namespaces, secrets, listenerSets,
        configMaps, backendTLSPolicies,
    ]
}
