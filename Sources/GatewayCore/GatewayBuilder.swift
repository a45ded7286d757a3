import LoadBalancer
import KubeModels

extension GatewayState {
    /// Builds the route tables and status of Portway's Gateways from `snapshot`. Pure and
    /// deterministic; bad objects become status conditions or warnings, never a crash.
    public static func build(_ snapshot: ClusterSnapshot, options: GatewayOptions = GatewayOptions()) -> GatewayState {
        build(ClusterIndex(snapshot), options: options)
    }

    /// Builds the route tables and status of Portway's Gateways straight from `index` (the
    /// reconciler's: nothing is copied into a snapshot first).
    public static func build(_ index: ClusterIndex, options: GatewayOptions = GatewayOptions()) -> GatewayState {
        var run = GatewayBuild(index: index, options: options, only: nil)
        return run.build()
    }

    /// Builds what belongs to the Gateways `only`: their tables, certificates and status (and the
    /// status entries routes have for them); ownership (`ownedGateways`, `foreignGateways`), the
    /// GatewayClass status and the warnings cover every object, exactly as `build` gives them.
    /// Tables depend only on their own Gateway, its class, the routes naming it and what those
    /// reference, so splicing this into a full state of the same index equals a full build
    /// (`GatewayPlan` does; its model test checks it).
    public static func build(_ index: ClusterIndex, only: Set<NamespacedName>, options: GatewayOptions = GatewayOptions()) -> GatewayState {
        var run = GatewayBuild(index: index, options: options, only: only)
        return run.build()
    }

    /// `build(_:only:options:)` over a snapshot (tests).
    public static func build(_ snapshot: ClusterSnapshot, only: Set<NamespacedName>, options: GatewayOptions = GatewayOptions()) -> GatewayState {
        build(ClusterIndex(snapshot), only: only, options: options)
    }
}

/// A listener after validation, with what routes attached to it.
struct ListenerFacts {
    var index: Int
    var listener: Listener
    var protocolSupported: Bool
    var supportedKinds: [RouteGroupKind]
    var invalidKinds: Bool
    var certificates: [NamespacedName] = []
    /// Why a certificateRef did not resolve: (reason, message) of the first bad one.
    var certificateProblem: (reason: String, message: String)?
    /// HostnameConflict or ProtocolConflict, with the listeners it conflicts with.
    var conflict: (reason: String, message: String)?
    var attached: [(route: NamespacedName, hostnames: [String])] = []
    /// The ListenerSet the listener comes from; nil for the Gateway's own listeners.
    var listenerSet: NamespacedName?
    /// An HTTPS listener's client certificate validation (its Gateway's `spec.tls.frontend` for its port).
    var clientValidation: FrontendValidation?
    /// Why a caCertificateRef of that validation did not resolve: (reason, message) of the first
    /// bad one, and whether none did (the listener is then not accepted: NoValidCACertificate).
    var caProblem: (reason: String, message: String, noneValid: Bool)?
    /// Why its Gateway is not accepted (InvalidParameters, UnsupportedAddress): a listener of an
    /// unaccepted Gateway is not served (the spec: a Gateway that is not accepted is not programmed).
    var gatewayRefused: String?

    /// Not accepted when conflicted, of a protocol Portway does not serve, or asking for client
    /// certificate validation with no CA certificate that resolved (never served without it).
    var accepted: Bool { protocolSupported && conflict == nil && !(caProblem?.noneValid ?? false) }
    /// Served when accepted, with its certificates, for the route kinds it supports (an invalid
    /// kind beside HTTPRoute makes ResolvedRefs False but does not stop HTTPRoutes).
    var programmed: Bool { accepted && certificateProblem == nil && !supportedKinds.isEmpty && gatewayRefused == nil }

    /// Why it is not programmed, as its status says it: (condition, reason, message); nil when it is.
    var unserved: (condition: String, reason: String, message: String)? {
        if !protocolSupported {
            return ("Accepted", "UnsupportedProtocol", "protocol \(listener.protocol) on port \(listener.port) is not supported (HTTP and HTTPS are)")
        }
        if let conflict { return ("Conflicted", conflict.reason, conflict.message) }
        if let ca = caProblem, ca.noneValid { return ("Accepted", "NoValidCACertificate", ca.message) }
        if supportedKinds.isEmpty { return ("ResolvedRefs", "InvalidRouteKinds", "no route kind Portway serves is allowed (only HTTPRoute is supported)") }
        if let problem = certificateProblem { return ("ResolvedRefs", problem.reason, problem.message) }
        if let gatewayRefused { return ("Programmed", "Invalid", "the Gateway is not accepted (\(gatewayRefused))") }
        return nil
    }
}

/// A route after validation: its entries per rule (without hostnames) and its status facts.
struct RouteFacts {
    var route: HTTPRoute
    var key: NamespacedName
    /// (reason, message) when a value is not supported: the route is not accepted anywhere.
    var unsupported: (reason: String, message: String)?
    /// The first backendRef that did not resolve.
    var refProblem: BackendFailure?
    var entries: [RouteTableEntry] = []
    /// The BackendTLSPolicies naming the Services (ports) its backendRefs use: their status lists
    /// the Gateways the route is accepted by.
    var backendPolicies: Set<NamespacedName> = []
}

struct GatewayBuild {
    let options: GatewayOptions
    /// The Gateways to build (nil: all).
    let only: Set<NamespacedName>?
    /// Every object, by name: read directly, never copied.
    private let index: ClusterIndex
    private var state = GatewayState()
    /// The validator's answer per Secret in this build (listeners often share one).
    private var certificateChecks: [NamespacedName: String?] = [:]
    /// The ConfigMaps' CA certificates, each checked once in this build.
    private var cas: CABundleReader
    /// Every BackendTLSPolicy, validated, conflicts resolved.
    private let backendPolicies: BackendTLSPolicyIndex
    /// BackendTLSPolicy → the Gateways built here that accept a route using a Service it names.
    private var policyAncestors: [NamespacedName: Set<NamespacedName>] = [:]

    init(index: ClusterIndex, options: GatewayOptions, only: Set<NamespacedName>?) {
        self.index = index
        self.options = options
        self.only = only
        self.cas = CABundleReader(validator: options.caCertificateValidator)
        self.backendPolicies = BackendTLSPolicyIndex(index: index, validator: options.caCertificateValidator)
    }

    /// The object stored under a name (the last of several: files can hold one name twice).
    private func service(_ key: NamespacedName) -> Service? {
        index.services[ObjectKey(namespace: key.namespace, name: key.name)]?.last
    }

    private func secret(_ key: NamespacedName) -> Secret? {
        index.secrets[ObjectKey(namespace: key.namespace, name: key.name)]?.last
    }

    private func configMap(_ key: NamespacedName) -> ConfigMap? {
        index.configMaps[ObjectKey(namespace: key.namespace, name: key.name)]?.last
    }

    private func namespaceLabels(_ name: String) -> [String: String]? {
        index.namespaces[name]?.last.map { $0.metadata.labels ?? [:] }
    }

    /// Objects of one kind in name order (several under one name in their stored order).
    private static func ordered<K: Comparable, T>(_ objects: [K: [T]]) -> [T] {
        objects.sorted { $0.key < $1.key }.flatMap(\.value)
    }

