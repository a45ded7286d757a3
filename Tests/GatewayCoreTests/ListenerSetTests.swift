import GatewayCore
import KubeModels
import LoadBalancer
import Testing
@testable import GatewayCore

// ListenerSet (GEP-1713, standard channel since v1.5), shaped after the conformance tests
// listenerset-*.go/.yaml of kubernetes-sigs/gateway-api at v1.6.1.

private func gateway(_ name: String, allowed: String? = nil, listeners: String) -> String {
    """
    ---
    apiVersion: gateway.networking.k8s.io/v1
    kind: Gateway
    metadata: {name: \(name), namespace: \(GW.infra), generation: 2}
    spec:
      gatewayClassName: portway
    \(allowed.map { "  allowedListeners:\n    namespaces: \($0)\n" } ?? "")  listeners:
    \(listeners)

    """
}

private func listenerSet(_ name: String, namespace: String = GW.infra, gateway: String, created: String? = nil, listeners: String) -> String {
    """
    ---
    apiVersion: gateway.networking.k8s.io/v1
    kind: ListenerSet
    metadata: {name: \(name), namespace: \(namespace), generation: 3\(created.map { ", creationTimestamp: \"\($0)\"" } ?? "")}
    spec:
      parentRef: {kind: Gateway, group: gateway.networking.k8s.io, name: \(gateway), namespace: \(GW.infra)}
      listeners:
    \(listeners)

    """
}

private func route(_ name: String, namespace: String = GW.infra, parents: String, path: String, backend: String) -> String {
    """
    ---
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {name: \(name), namespace: \(namespace), generation: 1}
    spec:
      parentRefs: \(parents)
      rules:
      - matches: [{path: {type: PathPrefix, value: /\(path)}}]
        backendRefs: [{name: \(backend), namespace: \(GW.infra), port: 8080}]

    """
}

private func http(_ name: String, host: String?, port: Int = 80, from: String = "All") -> String {
    "  - {name: \(name), port: \(port), protocol: HTTP\(host.map { ", hostname: \($0)" } ?? ""), allowedRoutes: {namespaces: {from: \(from)}}}"
}

private func key(_ name: String, _ namespace: String = GW.infra) -> NamespacedName { NamespacedName(namespace: namespace, name: name) }

extension GatewayState {
    /// `Type=Status/Reason` of a ListenerSet's conditions.
    func setConditions(_ name: String, namespace: String = GW.infra) -> [String] {
        (status.listenerSets[key(name, namespace)]?.conditions ?? []).map { "\($0.type)=\($0.status)/\($0.reason ?? "")" }
    }

    /// `Type=Status/Reason` of a ListenerSet listener's conditions, and its attachedRoutes.
    func setListener(_ name: String, _ listener: String, namespace: String = GW.infra) -> [String] {
        guard let l = status.listenerSets[key(name, namespace)]?.listeners?.first(where: { $0.name == listener }) else { return ["no status"] }
        return l.conditions.map { "\($0.type)=\($0.status)/\($0.reason ?? "")" } + ["attachedRoutes=\(l.attachedRoutes)"]
    }

    func attachedListenerSets(_ gateway: String) -> Int? { status.gateways[key(gateway)]?.attachedListenerSets }

    /// `Type=Status/Reason` of the route's parent entry naming `parent` (kind and name).
    func parentConditions(_ route: String, kind: String, name: String) -> [String] {
        let entry = status.routes[key(route)]?.first { ($0.parentRef.kind ?? "Gateway") == kind && $0.parentRef.name == name }
        return (entry?.conditions ?? []).map { "\($0.type)=\($0.status)/\($0.reason ?? "")" }
    }
}

private let accepted = ["Accepted=True/Accepted", "Conflicted=False/NoConflicts", "ResolvedRefs=True/ResolvedRefs", "Programmed=True/Programmed"]

