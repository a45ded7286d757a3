import KubeModels

/// Names a namespaced object (or, with the default namespace, one without a namespace): a Service,
/// an EndpointSlice, an Endpoints object. A Service's key is also the key of everything translated
/// for it. Namespaces default to "default", as `kubectl apply` does with a file.
public struct ObjectKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var namespace: String
    public var name: String

    public init(namespace: String?, name: String) {
        self.namespace = namespace.flatMap { $0.isEmpty ? nil : $0 } ?? Translator.defaultNamespace
        self.name = name
    }

    /// The key of an object from its metadata.
    public init(_ metadata: ObjectMeta) { self.init(namespace: metadata.namespace, name: metadata.name) }

    public static func < (lhs: ObjectKey, rhs: ObjectKey) -> Bool {
        (lhs.namespace, lhs.name) < (rhs.namespace, rhs.name)
    }

    /// "namespace/name".
    public var description: String { "\(namespace)/\(name)" }
}

/// The key of a Service and of everything translated for it.
package typealias ServiceKey = ObjectKey

/// One input change: the objects now stored under one name of one kind (usually one object; a
/// directory of files can hold the same name twice; empty means deleted).
public enum ClusterChange: Hashable, Sendable {
    case services(ObjectKey, [Service])
    case endpointSlices(ObjectKey, [EndpointSlice])
    case endpoints(ObjectKey, [Endpoints])
    /// Nodes are cluster-scoped: by name.
    case nodes(String, [Node])
    /// Gateway API kinds (cluster mode watches them; `GatewayState.build` consumes them). Cluster-scoped
    /// kinds (GatewayClass, Namespace) are by name.
    case gatewayClasses(String, [GatewayClass])
    case gateways(ObjectKey, [Gateway])
    case httpRoutes(ObjectKey, [HTTPRoute])
    case referenceGrants(ObjectKey, [ReferenceGrant])
    case namespaces(String, [Namespace])
    /// TLS Secrets (HTTPS listeners' certificateRefs).
    case secrets(ObjectKey, [Secret])
    /// ListenerSets (their listeners join their parent Gateway's).
    case listenerSets(ObjectKey, [ListenerSet])
    /// ConfigMaps (CA certificates of Gateways' frontend TLS validation).
    case configMaps(ObjectKey, [ConfigMap])
    /// BackendTLSPolicies (TLS to the Services they target).
    case backendTLSPolicies(ObjectKey, [BackendTLSPolicy])
}

/// What one change touches: the Services to translate again, whether a Node changed (which
/// touches every Service with node ports when the node's addresses come from its Node object),
/// and the Gateways whose route tables, Service and status must be built again.
public struct TouchedKeys: Hashable, Sendable {
    public var services: Set<ObjectKey> = []
    public var nodes: Set<String> = []
    public var gateways: Set<ObjectKey> = []

    public init(services: Set<ObjectKey> = [], nodes: Set<String> = [], gateways: Set<ObjectKey> = []) {
        self.services = services
        self.nodes = nodes
        self.gateways = gateways
    }

    public mutating func formUnion(_ other: TouchedKeys) {
        services.formUnion(other.services)
        nodes.formUnion(other.nodes)
        gateways.formUnion(other.gateways)
    }

    public var isEmpty: Bool { services.isEmpty && nodes.isEmpty && gateways.isEmpty }
}

/// The translator's input, indexed for reconcile-by-key: objects by name, and EndpointSlices by the
/// Service they belong to (their `kubernetes.io/service-name` label), so one Service's backends cost
/// only its own objects and a change names the keys it touches.
public struct ClusterIndex: Hashable, Sendable {
    public private(set) var services: [ObjectKey: [Service]] = [:]
    public private(set) var endpointSlices: [ObjectKey: [EndpointSlice]] = [:]
    public private(set) var endpoints: [ObjectKey: [Endpoints]] = [:]
    public private(set) var nodes: [String: [Node]] = [:]
    public private(set) var gatewayClasses: [String: [GatewayClass]] = [:]
    public private(set) var gateways: [ObjectKey: [Gateway]] = [:]
    public private(set) var httpRoutes: [ObjectKey: [HTTPRoute]] = [:]
    public private(set) var referenceGrants: [ObjectKey: [ReferenceGrant]] = [:]
    public private(set) var namespaces: [String: [Namespace]] = [:]
    public private(set) var secrets: [ObjectKey: [Secret]] = [:]
    public private(set) var listenerSets: [ObjectKey: [ListenerSet]] = [:]
    public private(set) var configMaps: [ObjectKey: [ConfigMap]] = [:]
    public private(set) var backendTLSPolicies: [ObjectKey: [BackendTLSPolicy]] = [:]
    /// Service key → names of the slices labelled with it, sorted (usually one name: an array of
    /// one is less than half the memory of a set of one, and there is one per Service).
    private var slicesByService: [ObjectKey: [ObjectKey]] = [:]