    static func namespace(_ meta: ObjectMeta) -> String {
        meta.namespace.flatMap { $0.isEmpty ? nil : $0 } ?? Translator.defaultNamespace
    }

    mutating func build() -> GatewayState {
        // Classes.
        var classes: [String: GatewayClass] = [:]
        let gatewayClasses = Self.ordered(index.gatewayClasses)
        for gatewayClass in gatewayClasses { classes[gatewayClass.metadata.name] = gatewayClass }
        for gatewayClass in gatewayClasses
        where gatewayClass.spec.controllerName == options.controllerName {
            state.status.gatewayClasses[gatewayClass.metadata.name] = GatewayClassStatus(
                conditions: [condition("Accepted", true, "Accepted", "handled by \(options.controllerName)", gatewayClass.metadata)],
                supportedFeatures: GatewayFeatures.supportedFeatures)
        }

        // Gateways: Portway's, validated listener by listener.
        var gateways: [NamespacedName: (gateway: Gateway, listeners: [ListenerFacts])] = [:]
        var seenGateways = Set<NamespacedName>()
        let sortedGateways = Self.ordered(index.gateways)
        for gateway in sortedGateways {
            let gatewayKey = key(gateway.metadata)
            // Files can hold one object twice (an API server cannot): the first one counts.
            guard seenGateways.insert(gatewayKey).inserted else {
                state.warnings.append(GatewayWarning(object: "Gateway \(gatewayKey)", message: "defined more than once; the first definition is used"))
                continue
            }
            guard let gatewayClass = classes[gateway.spec.gatewayClassName] else {
                state.foreignGateways[gatewayKey] = ""
                state.warnings.append(GatewayWarning(object: "Gateway \(gatewayKey)", message: "GatewayClass \"\(gateway.spec.gatewayClassName)\" does not exist; Gateway not served"))
                continue
            }
            guard gatewayClass.spec.controllerName == options.controllerName else {
                state.foreignGateways[gatewayKey] = gatewayClass.spec.controllerName
                continue
            }
            state.ownedGateways.append(gatewayKey)
            if only?.contains(gatewayKey) ?? true { gateways[gatewayKey] = (gateway, validateListeners(gateway, key: gatewayKey)) }
        }

        // ListenerSets: their listeners join their Gateway's, after its own (GEP-1713 precedence).
        for (setKey, sets) in index.listenerSets.sorted(by: { $0.key < $1.key }) where sets.count > 1 {
            state.warnings.append(GatewayWarning(object: "ListenerSet \(setKey)", message: "defined more than once; the first definition is used"))
        }
        var listenerSetsByGateway: [NamespacedName: [ListenerSetFacts]] = [:]
        for gatewayKey in gateways.keys.sorted() {
            listenerSetsByGateway[gatewayKey] = attachListenerSets(to: gatewayKey, gateway: gateways[gatewayKey]!.gateway, listeners: &gateways[gatewayKey]!.listeners)
            // Client certificate validation: per port, over the Gateway's and its sets' HTTPS listeners.
            applyFrontendValidation(gateways[gatewayKey]!.gateway, key: gatewayKey, to: &gateways[gatewayKey]!.listeners)
        }

        // Routes: validate once, then attach through each parentRef.
        let routes = Self.ordered(index.httpRoutes)
        var routeFacts: [NamespacedName: RouteFacts] = [:]
        var seenRoutes = Set<NamespacedName>()
        let owned = Set(state.ownedGateways)
        for route in routes {
            let routeKey = key(route.metadata)
            guard seenRoutes.insert(routeKey).inserted else {
                state.warnings.append(GatewayWarning(object: "HTTPRoute \(routeKey)", message: "defined more than once; the first definition is used"))
                continue
            }
            // Before the partial build's filter: warnings cover every object (of Portway's Gateways).
            let unknown = route.unknownFieldPaths
            if !unknown.isEmpty, index.reachedGateways(of: route).contains(where: {
                owned.contains(NamespacedName(namespace: $0.namespace, name: $0.name))
            }) {
                state.warnings.append(GatewayWarning(
                    object: "HTTPRoute \(routeKey)",
                    message: "generation \(route.metadata.generation.map(String.init) ?? "?"): fields Portway does not know: \(unknown.joined(separator: ", ")); the route is not accepted (UnsupportedValue)"))
            }
            // A partial build validates only the routes naming one of its Gateways.
            if only != nil, !index.reachedGateways(of: route).contains(where: { gateways[NamespacedName(namespace: $0.namespace, name: $0.name)] != nil }) {
                continue
            }
            let facts = validate(route, key: routeKey)
            routeFacts[routeKey] = facts
            var parents: [RouteParentStatus] = []
            for parentRef in route.spec.parentRefs ?? [] {
                guard (parentRef.group ?? GatewayAPI.group) == GatewayAPI.group else { continue }
                let parentKey = NamespacedName(namespace: parentRef.namespace ?? routeKey.namespace, name: parentRef.name)
                switch parentRef.kind ?? "Gateway" {
                case "Gateway":
                    guard gateways[parentKey] != nil else { continue }
                    let accepted = attach(facts, parentRef: parentRef, to: &gateways[parentKey]!.listeners, gatewayNamespace: parentKey.namespace, listenerSet: nil)
                    parents.append(parentStatus(facts, parentRef: parentRef, accepted: accepted))
                    if accepted.0 { for policy in facts.backendPolicies { policyAncestors[policy, default: []].insert(parentKey) } }
                case ListenerSet.resource.kind:
                    // A ListenerSet of one of the Gateways built here (a foreign or missing one: no entry).
                    guard let found = listenerSetsByGateway.lazy.compactMap({ entry in entry.value.first { $0.key == parentKey }.map { (entry.key, $0) } }).first
                    else { continue }
                    let (gatewayKey, set) = found
                    let accepted = set.allowed
                        ? attach(facts, parentRef: parentRef, to: &gateways[gatewayKey]!.listeners, gatewayNamespace: gatewayKey.namespace, listenerSet: parentKey)
                        : (false, "NotAllowedByListeners", "ListenerSet \(parentKey) is not allowed by Gateway \(gatewayKey) (spec.allowedListeners)")
                    parents.append(parentStatus(facts, parentRef: parentRef, accepted: accepted))
                    if accepted.0 { for policy in facts.backendPolicies { policyAncestors[policy, default: []].insert(gatewayKey) } }
                default:
                    continue
                }
            }
            if !parents.isEmpty { state.status.routes[routeKey] = parents }
        }

        // Tables, Gateway status and the listeners left out.
        for gatewayKey in state.ownedGateways {
            guard var served = gateways[gatewayKey] else { continue }
            if let refused = refusal(served.gateway) {
                for i in served.listeners.indices { served.listeners[i].gatewayRefused = refused.reason }
            }
            buildTables(gatewayKey, listeners: served.listeners, routes: routeFacts)
            state.status.gateways[gatewayKey] = gatewayStatus(served.gateway, listeners: served.listeners.filter { $0.listenerSet == nil })
            let sets = listenerSetsByGateway[gatewayKey] ?? []
            if served.gateway.spec.allowedListeners != nil || !sets.isEmpty {
                var accepted = 0
                for set in sets {
                    let status = listenerSetStatus(set, listeners: served.listeners.filter { $0.listenerSet == set.key })
                    if status.conditions?.first(where: { $0.type == "Accepted" })?.status == "True" { accepted += 1 }
                    state.status.listenerSets[set.key] = status
                }
                state.status.gateways[gatewayKey]?.attachedListenerSets = accepted
            }
            for fact in served.listeners {
                guard let why = fact.unserved else { continue }
                var unserved = UnservedListener(
                    gateway: gatewayKey, name: fact.listener.name, port: fact.listener.port, hostname: fact.listener.hostname?.lowercased(),
                    protocol: fact.listener.protocol, condition: why.condition, reason: why.reason, message: why.message)
                unserved.listenerSet = fact.listenerSet
                state.unservedListeners.append(unserved)
            }
        }
        state.unservedListeners.sort { ($0.gateway, $0.port, $0.name) < ($1.gateway, $1.port, $1.name) }
        // BackendTLSPolicies: one ancestor entry per Gateway accepting a route that uses their Services.
        for (policy, ancestors) in policyAncestors {
            let conditions = backendPolicies.conditions(of: policy, condition: condition)
            state.status.backendTLSPolicies[policy] = ancestors.sorted().map { gateway in
                PolicyAncestorStatus(
                    ancestorRef: ParentReference(group: GatewayAPI.group, kind: "Gateway", namespace: gateway.namespace, name: gateway.name),
                    controllerName: options.controllerName, conditions: conditions)
            }
        }
        // Only the certificates the tables name (a conflicted listener's Secret is not served).
        let named = Set(state.tables.flatMap { $0.listeners.flatMap(\.certificates) })
        state.certificates = state.certificates.filter { named.contains($0.key) }
        return state
    }

