import KubeModels

/// A frontend one Service asks for. Which Service gets a frontend claimed twice is decided across
/// keys (`L4Reconciler`): the first claimant in namespace/name order.
struct FrontendClaim: Hashable, Sendable {
    var entry: FrontendEntry
    /// "Service ns/name", and the field the frontend came from, for the conflict warning.
    var object: String
    var field: String
}

/// A warning of one key, or the place in its warning order where a claim's conflict warning (if
/// the claim loses) goes: conflict warnings depend on other keys and are rendered at read time.
enum KeyNote: Hashable, Sendable {
    case warning(TranslationWarning)
    case claim(Int)
}

/// The translation of one Service key: its claims in emission order and its notes.
struct KeyResult: Hashable, Sendable {
    var claims: [FrontendClaim] = []
    /// Empty when they would be only the claims in order (no warning: the usual case, an array
    /// per Service saved): `forEachNote` gives them back.
    var notes: [KeyNote] = []
    /// True when a port has a nodePort: the key depends on the node's addresses.
    var usesNodeAddresses = false

    var isEmpty: Bool { claims.isEmpty && notes.isEmpty && !usesNodeAddresses }

    /// Calls `body` with each note in emission order.
    func forEachNote(_ body: (KeyNote) -> Void) {
        if notes.isEmpty {
            for i in claims.indices { body(.claim(i)) }
        } else {
            for note in notes { body(note) }
        }
    }

    /// Drops `notes` when they are only the claims in order.
    mutating func compactNotes() {
        guard notes.count == claims.count else { return }
        for (i, note) in notes.enumerated() where note != .claim(i) { return }
        notes = []
    }
}

/// Translates the Services stored under one key (usually one) into their frontend claims. Pure:
/// the result depends only on those Services, their endpoint objects and the node's addresses.
struct ServiceTranslation {
    private let index: ClusterIndex
    private let options: TranslatorOptions
    private let nodeIPv4: [IPv4Address]
    private var result = KeyResult()

    init(index: ClusterIndex, options: TranslatorOptions, nodeIPv4: [IPv4Address]) {
        self.index = index
        self.options = options
        self.nodeIPv4 = nodeIPv4
    }

    /// The result for `key`.
    static func translate(_ key: ServiceKey, index: ClusterIndex, options: TranslatorOptions, nodeIPv4: [IPv4Address]) -> KeyResult {
        var run = ServiceTranslation(index: index, options: options, nodeIPv4: nodeIPv4)
        for service in index.services[key] ?? [] { run.translate(service, key: key) }
        run.result.compactNotes()
        return run.result
    }

    private mutating func warn(_ object: String, _ field: String, _ message: String) {
        result.notes.append(.warning(TranslationWarning(object: object, field: field, message: message)))
    }

    private mutating func translate(_ service: Service, key: ServiceKey) {
        let object = "Service \(key.description)"
        guard !key.name.isEmpty else {
            warn("Service \(key.namespace)/", "metadata.name", "missing name; Service ignored")
            return
        }
        let spec = service.spec
        let type: FrontendType
        switch spec.type ?? "ClusterIP" {
        case "ClusterIP": type = .clusterIP
        case "NodePort": type = .nodePort
        case "LoadBalancer": type = .loadBalancer
        case "ExternalName": return
        case let other:
            warn(object, "spec.type", "unknown Service type \"\(other)\"; Service ignored")
            return
        }
        if spec.clusterIP == "None" || spec.clusterIPs?.first == "None" { return }  // Headless: DNS only.
        guard KubeProxyRules.isServedByPortway(service) else { return }  // Another proxy's (labels).
        guard let ports = spec.ports, !ports.isEmpty else { return }

        let shape = parseShape(service, type: type, object: object)
        var backendWarnings: [TranslationWarning] = []
        let backends = BackendResolver.backends(of: key, in: index, source: options.endpointsSource, warnings: &backendWarnings)
        result.notes += backendWarnings.map(KeyNote.warning)

        var seenPorts = Set<PortKey>()
        for (i, port) in ports.enumerated() {
            guard let number = validPort(port.port) else {
                warn(object, "spec.ports[\(i)].port", "port \(port.port) is out of range 1-65535; port ignored")
                continue
            }
            guard let proto = parseProtocol(port.protocol) else {
                warn(object, "spec.ports[\(i)].protocol", "unknown protocol \"\(port.protocol ?? "")\"; port ignored")
                continue
            }
            let portKey = PortKey(name: port.name ?? "", proto: proto)
            guard seenPorts.insert(portKey).inserted else {
                warn(object, "spec.ports[\(i)].name", "duplicate port \"\(portKey.name)\"/\(proto.rawValue); port ignored")
                continue
            }
            var nodePort: UInt16?
            if type != .clusterIP, let value = port.nodePort, value != 0 {
                // 0 means "not allocated yet", as in the API; anything else must be a port.
                if let valid = validPort(value) {
                    nodePort = valid
                    result.usesNodeAddresses = true
                } else {
                    warn(object, "spec.ports[\(i)].nodePort", "nodePort \(value) is out of range 1-65535; no NodePort frontends for this port")
                }
            }
            let all = backends[portKey] ?? []
            let local = (shape.externalLocal || shape.internalLocal) ? all.filter { $0.nodeName == options.nodeName } : all
            let reference = ServiceReference(namespace: key.namespace, name: key.name, port: number, portName: portKey.name)
            var emit = EmitContext(key: key, object: object, reference: reference, proto: proto, shape: shape)

            emit.backends = shape.internalLocal ? local : all
            for (ip, field) in shape.clusterIPs {
                add(&emit, .v4(ip), number, .clusterIP, [.clusterIP, .nonRoutable], field: field)
            }
            emit.backends = shape.externalLocal ? local : all
            if let nodePort {
                let field = "spec.ports[\(i)].nodePort"
                add(&emit, .v4(.any), nodePort, .nodePort, [.nodePort, .nonRoutable], field: field)
                for ip in nodeIPv4 { add(&emit, .v4(ip), nodePort, .nodePort, [.nodePort], field: field) }
            }
            for (ip, field) in shape.loadBalancerIPs {
                add(&emit, .v4(ip), number, .loadBalancer, [.loadBalancer], field: field)
            }
            for (ip, field) in shape.externalIPs {
                add(&emit, .v4(ip), number, .externalIPs, [.externalIPs], field: field)
            }
        }
    }

