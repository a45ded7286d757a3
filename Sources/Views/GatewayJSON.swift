import GatewayCore
import KubeModels
import LoadBalancer

extension Explanation {
    /// The `portway explain` JSON (docs/CLI-JSON.md).
    public var json: JSONObject {
        var out: JSONObject = [:]
        out["frontend"] = frontend.map { entry in
            var f = Views.json(for: entry.frontend)
            f["type"] = .string(entry.type.rawValue)
            f["flags"] = .array(entry.flags.names.map { .string($0) })
            f["service"] = .object(Views.json(for: entry.service))
            return .object(f)
        } ?? .null
        out["mode"] = .string(mode)
        out["proxyPort"] = .integer(proxyPort)
        out["gateway"] = gateway.map { .object(["namespace": .string($0.namespace), "name": .string($0.name)]) } ?? .null
        if let name = decision?.listener {
            var listener: JSONObject = ["name": .string(name), "hostname": decision?.listenerHostname.map { .string($0) } ?? .null, "port": .integer(listenerPort)]
            if let set = decision?.listenerSet { listener["listenerSet"] = GatewayJSON.name(set) }
            // Only on a port asking for client certificates (as in `routes`).
            if let validation = clientValidation { listener["clientValidation"] = GatewayJSON.clientValidation(validation) }
            out["listener"] = .object(listener)
        } else {
            out["listener"] = .null
        }
        out["route"] = decision?.entry.map { .object(["namespace": .string($0.route.namespace), "name": .string($0.route.name), "rule": .int($0.rule)]) } ?? .null
        out["policy"] = decision?.entry.map(GatewayJSON.policy) ?? .null
        out["candidates"] = .array((decision?.candidates ?? []).map { c in
            .object(["route": .string(c.route.description), "rule": .int(c.rule), "match": .int(c.match), "result": .string(c.result.rawValue), "reason": .string(c.reason)])
        })
        out["backends"] = .array(backends.map { b in
            var object: JSONObject = ["address": .string(b.address), "port": .int(b.port), "weight": .int(b.weight)]
            // Only for a backend with a BackendTLSPolicy (as in `routes`).
            if let tls = b.tls { object["tls"] = GatewayJSON.backendTLS(tls) }
            return .object(object)
        })
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
        if let report = nodeReport {
            let failures = report.failures.sorted { $0.key < $1.key }.map { JSONObject.Member(key: $0.key, value: .string($0.value)) }
            let waiting = report.waiting.sorted { $0.key < $1.key }.map { JSONObject.Member(key: $0.key, value: .string($0.value)) }
            var route = JSONValue.null
            if let winner = report.route {
                let fields: JSONObject = [
                    "name": .string(winner.name.description), "generation": .int(Int(winner.generation)), "served": .integer(winner.served),
                ]
                route = .object(fields)
            }
            let fields: JSONObject = [
                "failures": .object(JSONObject(failures)), "gatewayGeneration": .int(Int(report.gatewayGeneration)),
                "generation": .integer(report.generation), "node": .string(report.node), "state": .string(report.state),
                "waiting": .object(JSONObject(waiting)), "route": route,
            ]
            out["nodeReport"] = .object(fields)
        }
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
            if let validation = clientValidation {
                out += "client certificates: \(validation.mode.rawValue), CA \(validation.caCertificateRefs.map(\.description).joined(separator: ", "))"
                out += validation.mode == .allowValidOnly ? ": a client without a certificate of these CAs fails the TLS handshake\n" : ": none is asked for\n"
            }
            if let nodeReport { out += nodeReport.text + "\n" }
            for item in unservedListeners {
                let l = item.listener
                out += "not served: listener \(l.name)\(l.listenerSet.map { " of ListenerSet \($0)" } ?? "") \(l.protocol) \(l.hostname ?? "*(any host)")\(item.takesHost ? " (takes this host)" : ""): \(l.conditionText) \(l.reason): \(l.message)\n"
            }
            if let decision {
                out += "listener: \(decision.listener.map { "\($0) (\(decision.listenerHostname ?? "any host"))" } ?? "none takes this host")"
                out += decision.listenerSet.map { " of ListenerSet \($0)\n" } ?? "\n"
                for c in decision.candidates {
                    out += "  \(c.result.rawValue.padding(12)) \(c.route) rule \(c.rule) match \(c.match): \(c.reason)\n"
                }
                out += "route: \(decision.entry.map { "\($0.route) rule \($0.rule)" } ?? "none")\n"
                if let entry = decision.entry {
                    let policy = GatewayJSON.policyText(entry)
                    out += "policy: \(policy.isEmpty ? "none (the proxy's own timeouts)" : policy.joined(separator: ", "))\n"
                }
            }
            for item in notAttached {
                out += "not attached: \(item.route) (parentRef \(item.parentText)): \(item.reason): \(item.message)\n"
            }
            out += "backends: \(backends.isEmpty ? "none" : backends.map { "\($0.address):\($0.port) (weight \($0.weight)\($0.tls.map { ", \(GatewayJSON.backendTLSText($0))" } ?? ""))" }.joined(separator: ", "))\n"
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
        var out: JSONObject = [
            "gateway": .object(["namespace": .string(table.gateway.namespace), "name": .string(table.gateway.name)]),
            "port": .int(table.port),
            "listeners": .array(table.listeners.map { listener in
                var object: JSONObject = [
                    "name": .string(listener.name),
                    "hostname": listener.hostname.map { .string($0) } ?? .null,
                    "protocol": .string(listener.protocol.rawValue),
                    "certificates": .array(listener.certificates.map { .string($0.description) }),
                    "rules": .array(listener.rules.map { .object(rule($0)) }),
                ]
                // Only on a ListenerSet's listener (the Gateway's own keep their JSON as it was).
                if let set = listener.listenerSet { object["listenerSet"] = name(set) }
                return .object(object)
            }),
        ]
        // Only on a port with client certificate validation (the others keep their JSON as it was).
        if let validation = table.clientValidation { out["clientValidation"] = clientValidation(validation) }
        return out
    }

    /// `{"mode", "caCertificateRefs": ["ns/name", …]}` of a port's client certificate validation.
    public static func clientValidation(_ validation: FrontendValidation) -> JSONValue {
        .object([
            "mode": .string(validation.mode.rawValue),
            "caCertificateRefs": .array(validation.caCertificateRefs.map { .string($0.description) }),
        ])
    }

    /// `{"namespace", "name"}` of an object.
    public static func name(_ key: NamespacedName) -> JSONValue {
        .object(["namespace": .string(key.namespace), "name": .string(key.name)])
    }

    /// An unserved listener: `{"gateway", "port", "name", "hostname", "protocol", "condition", "status", "reason", "message"}`.
    public static func unservedListener(_ listener: UnservedListener) -> JSONObject {
        var out: JSONObject = [
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
        if let set = listener.listenerSet { out["listenerSet"] = name(set) }
        return out
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
            "policy": policy(entry),
            "backends": .array(entry.backends.map { b in
                var object: JSONObject = [
                    "service": .object(["namespace": .string(b.reference.namespace), "name": .string(b.reference.name)]),
                    "port": .integer(b.port),
                    "weight": .int(b.weight),
                    "code": .integer(b.failureCode),
                    "reason": b.failure.map { .string("\($0.reason): \($0.message)") } ?? b.tls?.problem.map { .string($0) } ?? .null,
                    "endpoints": .array(b.endpoints.map { .object(["address": .string($0.address), "port": .int($0.port), "terminating": .bool($0.terminating)]) }),
                ]
                // Only for a backend with a BackendTLSPolicy: plain HTTP backends keep their JSON.
                if let tls = b.tls { object["tls"] = backendTLS(tls) }
                return .object(object)
            }),
        ]
    }

    /// A backend's TLS (its BackendTLSPolicy): `{"policy", "sni", "caCertificateRefs", "wellKnownCACertificates",
    /// "subjectAltNames", "problem"}`.
    public static func backendTLS(_ tls: BackendTLS) -> JSONValue {
        .object([
            "policy": name(tls.policy),
            "sni": .string(tls.hostname),
            "caCertificateRefs": .array(tls.caCertificateRefs.map { .string($0.description) }),
            "wellKnownCACertificates": tls.systemCACertificates ? .string("System") : .null,
            "subjectAltNames": .array(tls.subjectAltNames.map { .object(["type": .string($0.type.rawValue), "value": .string($0.value)]) }),
            "problem": tls.problem.map { .string($0) } ?? .null,
        ])
    }

    /// `TLS SNI host, CA ConfigMap ns/name[, SAN URI:…][ (not usable: …)]` for the text forms.
    public static func backendTLSText(_ tls: BackendTLS) -> String {
        "TLS SNI \(tls.hostname), CA \(tls.caSource)"
            + (tls.subjectAltNames.isEmpty ? "" : ", SAN \(tls.subjectAltNames.map(\.description).joined(separator: " "))")
            + (tls.problem.map { " (not usable: \($0))" } ?? "")
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
        case .requestMirror(let m):
            out["requestMirror"] = .object([
                "backendRef": .object([
                    "namespace": .string(m.backend.reference.namespace), "name": .string(m.backend.reference.name), "port": .integer(m.backend.port),
                ]),
                "fraction": .object(["numerator": .int(m.numerator), "denominator": .int(m.denominator)]),
                "reason": m.backend.failure.map { .string("\($0.reason): \($0.message)") } ?? .null,
                "endpoints": .int(m.backend.endpoints.count),
            ])
        case .cors(let c):
            let strings = { (list: [String]) -> JSONValue in .array(list.map { .string($0) }) }
            out["cors"] = .object([
                "allowOrigins": strings(c.allowOrigins), "allowCredentials": .bool(c.allowCredentials), "allowMethods": strings(c.allowMethods),
                "allowHeaders": strings(c.allowHeaders), "exposeHeaders": strings(c.exposeHeaders), "maxAge": .int(c.maxAge),
            ])
        }
        return .object(out)
    }

