import LoadBalancer
import KubeModels

/// A trap `portway explain` points out.
public struct ExplainWarning: Hashable, Codable, Sendable, CustomStringConvertible {
    /// route-multiple-parents, listener-any-hostname, route-shadowed, shared-nodeport, not-portway,
    /// listener-not-served.
    public var kind: String
    public var message: String

    public init(kind: String, message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { "\(kind): \(message)" }
}

/// One backend endpoint a request may go to, with its backendRef's weight.
public struct ExplainBackend: Hashable, Codable, Sendable {
    public var address: String
    public var port: Int
    public var weight: Int
    /// The TLS the proxy speaks to it (its Service port's BackendTLSPolicy); nil: plain HTTP.
    public var tls: BackendTLS?

    public init(address: String, port: Int, weight: Int, tls: BackendTLS? = nil) {
        self.address = address
        self.port = port
        self.weight = weight
        self.tls = tls
    }
}

/// A listener of the Gateway port the request goes to that is not served, and whether its
/// hostname takes the request's host (it would serve it, were it served).
public struct ExplainUnservedListener: Hashable, Sendable {
    public var listener: UnservedListener
    public var takesHost: Bool

    public init(listener: UnservedListener, takesHost: Bool) {
        self.listener = listener
        self.takesHost = takesHost
    }
}

/// A parentRef of an HTTPRoute that names the Gateway but did not attach, with its `Accepted`
/// condition's reason (NoMatchingParent, NotAllowedByListeners, NoMatchingListenerHostname,
/// UnsupportedValue, NoReadyListeners).
public struct NotAttachedRoute: Hashable, Sendable {
    public var route: NamespacedName
    public var parentRef: ParentReference
    public var reason: String
    public var message: String

    public init(route: NamespacedName, parentRef: ParentReference, reason: String, message: String) {
        self.route = route
        self.parentRef = parentRef
        self.reason = reason
        self.message = message
    }

    /// The parentRef as written: `name`, then ` section S`, ` port P` when given.
    public var parentText: String {
        var text = parentRef.namespace.map { "\($0)/\(parentRef.name)" } ?? parentRef.name
        if let section = parentRef.sectionName { text += " section \(section)" }
        if let port = parentRef.port { text += " port \(port)" }
        return text
    }
}

/// How this node handles one request: `portway explain`'s answer.
public struct Explanation: Hashable, Sendable {
    /// The map entry the destination hits; nil when none.
    public var frontend: FrontendEntry?
    /// "l4", "l7lb" or "none".
    public var mode: String
    public var proxyPort: UInt16?
    public var gateway: NamespacedName?
    public var listenerPort: Int?
    public var decision: RouteDecision?
    public var backends: [ExplainBackend]
    /// The HTTP status the client gets (nil for L4 and unknown destinations: no HTTP involved; and
    /// when the connection is refused).
    public var code: Int?
    /// True when nothing listens on the proxy port (no listener of the Gateway port is served): the
    /// datapath resets the connection, there is no HTTP answer.
    public var refused: Bool
    /// Why the request gets `code` (404) or is refused, in a sentence; nil otherwise.
    public var reason: String?
    /// The listeners of the Gateway port that are not served.
    public var unservedListeners: [ExplainUnservedListener]
    /// The routes that name the Gateway in a parentRef but did not attach through it.
    public var notAttached: [NotAttachedRoute]
    public var warnings: [ExplainWarning]
    /// What this node's agent reports it serves of the Gateway (its report Lease); nil when not
    /// known (files, no report read).
    public var nodeReport: ExplainNodeReport?
    /// The Gateway port's client certificate validation (`spec.tls.frontend`); nil: none asked for.
    public var clientValidation: FrontendValidation?