    // MARK: Listeners

    private mutating func validateListeners(_ gateway: Gateway, key gatewayKey: NamespacedName) -> [ListenerFacts] {
        var facts = validateEach(gateway.spec.listeners, owner: gatewayKey, ownerKind: "Gateway")
        Self.markConflicts(&facts)
        return facts
    }

    /// Each listener on its own: protocol, route kinds, certificates (a certificateRef's namespace
    /// defaults to the owner's; a ReferenceGrant must name the owner's kind).
    private mutating func validateEach(_ listeners: [Listener], owner: NamespacedName, ownerKind: String) -> [ListenerFacts] {
        var facts: [ListenerFacts] = []
        for (i, listener) in listeners.enumerated() {
            let proto = ListenerProtocol(rawValue: listener.protocol)
            var fact = ListenerFacts(index: i, listener: listener, protocolSupported: proto != nil && (1...65535).contains(listener.port), supportedKinds: [], invalidKinds: false)
            if proto == nil, !(listener.allowedRoutes?.kinds ?? []).isEmpty {
                // Kinds asked of a protocol Portway does not serve (TLS, TCP…): none of them can be
                // served there (ListenerSetAllowedRoutesSupportedKinds: HTTPRoute on TLS).
                fact.invalidKinds = true
            }
            if proto != nil {
                let requested = listener.allowedRoutes?.kinds ?? []
                if requested.isEmpty {
                    fact.supportedKinds = [RouteGroupKind(group: GatewayAPI.group, kind: "HTTPRoute")]
                } else {
                    for kind in requested {
                        if (kind.group ?? GatewayAPI.group) == GatewayAPI.group && kind.kind == "HTTPRoute" {
                            if fact.supportedKinds.isEmpty { fact.supportedKinds.append(RouteGroupKind(group: GatewayAPI.group, kind: "HTTPRoute")) }
                        } else {
                            fact.invalidKinds = true
                        }
                    }
                }
            }
            if proto == .https { resolveCertificates(&fact, gateway: owner, ownerKind: ownerKind) }
            facts.append(fact)
        }
        return facts
    }

    /// Conflicts between listeners of one Gateway (or of one ListenerSet) on one port: different
    /// protocols, or one hostname twice. No listener of a conflicting set is served (the spec:
    /// never pick a winner among them). Listeners already conflicted are left out.
    private static func markConflicts(_ facts: inout [ListenerFacts]) {
        let byPort = Dictionary(grouping: facts.indices.filter { facts[$0].protocolSupported && facts[$0].conflict == nil }, by: { facts[$0].listener.port })
        for (port, indices) in byPort where indices.count > 1 {
            let protocols = Dictionary(grouping: indices, by: { facts[$0].listener.protocol })
            if protocols.count > 1 {
                let list = protocols.keys.sorted().map { proto in "\(proto) (\(protocols[proto]!.map { facts[$0].listener.name }.joined(separator: ", ")))" }
                for i in indices {
                    facts[i].conflict = ("ProtocolConflict", "port \(port) has listeners of different protocols: \(list.joined(separator: " and ")); none of them is served")
                }
                continue
            }
            let byHost = Dictionary(grouping: indices, by: { facts[$0].listener.hostname?.lowercased() ?? "" })
            for (host, same) in byHost where same.count > 1 {
                let names = same.map { facts[$0].listener.name }.joined(separator: ", ")
                let what = host.isEmpty ? "have no hostname (each would take every host)" : "have the same hostname \(host)"
                for i in same {
                    facts[i].conflict = ("HostnameConflict", "listeners \(names) on port \(port) \(what); none of them is served")
                }
            }
        }
    }

    private mutating func resolveCertificates(_ fact: inout ListenerFacts, gateway: NamespacedName, ownerKind: String = "Gateway") {
        let tls = fact.listener.tls
        if let mode = tls?.mode, mode != "Terminate" {
            fact.certificateProblem = ("InvalidCertificateRef", "TLS mode \(mode) is not supported on an HTTPS listener")
            return
        }
        let refs = tls?.certificateRefs ?? []
        if refs.isEmpty {
            fact.certificateProblem = ("InvalidCertificateRef", "an HTTPS listener needs tls.certificateRefs")
            return
        }
        for ref in refs {
            let target = NamespacedName(namespace: ref.namespace ?? gateway.namespace, name: ref.name)
            func fail(_ reason: String, _ message: String) {
                if fact.certificateProblem == nil { fact.certificateProblem = (reason, message) }
            }
            guard (ref.group ?? "") == "", (ref.kind ?? "Secret") == "Secret" else {
                fail("InvalidCertificateRef", "certificateRef \(target) is a \(ref.kind ?? "Secret") of group \"\(ref.group ?? "")\", not a Secret")
                continue
            }
            if target.namespace != gateway.namespace,
               !granted(from: (GatewayAPI.group, ownerKind, gateway.namespace), to: ("", "Secret", target)) {
                fail("RefNotPermitted", "certificateRef to Secret \(target) is not permitted by a ReferenceGrant in namespace \(target.namespace)")
                continue
            }
            guard let secret = secret(target) else {
                fail("InvalidCertificateRef", "Secret \(target) does not exist")
                continue
            }
            switch material(of: secret, target) {
            case .failure(let problem):
                fail("InvalidCertificateRef", problem.message)
            case .success(let material):
                state.certificates[target] = material
                fact.certificates.append(target)
            }
        }
    }