    /// What the proxy does around forwarding a rule's requests, beside its filters:
    /// `{"timeouts": {"request", "backendRequest"}, "retry": {"codes", "attempts", "backoff"} |
    /// null, "mirrors": [{"service", "port", "numerator", "denominator", "endpoints", "reason"}]}`;
    /// durations are Gateway API Durations, a timeout null when not set (the proxy's own settings
    /// apply; "0s" disables it). docs/CLI-JSON.md.
    public static func policy(_ entry: RouteTableEntry) -> JSONValue {
        let duration = { (seconds: Double?) -> JSONValue in seconds.map { .string(GatewayDuration.format($0)) } ?? .null }
        return .object([
            "timeouts": .object(["request": duration(entry.timeouts.request), "backendRequest": duration(entry.timeouts.backendRequest)]),
            "retry": entry.retry.map { r in
                .object(["codes": .array(r.codes.map { .int($0) }), "attempts": .int(r.attempts), "backoff": duration(r.backoffSeconds)])
            } ?? .null,
            "mirrors": .array(entry.mirrors.map { m in
                .object([
                    "service": .object(["namespace": .string(m.backend.reference.namespace), "name": .string(m.backend.reference.name)]),
                    "port": .integer(m.backend.port), "numerator": .int(m.numerator), "denominator": .int(m.denominator),
                    "endpoints": .int(m.backend.endpoints.count),
                    "reason": m.backend.failure.map { .string("\($0.reason): \($0.message)") } ?? .null,
                ])
            }),
        ])
    }