@Suite struct ListenerSetTests {
    /// ListenerSetHTTPRouting: two sets on a Gateway that allows all; routes attach per parentRef
    /// and sectionName, and a Gateway parentRef reaches only the Gateway's own listeners.
    static let routing = gateway("gw", allowed: "{from: All}", listeners: [http("gateway-listener-1", host: "gateway-listener-1.com"), http("gateway-listener-2", host: "gateway-listener-2.com")].joined(separator: "\n"))
        + listenerSet("ls-1", gateway: "gw", listeners: [http("ls-1-listener-1", host: "ls-1-listener-1.com"), http("ls-1-listener-2", host: "ls-1-listener-2.com")].joined(separator: "\n"))
        + listenerSet("ls-2", gateway: "gw", listeners: [http("ls-2-listener-1", host: "ls-2-listener-1.com"), http("ls-2-listener-2", host: "ls-2-listener-2.com")].joined(separator: "\n"))
        + route("all", parents: "[{name: gw}, {kind: ListenerSet, group: gateway.networking.k8s.io, name: ls-1}, {kind: ListenerSet, group: gateway.networking.k8s.io, name: ls-2}]", path: "route", backend: "infra-backend-v1")
        + route("gateway-route", parents: "[{name: gw}]", path: "gateway-route", backend: "infra-backend-v2")
        + route("gateway-section-route", parents: "[{name: gw, sectionName: gateway-listener-1}]", path: "gateway-section-route", backend: "infra-backend-v3")
        + route("ls-1-route", parents: "[{kind: ListenerSet, group: gateway.networking.k8s.io, name: ls-1}]", path: "ls-1-route", backend: "infra-backend-v2")
        + route("ls-1-section-route", parents: "[{kind: ListenerSet, group: gateway.networking.k8s.io, name: ls-1, sectionName: ls-1-listener-1}]", path: "ls-1-section-route", backend: "infra-backend-v3")
        + route("ls-2-route", parents: "[{kind: ListenerSet, group: gateway.networking.k8s.io, name: ls-2}]", path: "ls-2-route", backend: "infra-backend-v2")

    @Test func routesAttachToListenerSetListenersAndTrafficFollows() throws {
        let state = try GW.build(Self.routing)
        #expect(state.attachedListenerSets("gw") == 2)
        #expect(state.setConditions("ls-1") == ["Accepted=True/Accepted", "Programmed=True/Programmed"])
        #expect(state.setListener("ls-1", "ls-1-listener-1") == accepted + ["attachedRoutes=3"])
        #expect(state.setListener("ls-1", "ls-1-listener-2") == accepted + ["attachedRoutes=2"])
        #expect(state.setListener("ls-2", "ls-2-listener-1") == accepted + ["attachedRoutes=2"])
        #expect(state.setListener("ls-2", "ls-2-listener-2") == accepted + ["attachedRoutes=2"])
        // The Gateway's status lists only its own listeners.
        #expect(state.status.gateways[key("gw")]?.listeners?.map(\.name) == ["gateway-listener-1", "gateway-listener-2"])
        #expect(state.listenerConditions("gw", listener: "gateway-listener-1").last == "attachedRoutes=3")
        for (route, parent) in [("all", "gw"), ("all", "ls-1"), ("all", "ls-2"), ("ls-1-route", "ls-1"), ("ls-1-section-route", "ls-1"), ("ls-2-route", "ls-2")] {
            #expect(state.parentConditions(route, kind: parent == "gw" ? "Gateway" : "ListenerSet", name: parent) == ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"], "\(route) → \(parent)")
        }
        // One port table holds all six listeners; the ListenerSet ones say where they come from.
        let table = try #require(state.table(gateway: key("gw"), port: 80))
        #expect(table.listeners.count == 6)
        #expect(table.listeners.first { $0.name == "ls-2-listener-1" }?.listenerSet == key("ls-2"))
        #expect(table.listeners.first { $0.name == "gateway-listener-1" }?.listenerSet == nil)
        // The upstream test's requests.
        let hosts = ["gateway-listener-1.com", "gateway-listener-2.com", "ls-1-listener-1.com", "ls-1-listener-2.com", "ls-2-listener-1.com", "ls-2-listener-2.com"]
        let expected: [(path: String, served: Set<Int>, answer: String)] = [
            ("/route", [0, 1, 2, 3, 4, 5], "all/0 → infra-backend-v1"),
            ("/gateway-route", [0, 1], "gateway-route/0 → infra-backend-v2"),
            ("/gateway-section-route", [0], "gateway-section-route/0 → infra-backend-v3"),
            ("/ls-1-route", [2, 3], "ls-1-route/0 → infra-backend-v2"),
            ("/ls-1-section-route", [2], "ls-1-section-route/0 → infra-backend-v3"),
            ("/ls-2-route", [4, 5], "ls-2-route/0 → infra-backend-v2"),
        ]
        for (path, served, answer) in expected {
            for (i, host) in hosts.enumerated() {
                #expect(state.route("gw", host: host, path: path) == (served.contains(i) ? answer : "404"), "\(host)\(path)")
            }
        }
    }