    public init() {}

    /// Indexes every object of `snapshot` (objects with one name keep their snapshot order).
    public init(_ snapshot: ClusterSnapshot) {
        services.reserveCapacity(snapshot.services.count)
        for service in snapshot.services { services[ObjectKey(service.metadata), default: []].append(service) }
        endpointSlices.reserveCapacity(snapshot.endpointSlices.count)
        slicesByService.reserveCapacity(snapshot.endpointSlices.count)
        for slice in snapshot.endpointSlices {
            let key = ObjectKey(slice.metadata)
            endpointSlices[key, default: []].append(slice)
            if let service = Self.serviceKey(of: slice) { Self.insert(key, into: &slicesByService[service, default: []]) }
        }
        for object in snapshot.endpoints { endpoints[ObjectKey(object.metadata), default: []].append(object) }
        for node in snapshot.nodes { nodes[node.metadata.name, default: []].append(node) }
        for object in snapshot.gatewayClasses { gatewayClasses[object.metadata.name, default: []].append(object) }
        for object in snapshot.gateways { gateways[ObjectKey(object.metadata), default: []].append(object) }
        for object in snapshot.httpRoutes { httpRoutes[ObjectKey(object.metadata), default: []].append(object) }
        for object in snapshot.referenceGrants { referenceGrants[ObjectKey(object.metadata), default: []].append(object) }
        for object in snapshot.namespaces { namespaces[object.metadata.name, default: []].append(object) }
        for object in snapshot.secrets { secrets[ObjectKey(object.metadata), default: []].append(object) }
        for object in snapshot.listenerSets { listenerSets[ObjectKey(object.metadata), default: []].append(object) }
        for object in snapshot.configMaps { configMaps[ObjectKey(object.metadata), default: []].append(object) }
        for object in snapshot.backendTLSPolicies { backendTLSPolicies[ObjectKey(object.metadata), default: []].append(object) }
    }

    /// The Services a BackendTLSPolicy targets (`targetRefs` of kind Service, in its namespace).
    public static func targetServices(of policy: BackendTLSPolicy) -> Set<ObjectKey> {
        Set(policy.spec.targetRefs.filter { $0.group.isEmpty && $0.kind == "Service" }.map {
            ObjectKey(namespace: policy.metadata.namespace, name: $0.name)
        })
    }

    /// The Services targeted by BackendTLSPolicies that name the ConfigMap `key` as a CA certificate.
    private func servicesWithPolicies(naming configMap: ObjectKey) -> Set<ObjectKey> {
        var out: Set<ObjectKey> = []
        for (policyKey, policies) in backendTLSPolicies where policyKey.namespace == configMap.namespace {
            for policy in policies where (policy.spec.validation.caCertificateRefs ?? []).contains(where: {
                $0.group.isEmpty && $0.kind == ConfigMap.resource.kind && $0.name == configMap.name
            }) {
                out.formUnion(Self.targetServices(of: policy))
            }
        }
        return out
    }

    /// The Gateway a ListenerSet names in its `spec.parentRef` (nil: not a Gateway of the Gateway API group).
    public static func parentGateway(of listenerSet: ListenerSet) -> ObjectKey? {
        let parent = listenerSet.spec.parentRef
        guard (parent.group ?? GatewayClass.resource.group) == GatewayClass.resource.group, (parent.kind ?? "Gateway") == "Gateway" else { return nil }
        return ObjectKey(namespace: parent.namespace ?? listenerSet.metadata.namespace, name: parent.name)
    }