    /// The policy in words (`timeout request 500ms`, `retry 2x on 502, 503 backoff 100ms`,
    /// `mirror 1/2 to shop/audit:80`), empty when the rule sets none.
    public static func policyText(_ entry: RouteTableEntry) -> [String] {
        var parts = entry.timeouts.descriptions.map { "timeout \($0)" }
        if let r = entry.retry {
            let on = r.codes.map(String.init) + ["connect errors", "resets", "backend timeouts"]
            parts.append("retry \(r.attempts)x on \(on.joined(separator: " / ")) backoff \(GatewayDuration.format(r.backoffSeconds))")
        }
        for m in entry.mirrors {
            parts.append("mirror \(m.numerator)/\(m.denominator) to \(m.backend.reference):\(m.backend.port.map(String.init) ?? "?")"
                + (m.backend.failure.map { " (not configured: \($0.reason))" } ?? ""))
        }
        return parts
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
                "\(b.reference):\(b.port.map(String.init) ?? "?") w\(b.weight)"
                    + (b.failureCode.map { " (\($0)\(b.failure.map { " \($0.reason)" } ?? (b.tls?.problem != nil ? " BackendTLSPolicy not usable" : " no endpoints")))" } ?? " (\(b.endpoints.count) endpoints)")
                    + (b.tls.map { " [\(backendTLSText($0))]" } ?? "")
            }.joined(separator: ", ")
        }
        let filters = entry.filters.map(\.typeName).filter { $0 != "RequestRedirect" }
        let policy = policyText(entry)
        return parts.joined(separator: " ") + " → " + action + (filters.isEmpty ? "" : " [\(filters.joined(separator: ", "))]")
            + (policy.isEmpty ? "" : " {\(policy.joined(separator: ", "))}")
    }
}
