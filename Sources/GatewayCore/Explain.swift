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

    public init(address: String, port: Int, weight: Int) {
        self.address = address
        self.port = port
        self.weight = weight
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
                result.backends += backend.endpoints.map { ExplainBackend(address: $0.address, port: $0.port, weight: backend.weight) }
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
            for parent in parents where NamespacedName(namespace: parent.parentRef.namespace ?? route.namespace, name: parent.parentRef.name) == gateway {
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

extension Explanation {
    /// The `portway explain` JSON (docs/CLI-JSON.md).
    public var json: JSONObject {
        var out: JSONObject = [:]
        out["frontend"] = frontend.map { entry in
            var f = LoadBalancer.json(for: entry.frontend)
            f["type"] = .string(entry.type.rawValue)
            f["flags"] = .array(entry.flags.names.map { .string($0) })
            f["service"] = .object(LoadBalancer.json(for: entry.service))
            return .object(f)
        } ?? .null
        out["mode"] = .string(mode)
        out["proxyPort"] = .integer(proxyPort)
        out["gateway"] = gateway.map { .object(["namespace": .string($0.namespace), "name": .string($0.name)]) } ?? .null
        if let name = decision?.listener {
            out["listener"] = .object(["name": .string(name), "hostname": decision?.listenerHostname.map { .string($0) } ?? .null, "port": .integer(listenerPort)])
        } else {
            out["listener"] = .null
        }
        out["route"] = decision?.entry.map { .object(["namespace": .string($0.route.namespace), "name": .string($0.route.name), "rule": .int($0.rule)]) } ?? .null
        out["candidates"] = .array((decision?.candidates ?? []).map { c in
            .object(["route": .string(c.route.description), "rule": .int(c.rule), "match": .int(c.match), "result": .string(c.result.rawValue), "reason": .string(c.reason)])
        })
        out["backends"] = .array(backends.map { .object(["address": .string($0.address), "port": .int($0.port), "weight": .int($0.weight)]) })
        out["code"] = .integer(code)
        out["refused"] = .bool(refused)
        out["reason"] = reason.map { .string($0) } ?? .null
        out["unservedListeners"] = .array(unservedListeners.map { item in
            var object = GatewayJSON.unservedListener(item.listener)
            object["gateway"] = nil
            object["port"] = nil
            object["takesHost"] = .bool(item.takesHost)
            return .object(object)
        })
        out["notAttached"] = .array(notAttached.map { item in
            let ref = item.parentRef
            return .object([
                "route": .object(["namespace": .string(item.route.namespace), "name": .string(item.route.name)]),
                "parentRef": .object([
                    "namespace": ref.namespace.map { .string($0) } ?? .null, "name": .string(ref.name),
                    "sectionName": ref.sectionName.map { .string($0) } ?? .null, "port": .integer(ref.port),
                ]),
                "reason": .string(item.reason),
                "message": .string(item.message),
            ])
        })
        out["warnings"] = .array(warnings.map { .object(["kind": .string($0.kind), "message": .string($0.message)]) })
        return out
    }

    /// The human form of `portway explain -o text`.
    public var text: String {
        var out = ""
        guard let frontend else {
            return "frontend: none (this node has no map entry for the destination)\n"
        }
        out += "frontend: \(frontend.frontend) \(frontend.type.rawValue) [\(frontend.flags.names.joined(separator: ", "))] of Service \(frontend.service.namespace)/\(frontend.service.name)\n"
        if mode == "l4" {
            out += "mode: l4 (eBPF forwards the connection; no HTTP routing)\n"
            out += "backends: \(backends.isEmpty ? "none" : backends.map { "\($0.address):\($0.port)" }.joined(separator: ", "))\n"
        } else {
            out += "mode: l7lb → proxy port \(proxyPort.map(String.init) ?? "?")\n"
            if let gateway { out += "gateway: \(gateway) port \(listenerPort.map(String.init) ?? "?")\n" }
            for item in unservedListeners {
                let l = item.listener
                out += "not served: listener \(l.name) \(l.protocol) \(l.hostname ?? "*(any host)")\(item.takesHost ? " (takes this host)" : ""): \(l.conditionText) \(l.reason): \(l.message)\n"
            }
            if let decision {
                out += "listener: \(decision.listener.map { "\($0) (\(decision.listenerHostname ?? "any host"))" } ?? "none takes this host")\n"
                for c in decision.candidates {
                    out += "  \(c.result.rawValue.padding(12)) \(c.route) rule \(c.rule) match \(c.match): \(c.reason)\n"
                }
                out += "route: \(decision.entry.map { "\($0.route) rule \($0.rule)" } ?? "none")\n"
            }
            for item in notAttached {
                out += "not attached: \(item.route) (parentRef \(item.parentText)): \(item.reason): \(item.message)\n"
            }
            out += "backends: \(backends.isEmpty ? "none" : backends.map { "\($0.address):\($0.port) (weight \($0.weight))" }.joined(separator: ", "))\n"
            if refused {
                out += "code: - (connection reset: \(reason ?? "nothing listens on the proxy port"))\n"
            } else {
                out += "code: \(code.map(String.init) ?? "-")\(reason.map { " (\($0))" } ?? "")\n"
            }
        }
        for warning in warnings { out += "warning: \(warning)\n" }
        return out
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}

/// JSON of the route tables for `portway routes` (docs/CLI-JSON.md).
public enum GatewayJSON {
    public static func table(_ table: PortRouteTable) -> JSONObject {
        [
            "gateway": .object(["namespace": .string(table.gateway.namespace), "name": .string(table.gateway.name)]),
            "port": .int(table.port),
            "listeners": .array(table.listeners.map { listener in
                .object([
                    "name": .string(listener.name),
                    "hostname": listener.hostname.map { .string($0) } ?? .null,
                    "protocol": .string(listener.protocol.rawValue),
                    "certificates": .array(listener.certificates.map { .string($0.description) }),
                    "rules": .array(listener.rules.map { .object(rule($0)) }),
                ])
            }),
        ]
    }

    /// An unserved listener: `{"gateway", "port", "name", "hostname", "protocol", "condition", "status", "reason", "message"}`.
    public static func unservedListener(_ listener: UnservedListener) -> JSONObject {
        [
            "gateway": .object(["namespace": .string(listener.gateway.namespace), "name": .string(listener.gateway.name)]),
            "port": .int(listener.port),
            "name": .string(listener.name),
            "hostname": listener.hostname.map { .string($0) } ?? .null,
            "protocol": .string(listener.protocol),
            "condition": .string(listener.condition),
            "status": .string(listener.condition == "Conflicted" ? "True" : "False"),
            "reason": .string(listener.reason),
            "message": .string(listener.message),
        ]
    }

    public static func rule(_ entry: RouteTableEntry) -> JSONObject {
        let m = entry.matchSpec
        let values = { (list: [ValueMatch]) -> JSONValue in
            .array(list.map { .object(["type": .string($0.kind.rawValue), "name": .string($0.name), "value": .string($0.value)]) })
        }
        return [
            "route": .object(["namespace": .string(entry.route.namespace), "name": .string(entry.route.name)]),
            "rule": .int(entry.rule),
            "match": .int(entry.match),
            "hostnames": .array(entry.hostnames.map { .string($0) }),
            "path": .object(["type": .string(m.pathKind.rawValue), "value": .string(m.path)]),
            "headers": values(m.headers),
            "queryParams": values(m.queryParams),
            "method": m.method.map { .string($0) } ?? .null,
            "filters": .array(entry.filters.map(filter)),
            "backends": .array(entry.backends.map { b in
                .object([
                    "service": .object(["namespace": .string(b.reference.namespace), "name": .string(b.reference.name)]),
                    "port": .integer(b.port),
                    "weight": .int(b.weight),
                    "code": .integer(b.failureCode),
                    "reason": b.failure.map { .string("\($0.reason): \($0.message)") } ?? .null,
                    "endpoints": .array(b.endpoints.map { .object(["address": .string($0.address), "port": .int($0.port), "terminating": .bool($0.terminating)]) }),
                ])
            }),
        ]
    }

    /// A filter as `{"type", <its settings>}` (the Gateway API's shape, from the lowered filter).
    public static func filter(_ f: RouteFilter) -> JSONValue {
        func headers(_ h: HeaderModifier) -> JSONValue {
            let pairs = { (list: [HeaderField]) -> JSONValue in .array(list.map { .object(["name": .string($0.name), "value": .string($0.value)]) }) }
            return .object(["set": pairs(h.set), "add": pairs(h.add), "remove": .array(h.remove.map { .string($0) })])
        }
        func path(_ p: PathModifier?) -> JSONValue {
            guard let p else { return .null }
            switch p {
            case .replaceFullPath(let full):
                return .object(["type": .string(p.typeName), "replaceFullPath": .string(full), "replacePrefixMatch": .null])
            case .replacePrefixMatch(_, let replacement):
                return .object(["type": .string(p.typeName), "replaceFullPath": .null, "replacePrefixMatch": .string(replacement)])
            }
        }
        var out: JSONObject = ["type": .string(f.typeName)]
        switch f {
        case .requestHeaderModifier(let h): out["requestHeaderModifier"] = headers(h)
        case .responseHeaderModifier(let h): out["responseHeaderModifier"] = headers(h)
        case .requestRedirect(let r):
            out["requestRedirect"] = .object([
                "scheme": r.scheme.map { .string($0) } ?? .null, "hostname": r.hostname.map { .string($0) } ?? .null,
                "path": path(r.path), "port": .integer(r.port), "statusCode": .int(r.statusCode),
            ])
        case .urlRewrite(let u):
            out["urlRewrite"] = .object(["hostname": u.hostname.map { .string($0) } ?? .null, "path": path(u.path)])
        }
        return .object(out)
    }

    /// One line for `portway routes -o table`: match → action.
    public static func describe(_ entry: RouteTableEntry) -> String {
        let m = entry.matchSpec
        var parts = [entry.hostnames.isEmpty ? "any host" : entry.hostnames.joined(separator: ",")]
        parts.append("\(m.pathKind.rawValue) \(m.path)")
        if let method = m.method { parts.append(method) }
        parts += m.headers.map { "header \($0.name)\($0.kind == .exact ? "=" : "~")\($0.value)" }
        parts += m.queryParams.map { "query \($0.name)\($0.kind == .exact ? "=" : "~")\($0.value)" }
        let action: String
        if let redirect = entry.redirect {
            action = "redirect \(redirect.statusCode)"
        } else if entry.backends.isEmpty {
            action = "500 (no backends)"
        } else {
            action = entry.backends.map { b in
                "\(b.reference):\(b.port.map(String.init) ?? "?") w\(b.weight)" + (b.failureCode.map { " (\($0)\(b.failure.map { " \($0.reason)" } ?? " no endpoints"))" } ?? " (\(b.endpoints.count) endpoints)")
            }.joined(separator: ", ")
        }
        let filters = entry.filters.map(\.typeName).filter { $0 != "RequestRedirect" }
        return parts.joined(separator: " ") + " → " + action + (filters.isEmpty ? "" : " [\(filters.joined(separator: ", "))]")
    }
}