    /// ListenerSetDefaultNotAllowed and the allowedListeners namespaces (None, Same, Selector, All).
    @Test func aGatewayAllowsNoListenerSetUnlessItSaysSo() throws {
        let other = "listenerset-ns"
        let sets = "---\n" + KubeYAML.namespace(other, labels: ["team": "a"])
            + listenerSet("same", gateway: "gw", listeners: http("same-l", host: "same.example"))
            + listenerSet("other", namespace: other, gateway: "gw", listeners: http("other-l", host: "other.example"))
            + route("r", parents: "[{kind: ListenerSet, name: same}]", path: "", backend: "infra-backend-v1")
        let cases: [(allowed: String?, same: Bool, other: Bool)] = [
            (nil, false, false), ("{from: None}", false, false), ("{from: Same}", true, false), ("{from: All}", true, true),
            ("{from: Selector, selector: {matchLabels: {team: a}}}", false, true),
            ("{from: Selector, selector: {matchLabels: {kubernetes.io/metadata.name: \(GW.infra)}}}", true, false),
        ]
        for (allowed, same, otherAllowed) in cases {
            let state = try GW.build(gateway("gw", allowed: allowed, listeners: http("gw-l", host: "gw.example")) + sets)
            let notAllowed = ["Accepted=False/NotAllowed", "Programmed=False/NotAllowed"]
            let ok = ["Accepted=True/Accepted", "Programmed=True/Programmed"]
            #expect(state.setConditions("same") == (same ? ok : notAllowed), "\(allowed ?? "default")")
            #expect(state.setConditions("other", namespace: other) == (otherAllowed ? ok : notAllowed), "\(allowed ?? "default")")
            #expect(state.attachedListenerSets("gw") == [same, otherAllowed].filter { $0 }.count)
            #expect(state.route("gw", host: "same.example") == (same ? "r/0 → infra-backend-v1" : "404"))
            #expect(state.route("gw", host: "other.example") == "404", "no route attaches to it")
            #expect(Set(state.table(gateway: key("gw"), port: 80)?.listeners.map(\.name) ?? []) == Set(["gw-l"] + (same ? ["same-l"] : []) + (otherAllowed ? ["other-l"] : [])))
            #expect(state.parentConditions("r", kind: "ListenerSet", name: "same").first == (same ? "Accepted=True/Accepted" : "Accepted=False/NotAllowedByListeners"))
        }
        // Nothing about ListenerSets on a Gateway that has neither the field nor a set naming it.
        #expect(try GW.build(gateway("gw", listeners: http("gw-l", host: "gw.example"))).attachedListenerSets("gw") == nil)
    }