    /// The Gateway's `spec.tls.frontend` on its HTTPS listeners: each port's validation (its
    /// `perPort` entry, which replaces the default there even without `validation`, else
    /// `default`), resolved once per port.
    private mutating func applyFrontendValidation(_ gateway: Gateway, key gatewayKey: NamespacedName, to listeners: inout [ListenerFacts]) {
        guard let frontend = gateway.spec.tls?.frontend else { return }
        var resolved: [Int: (validation: FrontendValidation?, problem: (reason: String, message: String, noneValid: Bool)?)] = [:]
        for i in listeners.indices where listeners[i].protocolSupported && ListenerProtocol(rawValue: listeners[i].listener.protocol) == .https {
            let port = listeners[i].listener.port
            let settings = frontend.perPort?.first(where: { $0.port == port })?.tls ?? frontend.default
            guard let validation = settings?.validation else { continue }
            if resolved[port] == nil { resolved[port] = resolveValidation(validation, gateway: gatewayKey) }
            listeners[i].clientValidation = resolved[port]?.validation
            listeners[i].caProblem = resolved[port]?.problem
        }
    }

    /// A frontend `validation`'s CA certificates: each caCertificateRef must be a ConfigMap (group
    /// "", else InvalidCACertificateKind), in the Gateway's namespace or permitted by a
    /// ReferenceGrant there (else RefNotPermitted), exist with a usable `ca.crt` (else
    /// InvalidCACertificateRef). The usable ones are the validation; the first problem is reported.
    private mutating func resolveValidation(
        _ validation: FrontendTLSValidation, gateway: NamespacedName
    ) -> (validation: FrontendValidation?, problem: (reason: String, message: String, noneValid: Bool)?) {
        // The CRD's enum has two values; anything else (files) is taken as the strict one.
        let mode: FrontendValidation.Mode = validation.mode == FrontendTLSValidation.allowInsecureFallback ? .allowInsecureFallback : .allowValidOnly
        var refs: [NamespacedName] = []
        var bundle: [UInt8] = []
        var problem: (reason: String, message: String)?
        for ref in validation.caCertificateRefs {
            let target = NamespacedName(namespace: ref.namespace ?? gateway.namespace, name: ref.name)
            func fail(_ reason: String, _ message: String) {
                if problem == nil { problem = (reason, message) }
            }
            guard (ref.group ?? "").isEmpty, ref.kind == ConfigMap.resource.kind else {
                fail("InvalidCACertificateKind", "caCertificateRef \(target) is a \(ref.kind) of group \"\(ref.group ?? "")\": only ConfigMaps (group \"\") are supported")
                continue
            }
            if target.namespace != gateway.namespace,
               !granted(from: (GatewayAPI.group, "Gateway", gateway.namespace), to: ("", ConfigMap.resource.kind, target)) {
                fail("RefNotPermitted", "caCertificateRef to ConfigMap \(target) is not permitted by a ReferenceGrant in namespace \(target.namespace)")
                continue
            }
            switch cas.pem(of: configMap(target), target) {
            case .failure(let why):
                fail("InvalidCACertificateRef", why.message)
            case .success(let pem):
                refs.append(target)
                CABundleReader.append(pem, to: &bundle)
            }
        }
        let resolved = refs.isEmpty ? nil : FrontendValidation(mode: mode, caCertificateRefs: refs, caCertificates: bundle)
        return (resolved, problem.map { ($0.reason, $0.message, refs.isEmpty) })
    }

    /// The certificate chain and key of a `kubernetes.io/tls` Secret, if the validator takes them;
    /// else what is wrong, naming the Secret.
    private mutating func material(of secret: Secret, _ target: NamespacedName) -> Result<TLSMaterial, MatchProblem> {
        func problem(_ message: String) -> Result<TLSMaterial, MatchProblem> { .failure(MatchProblem(message: "Secret \(target): \(message)")) }
        guard secret.type == Secret.tlsType else { return problem("type \(secret.type ?? "Opaque") is not \(Secret.tlsType)") }
        var fields: [[UInt8]] = []
        for field in ["tls.crt", "tls.key"] {
            guard let text = secret.data?[field], !text.isEmpty else { return problem("\(field) is missing or empty") }
            guard let bytes = Base64.decode(text), !bytes.isEmpty else { return problem("\(field) is not base64") }
            fields.append(bytes)
        }
        let material = TLSMaterial(certificateChain: fields[0], privateKey: fields[1])
        let verdict: String?
        if let checked = certificateChecks[target] {
            verdict = checked
        } else {
            verdict = options.certificateValidator(material)
            certificateChecks[target] = .some(verdict)  // a success (nil) is remembered too
        }
        if let verdict { return problem(verdict) }
        return .success(material)
    }

    /// True when a ReferenceGrant in the target's namespace lets `from` refer to `to`.
    private func granted(from: (group: String, kind: String, namespace: String), to: (group: String, kind: String, target: NamespacedName)) -> Bool {
        Self.ordered(index.referenceGrants).contains { grant in
            Self.namespace(grant.metadata) == to.target.namespace
                && grant.spec.from.contains { $0.group == from.group && $0.kind == from.kind && $0.namespace == from.namespace }
                && grant.spec.to.contains { $0.group == to.group && $0.kind == to.kind && ($0.name.map { $0.isEmpty || $0 == to.target.name } ?? true) }
        }
    }

    // MARK: Routes

    private func validate(_ route: HTTPRoute, key routeKey: NamespacedName) -> RouteFacts {
        var facts = RouteFacts(route: route, key: routeKey)
        func unsupported(_ message: String) {
            if facts.unsupported == nil { facts.unsupported = ("UnsupportedValue", message) }
        }
        for (r, rule) in (route.spec.rules ?? []).enumerated() {
            var timeouts = RouteTimeouts()
            switch RouteTimeouts.lower(rule.timeouts) {
            case .success(let lowered): timeouts = lowered
            case .failure(let problem): unsupported("spec.rules[\(r)]: \(problem.message)")
            }
            var retry: RouteRetry?
            switch RouteRetry.lower(rule.retry) {
            case .success(let lowered): retry = lowered
            case .failure(let problem): unsupported("spec.rules[\(r)]: \(problem.message)")
            }
            var backends: [WeightedBackend] = []
            for (b, ref) in (rule.backendRefs ?? []).enumerated() {
                var backend = resolve(ref, routeNamespace: routeKey.namespace, policies: &facts.backendPolicies)
                for (f, filter) in (ref.filters ?? []).enumerated() {
                    switch RouteFilter.lower(filter, at: .backendRef, matchedPrefix: nil) {
                    case .success(let lowered): backend.filters.append(lowered)
                    case .failure(let problem): unsupported("spec.rules[\(r)].backendRefs[\(b)].filters[\(f)]: \(problem.message)")
                    }
                }
                backends.append(backend)
            }
            if facts.refProblem == nil, let failure = backends.compactMap(\.failure).first { facts.refProblem = failure }
            let matches = (rule.matches ?? []).isEmpty ? [HTTPRouteMatch()] : rule.matches!
            for (m, match) in matches.enumerated() {
                switch Self.matchSpec(match) {
                case .success(let spec):
                    // Lowered per match: ReplacePrefixMatch replaces this match's prefix.
                    var filters: [RouteFilter] = []
                    for (f, filter) in (rule.filters ?? []).enumerated() {
                        switch RouteFilter.lower(filter, at: .rule, matchedPrefix: spec.pathKind == .pathPrefix ? spec.path : nil) {
                        case .success(.requestMirror(var mirror)):
                            // The mirror's backendRef resolves like a backendRef (ReferenceGrant,
                            // ResolvedRefs); one that fails is not configured (the proxy skips it).
                            let ref = filter.requestMirror!.backendRef
                            mirror.backend = resolve(
                                HTTPBackendRef(group: ref.group, kind: ref.kind, name: ref.name, namespace: ref.namespace, port: ref.port),
                                routeNamespace: routeKey.namespace, policies: &facts.backendPolicies)
                            if facts.refProblem == nil, let failure = mirror.backend.failure { facts.refProblem = failure }
                            filters.append(.requestMirror(mirror))
                        case .success(let lowered): filters.append(lowered)
                        case .failure(let problem): unsupported("spec.rules[\(r)].filters[\(f)]: \(problem.message)")
                        }
                    }
                    facts.entries.append(RouteTableEntry(
                        route: routeKey, rule: r, match: m, ruleName: rule.name, hostnames: [], matchSpec: spec,
                        filters: filters, backends: backends, timeouts: timeouts, retry: retry, routeCreated: route.metadata.creationTimestamp ?? ""
                    ))
                case .failure(let problem):
                    unsupported("spec.rules[\(r)].matches[\(m)]: \(problem.message)")
                }
            }
        }
        // A field the models do not know may change what a request gets (a retry, a mirror):
        // the route is refused, never served without it (the builder also warns, once per generation).
        let unknown = route.unknownFieldPaths
        if !unknown.isEmpty { unsupported("\(unknown.joined(separator: ", ")): not supported by Portway") }
        return facts
    }