    /// The ListenerSets an HTTPRoute names in its parentRefs (kind ListenerSet of the Gateway API
    /// group; the namespace defaults to the route's).
    public static func parentListenerSets(of route: HTTPRoute) -> Set<ObjectKey> {
        var out: Set<ObjectKey> = []
        for parent in route.spec.parentRefs ?? [] {
            guard (parent.group ?? GatewayClass.resource.group) == GatewayClass.resource.group, parent.kind == ListenerSet.resource.kind else { continue }
            out.insert(ObjectKey(namespace: parent.namespace ?? route.metadata.namespace, name: parent.name))
        }
        return out
    }

    /// The Gateways a route reaches: those it names, and the parents of the ListenerSets it names
    /// (as this index stores them).
    public func reachedGateways(of route: HTTPRoute) -> Set<ObjectKey> {
        var out = Self.parentGateways(of: route)
        for key in Self.parentListenerSets(of: route) {
            for listenerSet in listenerSets[key] ?? [] { if let gateway = Self.parentGateway(of: listenerSet) { out.insert(gateway) } }
        }
        return out
    }

    /// The Gateways an HTTPRoute names in its parentRefs (kind Gateway of the Gateway API group;
    /// the namespace defaults to the route's).
    public static func parentGateways(of route: HTTPRoute) -> Set<ObjectKey> {
        var out: Set<ObjectKey> = []
        for parent in route.spec.parentRefs ?? [] {
            guard (parent.group ?? GatewayClass.resource.group) == GatewayClass.resource.group,
                (parent.kind ?? "Gateway") == "Gateway"
            else { continue }
            out.insert(ObjectKey(namespace: parent.namespace ?? route.metadata.namespace, name: parent.name))
        }
        return out
    }

    /// Gateways of the class `name`.
    private func gatewaysOfClass(_ name: String) -> Set<ObjectKey> {
        Set(gateways.filter { $0.value.contains { $0.spec.gatewayClassName == name } }.keys)
    }

    /// Gateways with a listener that selects route namespaces by label: a Namespace's labels matter to them only.
    private var gatewaysSelectingNamespaces: Set<ObjectKey> {
        Set(gateways.filter { entry in
            entry.value.contains { $0.spec.listeners.contains { $0.allowedRoutes?.namespaces?.from == "Selector" } }
        }.keys)
    }

    /// Gateways with a listener whose certificateRefs name the Secret `key` (the namespace
    /// defaults to the Gateway's; group "" and kind Secret by default).
    private func gatewaysReferencing(secret key: ObjectKey) -> Set<ObjectKey> {
        Set(gateways.filter { entry in
            entry.value.contains { gateway in
                gateway.spec.listeners.contains { listener in
                    (listener.tls?.certificateRefs ?? []).contains { ref in
                        (ref.group ?? "").isEmpty && (ref.kind ?? "Secret") == "Secret"
                            && ObjectKey(namespace: ref.namespace ?? gateway.metadata.namespace, name: ref.name) == key
                    }
                }
            }
        }.keys)
    }

    /// Gateways whose `spec.tls.frontend` validation (default or per port) names the ConfigMap
    /// `key` among its caCertificateRefs (the namespace defaults to the Gateway's).
    private func gatewaysReferencing(configMap key: ObjectKey) -> Set<ObjectKey> {
        Set(gateways.filter { entry in
            entry.value.contains { gateway in
                Self.frontendCACertificateRefs(of: gateway).contains { ref in
                    (ref.group ?? "").isEmpty && ref.kind == ConfigMap.resource.kind
                        && ObjectKey(namespace: ref.namespace ?? gateway.metadata.namespace, name: ref.name) == key
                }
            }
        }.keys)
    }

    /// Every caCertificateRef of a Gateway's frontend TLS validation (default and per port).
    public static func frontendCACertificateRefs(of gateway: Gateway) -> [ObjectReference] {
        let frontend = gateway.spec.tls?.frontend
        return (frontend?.default?.validation?.caCertificateRefs ?? [])
            + (frontend?.perPort ?? []).flatMap { $0.tls.validation?.caCertificateRefs ?? [] }
    }

    /// The Service an EndpointSlice belongs to; nil without the label (a custom slice: not ours).
    public static func serviceKey(of slice: EndpointSlice) -> ObjectKey? {
        guard let service = slice.metadata.labels?[EndpointSlice.serviceNameLabel], !service.isEmpty else { return nil }
        return ObjectKey(namespace: slice.metadata.namespace, name: service)
    }