    /// ListenerSetHostnameConflict: the Gateway's listeners win, then older ListenerSets; a set
    /// whose every listener conflicts is not accepted.
    @Test func hostnameConflictsGoToTheLaterListener() throws {
        let state = try GW.build(
            gateway("gw", allowed: "{from: Same}", listeners: [http("gateway-listener", host: "gateway-listener.com"), http("conflict-gw", host: "conflict-gw.com")].joined(separator: "\n"))
                + listenerSet("with-gateway-1", gateway: "gw", created: "2026-01-01T00:00:01Z", listeners: [
                    http("ls-1-listener", host: "ls-1-listener.com"), http("conflict-gw", host: "conflict-gw.com"), http("conflict-ls", host: "conflict-ls.com"),
                ].joined(separator: "\n"))
                + listenerSet("with-gateway-2", gateway: "gw", created: "2026-01-01T00:00:02Z", listeners: http("conflict-gw", host: "conflict-gw.com"))
                // Older by creation time than the alphabetically first set below: it wins conflict-ls.
                + listenerSet("a-with-listener-set-1", gateway: "gw", created: "2026-01-01T00:00:03Z", listeners: [
                    http("ls-2-listener", host: "ls-2-listener.com"), http("conflict-ls", host: "conflict-ls.com"),
                ].joined(separator: "\n"))
                + listenerSet("with-listener-set-2", gateway: "gw", created: "2026-01-01T00:00:04Z", listeners: http("conflict-ls", host: "conflict-ls.com"))
                + route("r", parents: "[{kind: ListenerSet, name: with-gateway-1}]", path: "", backend: "infra-backend-v1"))
        let conflicted = ["Accepted=False/HostnameConflict", "Conflicted=True/HostnameConflict", "ResolvedRefs=True/ResolvedRefs", "Programmed=False/HostnameConflict"]
        #expect(state.listenerConditions("gw", listener: "conflict-gw").dropLast() == accepted[...])
        #expect(state.attachedListenerSets("gw") == 2)
        #expect(state.setConditions("with-gateway-1") == ["Accepted=True/ListenersNotValid", "Programmed=True/Programmed"])
        #expect(state.setListener("with-gateway-1", "ls-1-listener").dropLast() == accepted[...])
        #expect(state.setListener("with-gateway-1", "conflict-gw").dropLast() == conflicted[...])
        #expect(state.setListener("with-gateway-1", "conflict-ls").dropLast() == accepted[...])
        #expect(state.setConditions("with-gateway-2") == ["Accepted=False/ListenersNotValid", "Programmed=False/ListenersNotValid"])
        #expect(state.setListener("with-gateway-2", "conflict-gw").dropLast() == conflicted[...])
        #expect(state.setConditions("a-with-listener-set-1").first == "Accepted=True/ListenersNotValid")
        #expect(state.setListener("a-with-listener-set-1", "conflict-ls").dropLast() == conflicted[...])
        #expect(state.setConditions("with-listener-set-2") == ["Accepted=False/ListenersNotValid", "Programmed=False/ListenersNotValid"])
        // The winner serves the host; the route of with-gateway-1 is served on its winning listener.
        #expect(state.route("gw", host: "conflict-ls.com") == "r/0 → infra-backend-v1")
        #expect(state.route("gw", host: "conflict-gw.com") == "404")
        // The losers are listed as not served, saying which ListenerSet they come from.
        let unserved = state.unservedListeners.filter { $0.name == "conflict-gw" }
        #expect(unserved.map { $0.listenerSet?.name ?? "-" }.sorted() == ["with-gateway-1", "with-gateway-2"])
        #expect(unserved.first?.description.contains("of ListenerSet \(GW.infra)/with-gateway") == true)
    }

    /// ListenerSetProtocolConflict: a TCP listener on the Gateway's HTTP port conflicts (its
    /// protocol is one Portway does not serve, but the conflict is what its status says).
    @Test func protocolConflictsGoToTheLaterListener() throws {
        let state = try GW.build(
            gateway("gw", allowed: "{from: All}", listeners: http("gateway-listener", host: "gateway-listener.com"))
                + listenerSet("set-1", gateway: "gw", listeners: [
                    http("ls-1-listener", host: "ls-1-listener.com"), "  - {name: tcp, port: 80, protocol: TCP}",
                ].joined(separator: "\n"))
                + listenerSet("set-2", gateway: "gw", listeners: "  - {name: tcp, port: 80, protocol: TCP}"))
        let conflicted = ["Accepted=False/ProtocolConflict", "Conflicted=True/ProtocolConflict"]
        #expect(state.setConditions("set-1") == ["Accepted=True/ListenersNotValid", "Programmed=True/Programmed"])
        #expect(state.setListener("set-1", "ls-1-listener").dropLast() == accepted[...])
        #expect(Array(state.setListener("set-1", "tcp").prefix(2)) == conflicted)
        #expect(state.setListener("set-1", "tcp")[3] == "Programmed=False/ProtocolConflict")
        #expect(state.setConditions("set-2") == ["Accepted=False/ListenersNotValid", "Programmed=False/ListenersNotValid"])
        #expect(state.attachedListenerSets("gw") == 1)
    }