    struct MatchProblem: Error { var message: String }

    /// Validates one match and applies its defaults.
    static func matchSpec(_ match: HTTPRouteMatch) -> Result<RouteMatchSpec, MatchProblem> {
        var spec = RouteMatchSpec()
        if let path = match.path {
            guard let kind = PathMatchKind(rawValue: path.type ?? "PathPrefix") else {
                return .failure(MatchProblem(message: "path match type \(path.type ?? "") is not supported"))
            }
            spec.pathKind = kind
            spec.path = path.value ?? "/"
            switch kind {
            case .exact, .pathPrefix:
                guard spec.path.hasPrefix("/") else { return .failure(MatchProblem(message: "path \"\(spec.path)\" must start with /")) }
            case .regularExpression:
                if case .failure(let error) = GatewayRegex.compile(spec.path) {
                    return .failure(MatchProblem(message: "path regular expression \"\(spec.path)\" is rejected: \(error)"))
                }
            }
        }
        for (list, isHeader) in [(match.headers ?? [], true), (match.queryParams ?? [], false)] {
            var out: [ValueMatch] = []
            for item in list {
                guard let kind = ValueMatchKind(rawValue: item.type ?? "Exact") else {
                    return .failure(MatchProblem(message: "\(isHeader ? "header" : "query parameter") match type \(item.type ?? "") is not supported"))
                }
                if kind == .regularExpression, case .failure(let error) = GatewayRegex.compile(item.value) {
                    return .failure(MatchProblem(
                        message: "\(isHeader ? "header" : "query parameter") \(item.name) regular expression \"\(item.value)\" is rejected: \(error)"))
                }
                // Later duplicates of a name are ignored, as the spec says.
                let name = isHeader ? item.name.lowercased() : item.name
                if out.contains(where: { $0.name == name }) { continue }
                out.append(ValueMatch(kind: kind, name: name, value: item.value))
            }
            if isHeader { spec.headers = out } else { spec.queryParams = out }
        }
        if let method = match.method {
            guard GatewayAPI.methods.contains(method) else { return .failure(MatchProblem(message: "method \(method) is not supported")) }
            spec.method = method
        }
        return .success(spec)
    }

    /// Resolves one backendRef to its Service's endpoints, or says why it cannot be used; with the
    /// BackendTLSPolicy of its Service port, if any (`policies` gets every policy naming that port).
    private func resolve(_ ref: HTTPBackendRef, routeNamespace: String, policies: inout Set<NamespacedName>) -> WeightedBackend {
        let target = NamespacedName(namespace: ref.namespace ?? routeNamespace, name: ref.name)
        var backend = WeightedBackend(weight: max(0, ref.weight ?? 1), reference: target, port: ref.port)
        func fail(_ reason: String, _ message: String) -> WeightedBackend {
            backend.failure = BackendFailure(reason: reason, message: message)
            return backend
        }
        guard (ref.group ?? "") == "", (ref.kind ?? "Service") == "Service" else {
            return fail("InvalidKind", "backendRef \(target) is a \(ref.kind ?? "Service") of group \"\(ref.group ?? "")\"; only Services are supported")
        }
        if target.namespace != routeNamespace,
           !granted(from: (GatewayAPI.group, "HTTPRoute", routeNamespace), to: ("", "Service", target)) {
            return fail("RefNotPermitted", "backendRef to Service \(target) is not permitted by a ReferenceGrant in namespace \(target.namespace)")
        }
        guard let service = service(target) else {
            return fail("BackendNotFound", "Service \(target) does not exist")
        }
        guard let port = ref.port else {
            return fail("BackendNotFound", "backendRef to Service \(target) has no port")
        }
        guard let servicePort = (service.spec.ports ?? []).first(where: { $0.port == port && ($0.protocol ?? "TCP") == "TCP" }) else {
            return fail("BackendNotFound", "Service \(target) has no TCP port \(port)")
        }
        if !backendPolicies.isEmpty {
            policies.formUnion(backendPolicies.relevantPolicies(service: target, portName: servicePort.name))
            backend.tls = backendPolicies.policy(service: target, portName: servicePort.name)?.tls
        }
        // HTTPS to the backend is what a BackendTLSPolicy gives.
        if let appProtocol = servicePort.appProtocol, GatewayAPI.unsupportedBackendProtocols.contains(appProtocol),
           !(backend.tls != nil && appProtocol == "https") {
            return fail("UnsupportedProtocol", "Service \(target) port \(port) has appProtocol \(appProtocol); the proxy speaks HTTP/1.1 to backends (and WebSocket: kubernetes.io/ws)")
        }
        var ignored: [TranslationWarning] = []
        let all = BackendResolver.backends(
            of: ServiceKey(namespace: target.namespace, name: target.name), in: index, source: .endpointSlices, warnings: &ignored
        )[PortKey(name: servicePort.name ?? "", proto: .tcp)] ?? []
        let ready = all.filter { $0.state == .active }
        let chosen = ready.isEmpty ? all.filter { $0.state == .terminating } : ready
        backend.endpoints = chosen.map { BackendEndpoint(address: $0.address.description, port: Int($0.port), terminating: $0.state == .terminating) }
        return backend
    }