    public init(frontend: FrontendEntry? = nil, mode: String = "none", proxyPort: UInt16? = nil, gateway: NamespacedName? = nil, listenerPort: Int? = nil,
                decision: RouteDecision? = nil, backends: [ExplainBackend] = [], code: Int? = nil, refused: Bool = false, reason: String? = nil,
                unservedListeners: [ExplainUnservedListener] = [], notAttached: [NotAttachedRoute] = [], warnings: [ExplainWarning] = []) {
        self.frontend = frontend
        self.mode = mode
        self.proxyPort = proxyPort
        self.gateway = gateway
        self.listenerPort = listenerPort
        self.decision = decision
        self.backends = backends
        self.code = code
        self.refused = refused
        self.reason = reason
        self.unservedListeners = unservedListeners
        self.notAttached = notAttached
        self.warnings = warnings
    }
}

/// What one node's report (`NodeProgramReport`) says of the Gateway a request reaches.
public struct ExplainNodeReport: Hashable, Sendable {
    public var node: String
    /// The generation of the Gateway in the objects read.
    public var gatewayGeneration: Int64
    /// The generation the node's proxy serves; nil when its report does not name the Gateway.
    public var generation: Int64?
    /// Listener → why the node does not serve it.
    public var failures: [String: String]
    /// Why the node does not serve the generation yet though nothing failed (a port whose redirect
    /// is not in its maps yet, or whose Service has no frontend there yet): "port N" → what it waits for.
    public var waiting: [String: String]
    /// `programmed` (this generation, no failure), `failed`, `pending` (an older generation or
    /// none, or something awaited), `absent` (the node publishes no report).
    public var state: String

    /// The winning HTTPRoute, its generation in the objects read, and the generation this node
    /// serves (nil: none); nil when no route wins.
    public var route: (name: NamespacedName, generation: Int64, served: Int64?)?

    public static func == (a: Self, b: Self) -> Bool {
        (a.node, a.gatewayGeneration, a.generation, a.failures, a.waiting, a.state) == (b.node, b.gatewayGeneration, b.generation, b.failures, b.waiting, b.state)
            && a.route?.name == b.route?.name && a.route?.generation == b.route?.generation && a.route?.served == b.route?.served
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(node)
        hasher.combine(state)
        hasher.combine(route?.name)
    }

    /// The entry of `report` (nil: the node has none) for `gateway` at `generation`, and for the
    /// winning `route` (its name and generation in the objects read) when one wins.
    public init(node: String, gateway: NamespacedName, gatewayGeneration: Int64, report: NodeProgramReport?, route: (name: NamespacedName, generation: Int64)? = nil) {
        self.node = node
        self.gatewayGeneration = gatewayGeneration
        self.route = route.map { ($0.name, $0.generation, report?.routeGeneration($0.name)) }
        let program = report?.gateways[gateway.description]
        generation = program?.generation
        failures = program?.failures ?? [:]
        waiting = program?.pending ?? [:]
        if report == nil {
            state = "absent"
        } else if let program, program.generation >= gatewayGeneration {
            state = !failures.isEmpty ? "failed" : waiting.isEmpty ? "programmed" : "pending"
        } else {
            state = "pending"
        }
    }

    /// One line for `explain -o text`.
    public var text: String {
        var out = "node report (\(node)): "
        switch state {
        case "absent": out += "none published"
        case "pending": out += generation.map { "at generation \($0), the Gateway is at \(gatewayGeneration)" } ?? "has not programmed this Gateway"
        default: out += "serves generation \(generation ?? 0)"
        }
        for (listener, message) in failures.sorted(by: { $0.key < $1.key }) { out += "; listener \(listener): \(message)" }
        for (key, message) in waiting.sorted(by: { $0.key < $1.key }) { out += "; \(key): \(message)" }
        if let route {
            out += "; route \(route.name) " + (route.served.map { "at generation \($0)" } ?? "not served") + " (the route is at \(route.generation))"
        }
        return out
    }
}

/// Follows one request through the desired state (maps) and the route tables, as this node would.
public struct Explainer: Sendable {
    public var snapshot: ClusterSnapshot
    public var gateways: GatewayState
    /// The desired state with the Gateway frontends already programmed (`GatewayPlan.program`).
    public var state: DesiredL4State
    /// The Service ports that front Portway's Gateways (`GatewayPlan.frontends`).
    public var keys: [ServicePortKey: ProxyPortKey]

    public init(snapshot: ClusterSnapshot, plan: GatewayPlan, state: DesiredL4State) {
        self.snapshot = snapshot
        self.gateways = plan.state
        self.state = state
        self.keys = plan.frontends
    }