    /// What is common to every port of a Service.
    struct Shape {
        var clusterIPs: [(IPv4Address, String)] = []
        var loadBalancerIPs: [(IPv4Address, String)] = []
        var externalIPs: [(IPv4Address, String)] = []
        var externalLocal = false
        var internalLocal = false
        var affinityTimeout: UInt32?
    }

    struct EmitContext {
        var key: ServiceKey
        var object: String
        var reference: ServiceReference
        var proto: L4Protocol
        var shape: Shape
        var backends: [Backend] = []
    }

    private mutating func add(_ c: inout EmitContext, _ address: IPAddress, _ port: UInt16, _ type: FrontendType, _ base: ServiceFlags, field: String) {
        let frontend = Frontend(address: address, port: port, proto: c.proto)
        var flags = base
        if c.shape.externalLocal && type != .clusterIP { flags.insert(.local) }
        if c.shape.internalLocal && type == .clusterIP { flags.insert(.internalLocal) }
        if c.shape.affinityTimeout != nil { flags.insert(.sessionAffinity) }
        let entry = FrontendEntry(
            frontend: frontend, type: type, flags: flags, affinityTimeoutSeconds: c.shape.affinityTimeout,
            service: c.reference, backends: c.backends
        )
        result.notes.append(.claim(result.claims.count))
        result.claims.append(FrontendClaim(entry: entry, object: c.object, field: field))
    }

    /// Parses the addresses, policies and affinity of a Service, warning about what is unusable.
    private mutating func parseShape(_ service: Service, type: FrontendType, object: String) -> Shape {
        let spec = service.spec
        var shape = Shape()
        if let list = spec.clusterIPs, !list.isEmpty {
            shape.clusterIPs = parseIPs(list.enumerated().map { ($1, "spec.clusterIPs[\($0)]") }, object: object)
        } else if let single = spec.clusterIP, !single.isEmpty {
            shape.clusterIPs = parseIPs([(single, "spec.clusterIP")], object: object)
        }
        if type == .loadBalancer {
            // Hostname-only ingress entries (some cloud balancers) give no address to serve.
            // Only VIP-mode entries (ipMode VIP or absent) are addresses this node serves.
            var ingress: [(String, String)] = []
            for (i, entry) in (service.status?.loadBalancer?.ingress ?? []).enumerated() {
                guard let ip = entry.ip else { continue }
                switch KubeProxyRules.ingressMode(entry) {
                case .vip: ingress.append((ip, "status.loadBalancer.ingress[\(i)].ip"))
                case .proxy: continue
                case .unknown(let mode):
                    warn(object, "status.loadBalancer.ingress[\(i)].ipMode", "unknown ipMode \"\(mode)\" (VIP or Proxy); no frontend for \(ip)")
                }
            }
            shape.loadBalancerIPs = parseIPs(ingress, object: object)
        }
        shape.externalIPs = parseIPs((spec.externalIPs ?? []).enumerated().map { ($1, "spec.externalIPs[\($0)]") }, object: object)
        shape.externalLocal = parsePolicy(spec.externalTrafficPolicy, field: "spec.externalTrafficPolicy", object: object)
        shape.internalLocal = parsePolicy(spec.internalTrafficPolicy, field: "spec.internalTrafficPolicy", object: object)

        switch spec.sessionAffinity ?? "None" {
        case "None": break
        case "ClientIP":
            shape.affinityTimeout = Translator.defaultAffinityTimeoutSeconds
            if let value = spec.sessionAffinityConfig?.clientIP?.timeoutSeconds {
                if (1...Translator.maxAffinityTimeoutSeconds).contains(value) {
                    shape.affinityTimeout = UInt32(value)
                } else {
                    warn(object, "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                         "timeout \(value) is out of range 1-\(Translator.maxAffinityTimeoutSeconds); using \(Translator.defaultAffinityTimeoutSeconds)")
                }
            }
        case let other:
            warn(object, "spec.sessionAffinity", "unknown session affinity \"\(other)\"; using None")
        }
        return shape
    }

    /// IPv4 addresses of `items` (text, field path), deduplicated. IPv6 is skipped silently (not
    /// served yet); anything that is not an IP address is a warning.
    private mutating func parseIPs(_ items: [(String, String)], object: String) -> [(IPv4Address, String)] {
        var out: [(IPv4Address, String)] = []
        for (text, field) in items {
            switch IPAddress.parse(text) {
            case .v4(let ip)?:
                if !out.contains(where: { $0.0 == ip }) { out.append((ip, field)) }
            case .v6?:
                continue
            case nil:
                warn(object, field, "\"\(text)\" is not an IP address; ignored")
            }
        }
        return out
    }

    /// True for `Local`; `Cluster` or absent is false; anything else is a warning and means Cluster.
    private mutating func parsePolicy(_ value: String?, field: String, object: String) -> Bool {
        switch value ?? "Cluster" {
        case "Cluster": return false
        case "Local": return true
        case let other:
            warn(object, field, "unknown traffic policy \"\(other)\"; using Cluster")
            return false
        }
    }
}