    /// Attaches the route to the listeners `parentRef` selects; returns the Accepted condition's (status, reason, message).
    private func attach(
        _ facts: RouteFacts, parentRef: ParentReference, to listeners: inout [ListenerFacts], gatewayNamespace: String, listenerSet: NamespacedName?
    ) -> (Bool, String, String) {
        // A Gateway parentRef reaches the Gateway's own listeners only; a ListenerSet one, that set's.
        let candidates = listeners.indices.filter { i in
            listeners[i].listenerSet == listenerSet
                && (parentRef.sectionName.map { $0 == listeners[i].listener.name } ?? true)
                && (parentRef.port.map { $0 == listeners[i].listener.port } ?? true)
        }
        guard !candidates.isEmpty else {
            return (false, "NoMatchingParent", "no listener matches sectionName \(parentRef.sectionName ?? "(any)") and port \(parentRef.port.map(String.init) ?? "(any)")")
        }
        // `Same` is the namespace of the listener's owner: the Gateway's, or the ListenerSet's.
        let allowed = candidates.filter { allows(listeners[$0], routeNamespace: facts.key.namespace, gatewayNamespace: listeners[$0].listenerSet?.namespace ?? gatewayNamespace) }
        guard !allowed.isEmpty else {
            return (false, "NotAllowedByListeners", "no listener allows HTTPRoutes from namespace \(facts.key.namespace)")
        }
        let routeHostnames = facts.route.spec.hostnames ?? []
        let intersecting = allowed.compactMap { i in Hostnames.intersect(listener: listeners[i].listener.hostname, route: routeHostnames).map { (i, $0) } }
        guard !intersecting.isEmpty else {
            return (false, "NoMatchingListenerHostname", "no listener hostname matches the route's hostnames")
        }
        if let unsupported = facts.unsupported { return (false, unsupported.reason, unsupported.message) }
        for (i, hostnames) in intersecting where !listeners[i].attached.contains(where: { $0.route == facts.key }) {
            listeners[i].attached.append((facts.key, hostnames))
        }
        // Attached (the listeners count it, as the spec says), but served only through accepted
        // listeners: with none (all conflicted), the route is not accepted. Envoy Gateway's reason.
        let accepted = intersecting.filter { listeners[$0.0].accepted }
        guard !accepted.isEmpty else {
            let why = intersecting.map { i, _ in "\(listeners[i].listener.name): \(listeners[i].conflict?.reason ?? "not accepted")" }
            return (false, "NoReadyListeners", "every listener the route attaches to is not accepted (\(why.joined(separator: "; "))): it is not served")
        }
        return (true, "Accepted", "attached to \(accepted.map { listeners[$0.0].listener.name }.joined(separator: ", "))")
    }

    private func allows(_ listener: ListenerFacts, routeNamespace: String, gatewayNamespace: String) -> Bool {
        guard !listener.supportedKinds.isEmpty else { return false }
        let namespaces = listener.listener.allowedRoutes?.namespaces
        switch namespaces?.from ?? "Same" {
        case "All": return true
        case "Same": return routeNamespace == gatewayNamespace
        case "Selector":
            guard let selector = namespaces?.selector else { return false }
            var labels = namespaceLabels(routeNamespace) ?? [:]
            labels[GatewayAPI.namespaceNameLabel] = routeNamespace
            return LabelSelectorMatcher.matches(selector, labels: labels)
        default: return false
        }
    }

    private func parentStatus(_ facts: RouteFacts, parentRef: ParentReference, accepted: (Bool, String, String)) -> RouteParentStatus {
        let meta = facts.route.metadata
        var conditions = [condition("Accepted", accepted.0, accepted.1, accepted.2, meta)]
        if let problem = facts.refProblem {
            conditions.append(condition("ResolvedRefs", false, problem.reason, problem.message, meta))
        } else {
            conditions.append(condition("ResolvedRefs", true, "ResolvedRefs", "all references resolved", meta))
        }
        return RouteParentStatus(parentRef: parentRef, controllerName: options.controllerName, conditions: conditions)
    }

    // MARK: Tables and status

    private mutating func buildTables(_ gatewayKey: NamespacedName, listeners: [ListenerFacts], routes: [NamespacedName: RouteFacts]) {
        let programmed = listeners.filter(\.programmed)
        for port in Set(programmed.map(\.listener.port)).sorted() {
            var tables: [ListenerRouteTable] = []
            for fact in programmed where fact.listener.port == port {
                var entries: [RouteTableEntry] = []
                for (routeKey, hostnames) in fact.attached {
                    for var entry in routes[routeKey]?.entries ?? [] {
                        entry.hostnames = hostnames
                        entry.setListenerPort(port)
                        entries.append(entry)
                    }
                }
                entries.sort(by: RoutePrecedence.before)
                var table = ListenerRouteTable(
                    name: fact.listener.name, hostname: fact.listener.hostname?.lowercased(),
                    protocol: ListenerProtocol(rawValue: fact.listener.protocol) ?? .http, certificates: fact.certificates, rules: entries
                )
                table.listenerSet = fact.listenerSet
                tables.append(table)
            }
            tables.sort { RoutePrecedence.listenerBefore($0.hostname, $1.hostname) }
            // Every HTTPS listener of a port has the port's validation (HTTP beside HTTPS conflicts).
            let validation = programmed.first { $0.listener.port == port && $0.clientValidation != nil }?.clientValidation
            state.tables.append(PortRouteTable(gateway: gatewayKey, port: port, listeners: tables, clientValidation: validation))
        }
    }

    /// One listener's Accepted, Conflicted, ResolvedRefs and Programmed conditions. A conflicted
    /// listener's Accepted reason is `Invalid` on a Gateway (the conformance suite's, for
    /// GatewayListenerProtocolAndRouteKindConflicts) and the conflict's own on a ListenerSet, whose
    /// Programmed False also carries it (as upstream's ListenerSet tests want).
    private func listenerConditions(_ fact: ListenerFacts, meta: ObjectMeta, ofListenerSet: Bool) -> [Condition] {
        var conditions: [Condition] = []
        if let conflict = fact.conflict, fact.protocolSupported || ofListenerSet {
            conditions.append(condition("Accepted", false, ofListenerSet ? conflict.reason : "Invalid", conflict.message, meta))
        } else if !fact.protocolSupported {
            conditions.append(condition("Accepted", false, "UnsupportedProtocol", fact.unserved?.message ?? "", meta))
        } else if let ca = fact.caProblem, ca.noneValid {
            let owner = ofListenerSet ? "the Gateway's spec.tls.frontend" : "spec.tls.frontend"
            conditions.append(condition("Accepted", false, "NoValidCACertificate", "no caCertificateRef of \(owner) for port \(fact.listener.port) resolved: \(ca.message)", meta))
        } else {
            conditions.append(condition("Accepted", true, "Accepted", "listener accepted", meta))
        }
        if let conflict = fact.conflict {
            conditions.append(condition("Conflicted", true, conflict.reason, conflict.message, meta))
        } else {
            conditions.append(condition("Conflicted", false, "NoConflicts", "no conflicts", meta))
        }
        if fact.invalidKinds {
            conditions.append(condition("ResolvedRefs", false, "InvalidRouteKinds", "only HTTPRoute is supported in allowedRoutes.kinds", meta))
        } else if let problem = fact.certificateProblem {
            conditions.append(condition("ResolvedRefs", false, problem.reason, problem.message, meta))
        } else if let ca = fact.caProblem {
            conditions.append(condition("ResolvedRefs", false, ca.reason, ca.message, meta))
        } else {
            conditions.append(condition("ResolvedRefs", true, "ResolvedRefs", "all references resolved", meta))
        }
        if fact.programmed {
            conditions.append(condition("Programmed", true, "Programmed", "served by every node's proxy", meta))
        } else {
            let message = "not served: \(fact.unserved?.message ?? "listener is not accepted or has unresolved references")"
            conditions.append(condition("Programmed", false, ofListenerSet ? fact.conflict?.reason ?? "Invalid" : "Invalid", message, meta))
        }
        return conditions
    }