    /// Stores `change` and returns the keys it touches: for a slice, the Services of its old AND
    /// new label (a relabelled slice leaves one Service and joins another).
    @discardableResult
    public mutating func apply(_ change: ClusterChange) -> TouchedKeys {
        var touched = TouchedKeys()
        switch change {
        case .services(let key, let objects):
            services[key] = objects.isEmpty ? nil : objects
            touched.services.insert(key)
        case .endpointSlices(let key, let objects):
            for old in endpointSlices[key] ?? [] {
                guard let service = Self.serviceKey(of: old) else { continue }
                touched.services.insert(service)
                slicesByService[service]?.removeAll { $0 == key }
                if slicesByService[service]?.isEmpty == true { slicesByService[service] = nil }
            }
            endpointSlices[key] = objects.isEmpty ? nil : objects
            for new in objects {
                guard let service = Self.serviceKey(of: new) else { continue }
                touched.services.insert(service)
                Self.insert(key, into: &slicesByService[service, default: []])
            }
        case .endpoints(let key, let objects):
            endpoints[key] = objects.isEmpty ? nil : objects
            touched.services.insert(key)
        case .nodes(let name, let objects):
            nodes[name] = objects.isEmpty ? nil : objects
            touched.nodes.insert(name)
        case .gatewayClasses(let name, let objects):
            gatewayClasses[name] = objects.isEmpty ? nil : objects
            touched.gateways = gatewaysOfClass(name)
        case .gateways(let key, let objects):
            gateways[key] = objects.isEmpty ? nil : objects
            touched.gateways.insert(key)
        case .httpRoutes(let key, let objects):
            // The parents of the old AND new route: a route that moves leaves one Gateway and joins another.
            for route in (httpRoutes[key] ?? []) + objects { touched.gateways.formUnion(reachedGateways(of: route)) }
            httpRoutes[key] = objects.isEmpty ? nil : objects
        case .referenceGrants(let key, let objects):
            // A grant can permit any route's backendRef or any listener's certificateRef into its
            // namespace: every Gateway is built again (grants are few and rarely change).
            referenceGrants[key] = objects.isEmpty ? nil : objects
            touched.gateways = Set(gateways.keys)
        case .namespaces(let name, let objects):
            namespaces[name] = objects.isEmpty ? nil : objects
            touched.gateways = gatewaysSelectingNamespaces
        case .secrets(let key, let objects):
            secrets[key] = objects.isEmpty ? nil : objects
            touched.gateways = gatewaysReferencing(secret: key)
        case .listenerSets(let key, let objects):
            // The parents of the old AND new ListenerSet (it may move to another Gateway).
            for listenerSet in (listenerSets[key] ?? []) + objects { if let gateway = Self.parentGateway(of: listenerSet) { touched.gateways.insert(gateway) } }
            listenerSets[key] = objects.isEmpty ? nil : objects
        case .configMaps(let key, let objects):
            configMaps[key] = objects.isEmpty ? nil : objects
            touched.gateways = gatewaysReferencing(configMap: key)
            // A backend's CA certificates: the Gateways reading the policies' Services.
            touched.services = servicesWithPolicies(naming: key)
        case .backendTLSPolicies(let key, let objects):
            // The Services of the old AND new policy: the Gateway plan rebuilds the Gateways reading
            // them (translating those Services again is cheap and changes nothing).
            for policy in (backendTLSPolicies[key] ?? []) + objects { touched.services.formUnion(Self.targetServices(of: policy)) }
            backendTLSPolicies[key] = objects.isEmpty ? nil : objects
        }
        return touched
    }

    /// Everything indexed, as a snapshot (by name; objects with one name in their stored order).
    public var snapshot: ClusterSnapshot {
        func ordered<K: Comparable, T>(_ d: [K: [T]]) -> [T] { d.sorted { $0.key < $1.key }.flatMap(\.value) }
        return ClusterSnapshot(
            services: ordered(services), endpointSlices: ordered(endpointSlices), endpoints: ordered(endpoints), nodes: ordered(nodes),
            gatewayClasses: ordered(gatewayClasses), gateways: ordered(gateways), httpRoutes: ordered(httpRoutes),
            referenceGrants: ordered(referenceGrants), namespaces: ordered(namespaces), secrets: ordered(secrets),
            listenerSets: ordered(listenerSets), configMaps: ordered(configMaps), backendTLSPolicies: ordered(backendTLSPolicies))
    }