    public func explain(to destination: Frontend, request: RouteRequest) -> Explanation {
        var result = Explanation()
        guard let entry = state.entries.first(where: { $0.frontend == destination }) else {
            return result
        }
        result.frontend = entry
        let serviceKey = NamespacedName(namespace: entry.service.namespace, name: entry.service.name)
        if let warning = sharedNodePort(entry) { result.warnings.append(warning) }
        guard entry.flags.contains(.l7LoadBalancer), let proxyPort = entry.l7ProxyPort,
              let key = keys[ServicePortKey(service: serviceKey, port: Int(entry.service.port))] else {
            result.mode = "l4"
            result.backends = entry.backends.map { ExplainBackend(address: $0.address.description, port: Int($0.port), weight: 1) }
            if let warning = notPortway(serviceKey) { result.warnings.append(warning) }
            return result
        }
        result.mode = "l7lb"
        result.proxyPort = proxyPort
        result.gateway = key.gateway
        result.listenerPort = key.port
        let host = Hostnames.normalize(host: request.host)
        let unserved = gateways.unservedListeners.filter { $0.gateway == key.gateway && $0.port == key.port }
        result.unservedListeners = unserved.map { ExplainUnservedListener(listener: $0, takesHost: $0.takes(host: host)) }
        result.notAttached = notAttached(to: key.gateway)
        let wouldTake = unserved.filter { $0.takes(host: host) }
        for listener in wouldTake {
            result.warnings.append(ExplainWarning(
                kind: "listener-not-served",
                message: "listener \(listener.name) (\(listener.hostname ?? "any host")) of Gateway \(key.gateway) would take \(host) on port \(key.port), but is not served: \(listener.conditionText) \(listener.reason): \(listener.message)"))
        }
        let notServedText = wouldTake.map { "\($0.name) \($0.conditionText) \($0.reason)" }.joined(separator: ", ")
        guard let table = gateways.table(gateway: key.gateway, port: key.port) else {
            // No programmed listener on this port: the proxy has no table for it and does not
            // listen on its proxy port; the datapath resets the connection (pw_reply_reset).
            result.refused = true
            let why = unserved.isEmpty
                ? "Gateway \(key.gateway) has no listener on port \(key.port)"
                : "no listener of Gateway \(key.gateway) on port \(key.port) is served (\(unserved.map { "\($0.name): \($0.conditionText) \($0.reason)" }.joined(separator: "; ")))"
            result.reason = "\(why): nothing listens on proxy port \(proxyPort), so this node resets the connection (no HTTP answer)"
            return result
        }
        result.clientValidation = table.clientValidation
        let decision = RouteMatcher.decide(table, request: request)
        result.decision = decision
        result.code = decision.code
        if decision.code == 404 {
            var why: String
            if let name = decision.listener {
                let rules = table.listeners.first { $0.name == name }?.rules ?? []
                why = rules.isEmpty ? "listener \(name) takes \(host), but no route is attached to it" : "listener \(name) takes \(host), but no rule of its routes matches"
            } else {
                why = "no served listener of Gateway \(key.gateway) on port \(key.port) takes \(host)"
                if !wouldTake.isEmpty { why += "; \(wouldTake.count == 1 ? "listener" : "listeners") \(notServedText) would, but \(wouldTake.count == 1 ? "is" : "are") not served" }
            }
            if !result.notAttached.isEmpty {
                why += "; \(result.notAttached.count) parentRef\(result.notAttached.count == 1 ? "" : "s") naming this Gateway did not attach (\(result.notAttached.map { "\($0.route): \($0.reason)" }.joined(separator: ", ")))"
            }
            result.reason = why
        }
        if let winner = decision.entry, decision.code == 200 || decision.code == 503 || decision.code == 500 {
            for backend in winner.backends where backend.weight > 0 {
                result.backends += backend.endpoints.map { ExplainBackend(address: $0.address, port: $0.port, weight: backend.weight, tls: backend.tls) }
            }
        }
        if let listener = table.listeners.first(where: { $0.name == decision.listener }), listener.hostname == nil {
            result.warnings.append(ExplainWarning(kind: "listener-any-hostname", message: "listener \(listener.name) of Gateway \(key.gateway) has no hostname: it takes every host on port \(key.port)"))
        }
        if let winner = decision.entry {
            if let warning = multipleParents(winner.route) { result.warnings.append(warning) }
            let shadowed = decision.candidates.filter { $0.result == .lost && $0.route != winner.route && $0.reason.hasPrefix("matches") }
            for loser in shadowed {
                // The candidate's reason without its "matches, but (loses to X:)" lead-in.
                var why = loser.reason
                for lead in ["matches, but loses to \(winner.route) rule \(winner.rule): ", "matches, but "] where why.hasPrefix(lead) {
                    why = String(why.dropFirst(lead.count))
                    break
                }
                result.warnings.append(ExplainWarning(
                    kind: "route-shadowed",
                    message: "route \(loser.route) rule \(loser.rule) also matches \(Hostnames.normalize(host: request.host))\(request.path), but \(winner.route) rule \(winner.rule) wins: \(why)"
                ))
            }
        }
        return result
    }