    /// Why the Gateway itself is not accepted, whatever its listeners: (reason, message); nil when it is.
    private func refusal(_ gateway: Gateway) -> (reason: String, message: String)? {
        if let ref = gateway.spec.infrastructure?.parametersRef {
            // Portway defines no parameters kind: any reference is one it cannot resolve (GatewayInvalidParametersRef).
            return ("InvalidParameters", "spec.infrastructure.parametersRef \(ref.group)/\(ref.kind) \(ref.name): Portway takes no parameters; remove the reference")
        }
        if let addresses = gateway.spec.addresses, addresses.contains(where: { !($0.value ?? "").isEmpty }) {
            // An entry without a value asks for any address (GatewayAddressEmpty): the Service's are
            // that. A static address is one Portway cannot assign (GatewayStaticAddresses).
            return ("UnsupportedAddress", "spec.addresses with a value is not supported; the address comes from the Gateway's Service")
        }
        return nil
    }

    private func gatewayStatus(_ gateway: Gateway, listeners: [ListenerFacts]) -> GatewayStatus {
        let meta = gateway.metadata
        var statuses: [ListenerStatus] = []
        for fact in listeners {
            let conditions = listenerConditions(fact, meta: meta, ofListenerSet: false)
            statuses.append(ListenerStatus(name: fact.listener.name, supportedKinds: fact.supportedKinds, attachedRoutes: fact.attached.count, conditions: conditions))
        }
        var conditions: [Condition] = []
        // The spec: ListenersNotValid whenever a listener is not accepted (conflicted ones included),
        // with Accepted True as long as one listener is.
        let invalid = listeners.filter { !$0.accepted }.map { "\($0.listener.name) (\($0.unserved?.reason ?? "invalid"))" }
        let valid = listeners.filter(\.accepted).map(\.listener.name)
        let refused = refusal(gateway)
        if let refused {
            conditions.append(condition("Accepted", false, refused.reason, refused.message, meta))
        } else if !listeners.isEmpty, valid.isEmpty {
            conditions.append(condition("Accepted", false, "ListenersNotValid", "no listener is valid: \(invalid.joined(separator: ", "))", meta))
        } else if !invalid.isEmpty {
            conditions.append(condition("Accepted", true, "ListenersNotValid", "listeners not valid: \(invalid.joined(separator: ", ")); accepted: \(valid.joined(separator: ", "))", meta))
        } else {
            conditions.append(condition("Accepted", true, "Accepted", "handled by \(options.controllerName)", meta))
        }
        let addresses = gatewayAddresses(gateway)
        if listeners.contains(where: \.programmed) && conditions[0].status == "True" {
            conditions.append(addresses.isEmpty
                ? condition("Programmed", false, "AddressNotAssigned", "the Gateway's Service (\(GatewayServices.serviceName(gateway: gateway.metadata.name))) has no address yet (no Service, a LoadBalancer without ingress, or no Node with an InternalIP)", meta)
                : condition("Programmed", true, "Programmed", "served by every node's proxy", meta))
        } else if let refused {
            conditions.append(condition("Programmed", false, "Invalid", "not served: the Gateway is not accepted (\(refused.reason))", meta))
        } else {
            conditions.append(condition("Programmed", false, "Invalid", "no listener is programmed", meta))
        }
        // Removed as soon as no validation allows the fallback any more (the spec).
        let frontend = gateway.spec.tls?.frontend
        let insecure = ([frontend?.default] + (frontend?.perPort ?? []).map { Optional($0.tls) })
            .contains { $0?.validation?.mode == FrontendTLSValidation.allowInsecureFallback }
        if insecure {
            conditions.append(condition(
                "InsecureFrontendValidationMode", true, "ConfigurationChanged",
                "spec.tls.frontend allows clients without a valid certificate (AllowInsecureFallback)", meta))
        }
        return GatewayStatus(addresses: addresses.isEmpty ? nil : addresses, conditions: conditions, listeners: statuses)
    }

    /// The addresses clients use to reach the Gateway, from its Service(s) by type: LoadBalancer,
    /// the `status.loadBalancer.ingress` IPs and hostnames (none until the load balancer assigns
    /// them: Programmed False, AddressNotAssigned); NodePort, the InternalIP of every Node in the
    /// snapshot (the leader's snapshot holds every Node); ClusterIP, the cluster IPs. In Service
    /// name order, each address once.
    private func gatewayAddresses(_ gateway: Gateway) -> [GatewayAddress] {
        let namespace = Self.namespace(gateway.metadata)
        let services = Self.ordered(index.services)
            .filter { Self.namespace($0.metadata) == namespace && $0.metadata.labels?[GatewayAPI.gatewayNameLabel] == gateway.metadata.name }
            .sorted { $0.metadata.name < $1.metadata.name }
        var out: [GatewayAddress] = []
        for service in services {
            switch service.spec.type ?? "ClusterIP" {
            case "LoadBalancer":
                for ingress in service.status?.loadBalancer?.ingress ?? [] {
                    if let ip = ingress.ip, IPAddress(ip) != nil {
                        out.append(GatewayAddress(type: "IPAddress", value: ip))
                    } else if let host = ingress.hostname, !host.isEmpty {
                        out.append(GatewayAddress(type: "Hostname", value: host))
                    }
                }
            case "NodePort":
                out += nodeInternalIPs.map { GatewayAddress(type: "IPAddress", value: $0) }
            default:
                let ips = service.spec.clusterIPs ?? service.spec.clusterIP.map { [$0] } ?? []
                out += ips.filter { $0 != "None" && IPAddress($0) != nil }.map { GatewayAddress(type: "IPAddress", value: $0) }
            }
        }
        var seen = Set<GatewayAddress>()
        return out.filter { seen.insert($0).inserted }
    }

    /// The InternalIP addresses of the snapshot's Nodes, in Node name order.
    private var nodeInternalIPs: [String] {
        Self.ordered(index.nodes).flatMap { node in
            (node.status?.addresses ?? []).filter { $0.type == "InternalIP" && IPAddress($0.address) != nil }.map(\.address)
        }
    }

    private func key(_ meta: ObjectMeta) -> NamespacedName {
        NamespacedName(namespace: Self.namespace(meta), name: meta.name)
    }

    private func condition(_ type: String, _ status: Bool, _ reason: String, _ message: String, _ meta: ObjectMeta) -> Condition {
        Condition(type: type, status: status ? "True" : "False", reason: reason, message: message, observedGeneration: meta.generation)
    }
}

/// A ListenerSet naming one of the Gateways built, and whether the Gateway allows it.
struct ListenerSetFacts {
    var listenerSet: ListenerSet
    var key: NamespacedName
    /// False: the Gateway's `spec.allowedListeners` does not take it (none of its listeners is served).
    var allowed: Bool
}

// MARK: ListenerSets (GEP-1713)