    /// ListenerSetGatewayParentSectionNameNotFound, ListenerSetAllowedRoutesNamespaces (Same is
    /// the ListenerSet's namespace) and ListenerSetDualParentRefIndependence.
    @Test func parentRefsAreEvaluatedPerParent() throws {
        let other = "listenerset-ns"
        let state = try GW.build(
            KubeYAML.namespace(other)
                + gateway("gw", allowed: "{from: All}", listeners: http("gateway-listener", host: "gw.example"))
                + listenerSet("set", namespace: other, gateway: "gw", listeners: http("same", host: "same.example", from: "Same"))
                + route("by-gateway-section", parents: "[{name: gw, sectionName: same}]", path: "", backend: "infra-backend-v1")
                + route("in-infra", parents: "[{kind: ListenerSet, name: set, namespace: \(other)}]", path: "", backend: "infra-backend-v1")
                + route("in-set-ns", namespace: other, parents: "[{kind: ListenerSet, name: set}]", path: "", backend: "infra-backend-v1")
                + route("dual", parents: "[{name: gw, sectionName: nope}, {kind: ListenerSet, name: set, namespace: \(other)}, {kind: ListenerSet, name: missing}]", path: "", backend: "infra-backend-v1"))
        #expect(state.parentConditions("by-gateway-section", kind: "Gateway", name: "gw").first == "Accepted=False/NoMatchingParent")
        #expect(state.parentConditions("in-infra", kind: "ListenerSet", name: "set").first == "Accepted=False/NotAllowedByListeners")
        let inSetNamespace = state.status.routes[key("in-set-ns", other)]?.first?.conditions?.first
        #expect(inSetNamespace?.status == "True")
        #expect(state.setListener("set", "same", namespace: other).last == "attachedRoutes=1")
        // One entry per parentRef it could be judged on: the Gateway (no such section) and the
        // set (another namespace than the listener allows); none for a ListenerSet that does not exist.
        #expect(state.status.routes[key("dual")]?.map { $0.parentRef.kind ?? "Gateway" } == ["Gateway", "ListenerSet"])
        #expect(state.parentConditions("dual", kind: "Gateway", name: "gw").first == "Accepted=False/NoMatchingParent")
    }