    /// The parentRefs naming `gateway` whose Accepted condition is False, by route.
    private func notAttached(to gateway: NamespacedName) -> [NotAttachedRoute] {
        var out: [NotAttachedRoute] = []
        for (route, parents) in gateways.status.routes.sorted(by: { $0.key < $1.key }) {
            for parent in parents where (parent.parentRef.kind ?? "Gateway") == "Gateway"
                && NamespacedName(namespace: parent.parentRef.namespace ?? route.namespace, name: parent.parentRef.name) == gateway {
                guard let accepted = parent.conditions?.first(where: { $0.type == "Accepted" }), accepted.status == "False" else { continue }
                out.append(NotAttachedRoute(route: route, parentRef: parent.parentRef, reason: accepted.reason ?? "", message: accepted.message ?? ""))
            }
        }
        return out
    }

    /// A LoadBalancer address whose Services lead to more than one Gateway.
    private func sharedNodePort(_ entry: FrontendEntry) -> ExplainWarning? {
        guard entry.type == .loadBalancer else { return nil }
        let sameAddress = state.entries.filter { $0.type == .loadBalancer && $0.frontend.address == entry.frontend.address }
        var leads: [String: Set<String>] = [:]  // Gateway (or "Service ns/name") → ports
        for other in sameAddress {
            let service = NamespacedName(namespace: other.service.namespace, name: other.service.name)
            let nodePort = snapshot.services.first { GatewayBuild.namespace($0.metadata) == service.namespace && $0.metadata.name == service.name }?
                .spec.ports?.first { $0.port == Int(other.service.port) }?.nodePort
            let target = keys[ServicePortKey(service: service, port: Int(other.service.port))].map { "Gateway \($0.gateway)" } ?? gatewayLabel(service).map { "Gateway \($0) (not Portway's)" } ?? "Service \(service)"
            leads[target, default: []].insert("\(other.frontend.port)" + (nodePort.map { " (NodePort \($0))" } ?? ""))
        }
        guard leads.count > 1 else { return nil }
        let list = leads.keys.sorted().map { "\($0) via port \(leads[$0]!.sorted().joined(separator: ", "))" }.joined(separator: "; ")
        return ExplainWarning(kind: "shared-nodeport", message: "LoadBalancer address \(entry.frontend.address) leads to different Gateways by port: \(list)")
    }

    private func gatewayLabel(_ service: NamespacedName) -> NamespacedName? {
        snapshot.services.first { GatewayBuild.namespace($0.metadata) == service.namespace && $0.metadata.name == service.name }?
            .metadata.labels?[GatewayAPI.gatewayNameLabel].map { NamespacedName(namespace: service.namespace, name: $0) }
    }

    /// The Service is labelled for a Gateway this node does not route.
    private func notPortway(_ service: NamespacedName) -> ExplainWarning? {
        guard let gateway = gatewayLabel(service) else { return nil }
        if let controller = gateways.foreignGateways[gateway] {
            let why = controller.isEmpty ? "its GatewayClass does not exist" : "its GatewayClass names controller \(controller)"
            return ExplainWarning(kind: "not-portway", message: "Service \(service) fronts Gateway \(gateway), but \(why), so this node forwards it at L4 and does not route by host or path")
        }
        if !gateways.ownedGateways.contains(gateway) {
            return ExplainWarning(kind: "not-portway", message: "Service \(service) is labelled for Gateway \(gateway), which does not exist; forwarded at L4")
        }
        return nil
    }

    /// An HTTPRoute attached to several Gateways.
    private func multipleParents(_ route: NamespacedName) -> ExplainWarning? {
        guard let object = snapshot.httpRoutes.first(where: { GatewayBuild.namespace($0.metadata) == route.namespace && $0.metadata.name == route.name }) else { return nil }
        var parents: [NamespacedName] = []
        for ref in object.spec.parentRefs ?? [] where (ref.kind ?? "Gateway") == "Gateway" {
            let gateway = NamespacedName(namespace: ref.namespace ?? route.namespace, name: ref.name)
            if !parents.contains(gateway) { parents.append(gateway) }
        }
        guard parents.count > 1 else { return nil }
        return ExplainWarning(kind: "route-multiple-parents", message: "route \(route) is attached to \(parents.count) Gateways (\(parents.map(\.description).joined(separator: ", "))): editing it changes all of them")
    }
}