extension GatewayBuild {
    /// The ListenerSets naming `gateway` in precedence order (oldest first, then by namespace and
    /// name); the listeners of those it allows are validated and appended to `listeners`: each set's
    /// listeners among themselves as a Gateway's are, then against every listener before them (the
    /// Gateway's own, then older sets'), which wins: a later listener on the same port with another
    /// protocol is ProtocolConflict, with the same hostname HostnameConflict, and is not served.
    mutating func attachListenerSets(to gatewayKey: NamespacedName, gateway: Gateway, listeners: inout [ListenerFacts]) -> [ListenerSetFacts] {
        var sets: [ListenerSetFacts] = []
        var seen = Set<NamespacedName>()
        let candidates = Self.ordered(index.listenerSets)
            .filter { ClusterIndex.parentGateway(of: $0).map { NamespacedName(namespace: $0.namespace, name: $0.name) } == gatewayKey }
            .sorted { ($0.metadata.creationTimestamp ?? "", key($0.metadata)) < ($1.metadata.creationTimestamp ?? "", key($1.metadata)) }
        for listenerSet in candidates {
            let setKey = key(listenerSet.metadata)
            guard seen.insert(setKey).inserted else { continue }  // Files only: warned in `build` for every set.
            let allowed = allowsListenerSet(gateway, gatewayNamespace: gatewayKey.namespace, setNamespace: setKey.namespace)
            sets.append(ListenerSetFacts(listenerSet: listenerSet, key: setKey, allowed: allowed))
            guard allowed else { continue }
            var facts = validateEach(listenerSet.spec.listeners, owner: setKey, ownerKind: ListenerSet.resource.kind)
            for i in facts.indices {
                facts[i].listenerSet = setKey
                let mine = facts[i].listener
                let holders = listeners.filter { $0.conflict == nil && $0.protocolSupported && $0.listener.port == mine.port }
                if let other = holders.first(where: { $0.listener.protocol != mine.protocol }) {
                    facts[i].conflict = ("ProtocolConflict", "port \(mine.port) is taken by \(Self.owner(other)) with protocol \(other.listener.protocol); this \(mine.protocol) listener is not served")
                } else if let other = holders.first(where: { ($0.listener.hostname?.lowercased() ?? "") == (mine.hostname?.lowercased() ?? "") }) {
                    let host = mine.hostname.map { "hostname \($0.lowercased())" } ?? "no hostname"
                    facts[i].conflict = ("HostnameConflict", "port \(mine.port) with \(host) is taken by \(Self.owner(other)), which takes precedence; not served")
                }
            }
            Self.markConflicts(&facts)
            listeners += facts
        }
        return sets
    }

    /// "listener NAME of Gateway" or "listener NAME of ListenerSet ns/name", for messages.
    private static func owner(_ fact: ListenerFacts) -> String {
        "listener \(fact.listener.name) of " + (fact.listenerSet.map { "ListenerSet \($0)" } ?? "the Gateway")
    }

    /// `spec.allowedListeners.namespaces`: None (the default), Same, All or Selector.
    private func allowsListenerSet(_ gateway: Gateway, gatewayNamespace: String, setNamespace: String) -> Bool {
        let namespaces = gateway.spec.allowedListeners?.namespaces
        switch namespaces?.from ?? "None" {
        case "All": return true
        case "Same": return setNamespace == gatewayNamespace
        case "Selector":
            guard let selector = namespaces?.selector else { return false }
            var labels = namespaceLabels(setNamespace) ?? [:]
            labels[GatewayAPI.namespaceNameLabel] = setNamespace
            return LabelSelectorMatcher.matches(selector, labels: labels)
        default: return false
        }
    }

    /// A ListenerSet's status: NotAllowed when its Gateway does not take it; else Accepted while
    /// one listener is, Programmed while one is served, and each listener's conditions (a
    /// conflicted one: Accepted and Programmed False with the conflict's reason, as upstream).
    func listenerSetStatus(_ set: ListenerSetFacts, listeners: [ListenerFacts]) -> ListenerSetStatus {
        let meta = set.listenerSet.metadata
        guard set.allowed else {
            let message = "Gateway \(ClusterIndex.parentGateway(of: set.listenerSet).map(\.description) ?? "?") does not allow ListenerSets from namespace \(set.key.namespace) (spec.allowedListeners)"
            return ListenerSetStatus(
                conditions: [condition("Accepted", false, "NotAllowed", message, meta), condition("Programmed", false, "NotAllowed", message, meta)], listeners: [])
        }
        var statuses: [ListenerStatus] = []
        for fact in listeners {
            let conditions = listenerConditions(fact, meta: meta, ofListenerSet: true)
            statuses.append(ListenerStatus(name: fact.listener.name, supportedKinds: fact.supportedKinds, attachedRoutes: fact.attached.count, conditions: conditions))
        }
        // A set is attached while one of its listeners is served: one whose certificate reference
        // is not permitted does not count (ListenerSetReferenceGrant).
        let valid = listeners.filter(\.programmed).map(\.listener.name)
        let invalid = listeners.filter { !$0.programmed }.map { "\($0.listener.name) (\($0.unserved?.reason ?? "invalid"))" }
        var conditions: [Condition] = []
        if valid.isEmpty {
            let message = "no listener is valid: \(invalid.joined(separator: ", "))"
            conditions.append(condition("Accepted", false, "ListenersNotValid", message, meta))
            conditions.append(condition("Programmed", false, "ListenersNotValid", message, meta))
        } else {
            conditions.append(invalid.isEmpty
                ? condition("Accepted", true, "Accepted", "attached to its Gateway", meta)
                : condition("Accepted", true, "ListenersNotValid", "listeners not valid: \(invalid.joined(separator: ", ")); accepted: \(valid.joined(separator: ", "))", meta))
            conditions.append(condition("Programmed", true, "Programmed", "served by every node's proxy", meta))
        }
        return ListenerSetStatus(conditions: conditions, listeners: statuses)
    }
}

/// Matches Kubernetes label selectors (matchLabels and matchExpressions, ANDed).
public enum LabelSelectorMatcher {
    public static func matches(_ selector: LabelSelector, labels: [String: String]) -> Bool {
        for (k, v) in selector.matchLabels ?? [:] where labels[k] != v { return false }
        for requirement in selector.matchExpressions ?? [] {
            let value = labels[requirement.key]
            let values = requirement.values ?? []
            switch requirement.operator {
            case "In": if !(value.map(values.contains) ?? false) { return false }
            case "NotIn": if let value, values.contains(value) { return false }
            case "Exists": if value == nil { return false }
            case "DoesNotExist": if value != nil { return false }
            default: return false  // An unknown operator selects nothing.
            }
        }
        return true
    }
}

/// Standard base64 (with or without padding); nil on any other character.
enum Base64 {
    static func decode(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count * 3 / 4)
        var buffer: UInt32 = 0
        var bits = 0
        for c in text.utf8 {
            let value: UInt32
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = UInt32(c - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = UInt32(c - UInt8(ascii: "a")) + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt32(c - UInt8(ascii: "0")) + 52
            case UInt8(ascii: "+"): value = 62
            case UInt8(ascii: "/"): value = 63
            case UInt8(ascii: "="): continue
            case UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: " "): continue
            default: return nil
            }
            buffer = buffer << 6 | value
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits)))
            }
        }
        return out
    }
}