    /// A ListenerSet's HTTPS listener resolves its certificate in its own namespace, or across
    /// namespaces with a ReferenceGrant from kind ListenerSet (ListenerSetReferenceGrant); a
    /// listener on a new port adds that port to the Gateway's Service.
    @Test func certificatesAndNewPorts() throws {
        let grant = """
        ---
        apiVersion: gateway.networking.k8s.io/v1beta1
        kind: ReferenceGrant
        metadata: {name: certs, namespace: certs}
        spec:
          from: [{group: gateway.networking.k8s.io, kind: ListenerSet, namespace: \(GW.infra)}]
          to: [{group: "", kind: Secret}]

        """
        let secret = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: cert, namespace: certs}\ntype: kubernetes.io/tls\ndata: \(GW.tlsData())\n"
        let yaml = KubeYAML.namespace("certs") + secret
            + gateway("gw", allowed: "{from: Same}", listeners: http("gw-l", host: "gw.example"))
            + listenerSet("set", gateway: "gw", listeners: "  - {name: tls, port: 8443, protocol: HTTPS, hostname: s.example, tls: {certificateRefs: [{name: cert, namespace: certs}]}}")
        let denied = try GW.build(yaml)
        #expect(denied.setListener("set", "tls")[2] == "ResolvedRefs=False/RefNotPermitted")
        #expect(denied.listenerSetPorts(gateway: key("gw")) == [])
        let granted = try GW.build(yaml + grant)
        #expect(granted.setListener("set", "tls")[2] == "ResolvedRefs=True/ResolvedRefs")
        #expect(granted.table(gateway: key("gw"), port: 8443)?.listeners.first?.certificates == [key("cert", "certs")])
        #expect(granted.listenerSetPorts(gateway: key("gw")) == [8443])
        let gw = try #require(try GW.load(yaml + grant).gateways.first { $0.metadata.name == "gw" })
        let service = GatewayServices.desiredService(for: gw, extraPorts: granted.listenerSetPorts(gateway: key("gw")))
        #expect(service.spec.ports?.map(\.port) == [80, 8443])
        // A Gateway grant does not cover a ListenerSet's reference.
        let gatewayGrant = grant.replacingOccurrences(of: "kind: ListenerSet", with: "kind: Gateway")
        #expect(try GW.build(yaml + gatewayGrant).setListener("set", "tls")[2] == "ResolvedRefs=False/RefNotPermitted")
    }

    /// ListenerSetReferenceGrant: a set whose only listener's certificate is not permitted is not
    /// accepted (ListenersNotValid); ListenerSetAllowedRoutesSupportedKinds: HTTPRoute asked of a
    /// TLS listener is InvalidRouteKinds.
    @Test func unresolvedReferencesAndKindsMakeListenersNotValid() throws {
        let other = "listenerset-grant-ns"
        let grant = { (kind: String) in
            "---\napiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: for-\(kind), namespace: \(GW.web)}\n"
                + "spec:\n  from: [{group: gateway.networking.k8s.io, kind: \(kind), namespace: \(GW.infra)}]\n  to: [{group: \"\", kind: Secret}]\n"
        }
        let tls = { (name: String) in
            "  - {name: \(name), port: 443, protocol: HTTPS, hostname: \(name).com, allowedRoutes: {namespaces: {from: All}}, tls: {certificateRefs: [{group: \"\", kind: Secret, name: certificate, namespace: \(GW.web)}]}}"
        }
        let state = try GW.build(
            "---\n" + KubeYAML.namespace(other)
                + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: certificate, namespace: \(GW.web)}\ntype: kubernetes.io/tls\ndata: \(GW.tlsData())\n"
                + gateway("gw", allowed: "{from: All}", listeners: tls("gateway-listener")) + grant("Gateway") + grant("ListenerSet")
                + listenerSet("with-grant", gateway: "gw", listeners: tls("with-grant-listener"))
                + listenerSet("without-grant", namespace: other, gateway: "gw", listeners: tls("without-grant-listener"))
                + listenerSet("kinds", gateway: "gw", listeners: """
                  - name: tls-only
                    port: 443
                    protocol: TLS
                    hostname: tls-only.com
                    allowedRoutes: {namespaces: {from: All}, kinds: [{kind: HTTPRoute}]}
                    tls: {mode: Passthrough}
                """))
        #expect(state.status.gateways[key("gw")]?.conditions?.first?.status == "True")
        #expect(state.setConditions("with-grant") == ["Accepted=True/Accepted", "Programmed=True/Programmed"])
        #expect(state.setListener("with-grant", "with-grant-listener")[2] == "ResolvedRefs=True/ResolvedRefs")
        #expect(state.setConditions("without-grant", namespace: other) == ["Accepted=False/ListenersNotValid", "Programmed=False/ListenersNotValid"])
        #expect(state.setListener("without-grant", "without-grant-listener", namespace: other)[2] == "ResolvedRefs=False/RefNotPermitted")
        #expect(state.setListener("kinds", "tls-only")[2] == "ResolvedRefs=False/InvalidRouteKinds")
        #expect(state.attachedListenerSets("gw") == 1)
    }

    /// ListenerSetRouteStatusScopedToParentRef: a route's status.parents has entries only for the
    /// parentRefs it declares (a Gateway parentRef gives no entry for the Gateway's sets, nor the
    /// reverse), and a Gateway route does not count on a set's listener.
    @Test func routeStatusIsScopedToItsParentRefs() throws {
        let state = try GW.build(
            gateway("gateway-parentref", allowed: "{from: Same}", listeners: http("gw-parentref-listener", host: "gw-parentref.com", from: "Same"))
                + listenerSet("listenerset-parentref", gateway: "gateway-parentref", listeners: http("listenerset-parentref-listener", host: "listenerset-parentref.com", from: "Same"))
                + route("route-parentref-gwonly", parents: "[{name: gateway-parentref, namespace: \(GW.infra)}]", path: "gwonly", backend: "infra-backend-v1")
                + route("route-parentref-lsonly", parents: "[{kind: ListenerSet, group: gateway.networking.k8s.io, name: listenerset-parentref, namespace: \(GW.infra)}]", path: "lsonly", backend: "infra-backend-v2"))
        #expect(state.attachedListenerSets("gateway-parentref") == 1)
        #expect(state.setListener("listenerset-parentref", "listenerset-parentref-listener") == accepted + ["attachedRoutes=1"])
        #expect(state.status.routes[key("route-parentref-gwonly")]?.map { "\($0.parentRef.kind ?? "Gateway") \($0.parentRef.name)" } == ["Gateway gateway-parentref"])
        #expect(state.status.routes[key("route-parentref-lsonly")]?.map { "\($0.parentRef.kind ?? "Gateway") \($0.parentRef.name)" } == ["ListenerSet listenerset-parentref"])
        #expect(state.parentConditions("route-parentref-gwonly", kind: "Gateway", name: "gateway-parentref").first == "Accepted=True/Accepted")
        #expect(state.parentConditions("route-parentref-lsonly", kind: "ListenerSet", name: "listenerset-parentref").first == "Accepted=True/Accepted")
        #expect(state.route("gateway-parentref", host: "listenerset-parentref.com", path: "/gwonly") == "404")
        #expect(state.route("gateway-parentref", host: "listenerset-parentref.com", path: "/lsonly") == "route-parentref-lsonly/0 → infra-backend-v2")
    }

    /// Reconcile by key: a ListenerSet change touches its parent Gateway (old and new), a route
    /// naming a ListenerSet touches the set's Gateway, and a partial build equals a full one.
    @Test func changesTouchTheParentGateway() throws {
        let snapshot = try GW.load(Self.routing + gateway("gw2", allowed: "{from: All}", listeners: http("x", host: "x.example")))
        var index = ClusterIndex(snapshot)
        let set = try #require(snapshot.listenerSets.first { $0.metadata.name == "ls-1" })
        var moved = set
        moved.spec.parentRef.name = "gw2"
        #expect(index.apply(.listenerSets(ObjectKey(set.metadata), [moved])).gateways == [ObjectKey(namespace: GW.infra, name: "gw"), ObjectKey(namespace: GW.infra, name: "gw2")])
        index = ClusterIndex(snapshot)
        let route = try #require(snapshot.httpRoutes.first { $0.metadata.name == "ls-2-route" })
        #expect(index.apply(.httpRoutes(ObjectKey(route.metadata), [route])).gateways == [ObjectKey(namespace: GW.infra, name: "gw")])
        // The agent's per-key plan, after moving the set, equals a plan built from scratch.
        var plan = GatewayPlan(index: index)
        let touched = index.apply(.listenerSets(ObjectKey(set.metadata), [moved]))
        plan.rebuild(plan.affected(touched, index: index), index: index)
        let full = GatewayPlan(index: index)
        #expect(plan.state.tables == full.state.tables)
        #expect(plan.state.tables.first { $0.gateway == key("gw2") }?.listeners.map(\.name) == ["ls-1-listener-1", "ls-1-listener-2", "x"])
        #expect(plan.state.status.listenerSets[key("ls-1")] == full.state.status.listenerSets[key("ls-1")])
        // Files: a snapshot difference is one ListenerSet change.
        var edited = snapshot
        edited.listenerSets = edited.listenerSets.map { $0.metadata.name == "ls-1" ? moved : $0 }
        #expect(ClusterIndex.changes(from: snapshot, to: edited) == [.listenerSets(ObjectKey(set.metadata), [moved])])
    }
}