    /// The slices of one Service in name order (objects with one name in their stored order).
    func slices(of service: ObjectKey) -> [EndpointSlice] {
        guard let names = slicesByService[service] else { return [] }
        if names.count == 1 { return endpointSlices[names[0]] ?? [] }
        return names.flatMap { endpointSlices[$0] ?? [] }
    }

    /// Inserts `key` into the sorted `names` unless it is there.
    private static func insert(_ key: ObjectKey, into names: inout [ObjectKey]) {
        let at = names.firstIndex { $0 >= key } ?? names.endIndex
        if at < names.endIndex, names[at] == key { return }
        names.insert(key, at: at)
    }

    /// The changes that turn `old` into `new`, one per name whose objects differ: how a source
    /// that only has whole snapshots (a directory of files) feeds reconcile-by-key.
    public static func changes(from old: ClusterSnapshot, to new: ClusterSnapshot) -> [ClusterChange] {
        func grouped<T: KubeResource & Hashable, K: Hashable & Comparable>(_ items: [T], _ key: (T) -> K) -> [K: [T]] {
            var out: [K: [T]] = [:]
            for item in items { out[key(item), default: []].append(item) }
            return out
        }
        func diff<T: KubeResource & Hashable, K: Hashable & Comparable>(
            _ old: [T], _ new: [T], key: (T) -> K, _ make: (K, [T]) -> ClusterChange
        ) -> [ClusterChange] {
            let before = grouped(old, key), after = grouped(new, key)
            var out: [ClusterChange] = []
            for name in Set(before.keys).union(after.keys).sorted() where before[name] != after[name] {
                out.append(make(name, after[name] ?? []))
            }
            return out
        }
        return diff(old.services, new.services, key: { ObjectKey($0.metadata) }, ClusterChange.services)
            + diff(old.endpointSlices, new.endpointSlices, key: { ObjectKey($0.metadata) }, ClusterChange.endpointSlices)
            + diff(old.endpoints, new.endpoints, key: { ObjectKey($0.metadata) }, ClusterChange.endpoints)
            + diff(old.nodes, new.nodes, key: { $0.metadata.name }, ClusterChange.nodes)
            + diff(old.gatewayClasses, new.gatewayClasses, key: { $0.metadata.name }, ClusterChange.gatewayClasses)
            + diff(old.gateways, new.gateways, key: { ObjectKey($0.metadata) }, ClusterChange.gateways)
            + diff(old.httpRoutes, new.httpRoutes, key: { ObjectKey($0.metadata) }, ClusterChange.httpRoutes)
            + diff(old.referenceGrants, new.referenceGrants, key: { ObjectKey($0.metadata) }, ClusterChange.referenceGrants)
            + diff(old.namespaces, new.namespaces, key: { $0.metadata.name }, ClusterChange.namespaces)
            + diff(old.secrets, new.secrets, key: { ObjectKey($0.metadata) }, ClusterChange.secrets)
            + diff(old.listenerSets, new.listenerSets, key: { ObjectKey($0.metadata) }, ClusterChange.listenerSets)
            + diff(old.configMaps, new.configMaps, key: { ObjectKey($0.metadata) }, ClusterChange.configMaps)
            + diff(old.backendTLSPolicies, new.backendTLSPolicies, key: { ObjectKey($0.metadata) }, ClusterChange.backendTLSPolicies)
    }
}

/// Where a node's addresses come from: `--node-ip` when given, else its Node object. Node address
/// selection lives here only (agent and `translate` both use it).
public enum NodeAddresses {
    /// The InternalIP and ExternalIP addresses of `node`, in its order; others (Hostname…) are not addresses to serve.
    public static func of(_ node: Node) -> [IPAddress] {
        (node.status?.addresses ?? [])
            .filter { $0.type == "InternalIP" || $0.type == "ExternalIP" }
            .compactMap { IPAddress($0.address) }
    }
}
