import GatewayCore
import KubeModels
import Testing
@testable import GatewayCore
import LoadBalancer

private func gateway(_ name: String, generation: Int = 5, addresses: String = "", listeners: String) -> String {
    """
    ---
    apiVersion: gateway.networking.k8s.io/v1
    kind: Gateway
    metadata: {name: \(name), namespace: \(GW.infra), generation: \(generation)}
    spec:
      gatewayClassName: portway\(addresses)
      listeners:
    \(listeners)

    """
}

private func secret(_ name: String, namespace: String = GW.infra, type: String = "kubernetes.io/tls", data: String = GW.tlsData()) -> String {
    "---\napiVersion: v1\nkind: Secret\nmetadata: {name: \(name), namespace: \(namespace)}\ntype: \(type)\ndata: \(data)\n"
}

@Suite struct GatewayListenerTests {
    @Test func conflictingListenersAreRejected() throws {
        let state = try GW.build(gateway("conflicts", listeners: """
          - {name: a, port: 80, protocol: HTTP, hostname: same.example}
          - {name: b, port: 80, protocol: HTTP, hostname: same.example}
          - {name: c, port: 80, protocol: HTTP, hostname: other.example}
          - {name: d, port: 8443, protocol: HTTP}
          - name: e
            port: 8443
            protocol: HTTPS
            tls: {certificateRefs: [{name: cert}]}
          - {name: f, port: 9000, protocol: TCP}
        """) + secret("cert"))
        #expect(state.listenerConditions("conflicts", listener: "a") == [
            "Accepted=False/Invalid", "Conflicted=True/HostnameConflict", "ResolvedRefs=True/ResolvedRefs", "Programmed=False/Invalid", "attachedRoutes=0",
        ])
        #expect(state.listenerConditions("conflicts", listener: "b")[1] == "Conflicted=True/HostnameConflict")
        #expect(state.listenerConditions("conflicts", listener: "c") == [
            "Accepted=True/Accepted", "Conflicted=False/NoConflicts", "ResolvedRefs=True/ResolvedRefs", "Programmed=True/Programmed", "attachedRoutes=0",
        ])
        #expect(state.listenerConditions("conflicts", listener: "d")[1] == "Conflicted=True/ProtocolConflict")
        #expect(state.listenerConditions("conflicts", listener: "e")[1] == "Conflicted=True/ProtocolConflict")
        #expect(state.listenerConditions("conflicts", listener: "f")[0] == "Accepted=False/UnsupportedProtocol")
        // Only the valid listener is served.
        #expect(state.tables.map { "\($0.port): \($0.listeners.map(\.name))" } == ["80: [\"c\"]"])
        let gw = try #require(state.status.gateways[NamespacedName(namespace: GW.infra, name: "conflicts")])
        // Without its Service the Gateway has no address yet.
        // Some listeners are not valid: still accepted, with the spec's reason for it.
        #expect(gw.conditions?.map { "\($0.type)=\($0.status)/\($0.reason ?? "")" } == ["Accepted=True/ListenersNotValid", "Programmed=False/AddressNotAssigned"])
        // Every condition carries the Gateway's generation.
        #expect(Set(gw.conditions!.map(\.observedGeneration) + gw.listeners!.flatMap { $0.conditions.map(\.observedGeneration) }) == [5])
    }

    @Test func httpsListenersResolveTheirCertificates() throws {
        let grant = """
        ---
        apiVersion: gateway.networking.k8s.io/v1beta1
        kind: ReferenceGrant
        metadata: {name: certs, namespace: certs}
        spec:
          from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: \(GW.infra)}]
          to: [{group: "", kind: Secret}]

        """
        let listeners = """
          - {name: local, port: 443, protocol: HTTPS, hostname: a.example, tls: {certificateRefs: [{name: cert}]}}
          - {name: missing, port: 443, protocol: HTTPS, hostname: b.example, tls: {certificateRefs: [{name: nope}]}}
          - {name: opaque, port: 443, protocol: HTTPS, hostname: c.example, tls: {certificateRefs: [{name: opaque}]}}
          - {name: remote, port: 443, protocol: HTTPS, hostname: d.example, tls: {certificateRefs: [{name: cert, namespace: certs}]}}
          - {name: passthrough, port: 443, protocol: HTTPS, hostname: e.example, tls: {mode: Passthrough}}
        """
        let base = gateway("tls", listeners: listeners) + secret("cert") + secret("opaque", type: "Opaque") + secret("cert", namespace: "certs", data: GW.tlsData(certificate: GW.pem("CERTIFICATE", tag: 1)))
        let denied = try GW.build(base)
        #expect(denied.listenerConditions("tls", listener: "local")[2] == "ResolvedRefs=True/ResolvedRefs")
        #expect(denied.listenerConditions("tls", listener: "missing")[2...3] == ["ResolvedRefs=False/InvalidCertificateRef", "Programmed=False/Invalid"])
        #expect(denied.listenerConditions("tls", listener: "opaque")[2] == "ResolvedRefs=False/InvalidCertificateRef")
        #expect(denied.listenerConditions("tls", listener: "remote")[2] == "ResolvedRefs=False/RefNotPermitted")
        #expect(denied.listenerConditions("tls", listener: "passthrough")[2] == "ResolvedRefs=False/InvalidCertificateRef")
        let table = try #require(denied.tables.first)
        #expect(table.listeners.map(\.name) == ["local"])
        #expect(table.listeners[0].protocol == .https)
        #expect(table.listeners[0].certificates == [NamespacedName(namespace: GW.infra, name: "cert")])
        #expect(denied.certificates[NamespacedName(namespace: GW.infra, name: "cert")] == TLSMaterial(certificateChain: Array(GW.pem("CERTIFICATE").utf8), privateKey: Array(GW.pem("PRIVATE KEY").utf8)))

        let granted = try GW.build(base + grant)
        #expect(granted.listenerConditions("tls", listener: "remote")[2] == "ResolvedRefs=True/ResolvedRefs")
        #expect(granted.tables.first?.listeners.map(\.name) == ["local", "remote"])
        #expect(granted.certificates[NamespacedName(namespace: "certs", name: "cert")]?.certificateChain == Array(GW.pem("CERTIFICATE", tag: 1).utf8))
    }

    @Test func allowedRouteKindsAndNamespaces() throws {
        let routeFrom = { (ns: String) in
            """
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: r, namespace: \(ns)}
            spec:
              parentRefs: [{name: kinds, namespace: \(GW.infra)}]
              rules: [{backendRefs: []}]

            """
        }
        let state = try GW.build(gateway("kinds", listeners: """
          - {name: tcp-only, port: 80, protocol: HTTP, hostname: a.example, allowedRoutes: {kinds: [{kind: TCPRoute}], namespaces: {from: All}}}
          - {name: mixed, port: 80, protocol: HTTP, hostname: b.example, allowedRoutes: {kinds: [{kind: HTTPRoute}, {kind: GRPCRoute}], namespaces: {from: All}}}
          - name: selected
            port: 81
            protocol: HTTP
            allowedRoutes:
              namespaces:
                from: Selector
                selector: {matchExpressions: [{key: gateway-conformance, operator: In, values: [web-backend, app-backend]}]}
        """) + routeFrom(GW.web) + routeFrom(GW.infra))
        #expect(state.listenerConditions("kinds", listener: "tcp-only") == [
            "Accepted=True/Accepted", "Conflicted=False/NoConflicts", "ResolvedRefs=False/InvalidRouteKinds", "Programmed=False/Invalid", "attachedRoutes=0",
        ])
        #expect(state.status.gateways.values.first?.listeners?.first { $0.name == "tcp-only" }?.supportedKinds == [])
        #expect(state.listenerConditions("kinds", listener: "mixed")[2] == "ResolvedRefs=False/InvalidRouteKinds")
        #expect(state.status.gateways.values.first?.listeners?.first { $0.name == "mixed" }?.supportedKinds == [RouteGroupKind(group: GatewayAPI.group, kind: "HTTPRoute")])
        #expect(state.listenerConditions("kinds", listener: "mixed").last == "attachedRoutes=2")
        // HTTPRoutes are still served on a listener that also names a kind Portway does not support.
        #expect(state.listenerConditions("kinds", listener: "mixed")[3] == "Programmed=True/Programmed")
        #expect(state.tables.map { "\($0.port): \($0.listeners.map(\.name))" } == ["80: [\"mixed\"]", "81: [\"selected\"]"])
        #expect(state.listenerConditions("kinds", listener: "selected").last == "attachedRoutes=1")
        // A rule without backendRefs answers 500.
        #expect(state.route("kinds", port: 81, host: "x") == "gateway-conformance-web-backend/r/0 → 500 ")
    }

    @Test(arguments: [
        ("{matchLabels: {a: x}}", true), ("{matchLabels: {a: y}}", false),
        ("{matchExpressions: [{key: a, operator: In, values: [x, z]}]}", true),
        ("{matchExpressions: [{key: a, operator: NotIn, values: [x]}]}", false),
        ("{matchExpressions: [{key: b, operator: DoesNotExist}]}", true),
        ("{matchExpressions: [{key: a, operator: Exists}, {key: b, operator: Exists}]}", false),
        ("{matchExpressions: [{key: a, operator: Bogus}]}", false),
    ])
    func labelSelectors(selector: String, expected: Bool) throws {
        let decoded = try FileSourceDecode.selector(selector)
        #expect(LabelSelectorMatcher.matches(decoded, labels: ["a": "x"]) == expected)
    }

    @Test func gatewayAddressesComeFromItsService() throws {
        let service = """
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: portway-gw-addr, namespace: \(GW.infra), labels: {gateway.networking.k8s.io/gateway-name: addr}}
        spec: {type: LoadBalancer, clusterIP: 10.96.50.1, ports: [{port: 80, nodePort: 30080}]}
        status: {loadBalancer: {ingress: [{ip: 203.0.113.7}, {hostname: lb.example}]}}

        """
        let state = try GW.build(gateway("addr", listeners: "  - {name: http, port: 80, protocol: HTTP}") + service)
        let status = try #require(state.status.gateways[NamespacedName(namespace: GW.infra, name: "addr")])
        #expect(status.addresses == [GatewayAddress(type: "IPAddress", value: "203.0.113.7"), GatewayAddress(type: "Hostname", value: "lb.example")])
        #expect(status.conditions?.map { "\($0.type)=\($0.status)/\($0.reason ?? "")" } == ["Accepted=True/Accepted", "Programmed=True/Programmed"])
        func conditions(_ state: GatewayState) -> [String]? {
            state.status.gateways.values.first?.conditions?.map { "\($0.type)=\($0.status)/\($0.reason ?? "")" }
        }
        // A LoadBalancer without ingress yet: no address (not its cluster IP), and not Programmed.
        let noLB = try GW.build(gateway("addr", listeners: "  - {name: http, port: 80, protocol: HTTP}") + service.replacing("status: {loadBalancer: {ingress: [{ip: 203.0.113.7}, {hostname: lb.example}]}}", with: ""))
        #expect(noLB.status.gateways.values.first?.addresses == nil)
        #expect(conditions(noLB) == ["Accepted=True/Accepted", "Programmed=False/AddressNotAssigned"])
        // NodePort: the InternalIP of every Node (name order, each once; ExternalIP and Hostname are not the node's cluster address).
        let nodes = """
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: node-b}
        status: {addresses: [{type: InternalIP, address: 192.0.2.2}, {type: ExternalIP, address: 198.51.100.2}, {type: Hostname, address: node-b}]}
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: node-a}
        status: {addresses: [{type: Hostname, address: node-a}, {type: InternalIP, address: 192.0.2.1}]}
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: node-c}
        status: {addresses: [{type: InternalIP, address: not-an-ip}]}

        """
        let nodePortService = service.replacing("type: LoadBalancer", with: "type: NodePort")
        let nodePort = try GW.build(gateway("addr", listeners: "  - {name: http, port: 80, protocol: HTTP}") + nodePortService + nodes)
        #expect(nodePort.status.gateways.values.first?.addresses == [GatewayAddress(type: "IPAddress", value: "192.0.2.1"), GatewayAddress(type: "IPAddress", value: "192.0.2.2")])
        #expect(conditions(nodePort) == ["Accepted=True/Accepted", "Programmed=True/Programmed"])
        // NodePort without any Node known: no address yet.
        let noNodes = try GW.build(gateway("addr", listeners: "  - {name: http, port: 80, protocol: HTTP}") + nodePortService)
        #expect(conditions(noNodes) == ["Accepted=True/Accepted", "Programmed=False/AddressNotAssigned"])
        // ClusterIP: the cluster IP.
        let clusterIP = try GW.build(gateway("addr", listeners: "  - {name: http, port: 80, protocol: HTTP}") + service.replacing("type: LoadBalancer", with: "type: ClusterIP") + nodes)
        #expect(clusterIP.status.gateways.values.first?.addresses == [GatewayAddress(type: "IPAddress", value: "10.96.50.1")])
        // Static addresses are not supported.
        let withAddresses = try GW.build(gateway("addr", addresses: "\n  addresses: [{value: 192.0.2.1}]", listeners: "  - {name: http, port: 80, protocol: HTTP}"))
        #expect(withAddresses.status.gateways.values.first?.conditions?.map { "\($0.type)=\($0.status)/\($0.reason ?? "")" } == ["Accepted=False/UnsupportedAddress", "Programmed=False/Invalid"])
    }

    /// GatewayAddressEmpty: an address of a type without a value asks for any address, which the
    /// Gateway's Service gives: accepted, with the Service's address. One with a value is still refused.
    @Test func anAddressWithoutValueIsAccepted() throws {
        let service = """
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: portway-gw-addr, namespace: \(GW.infra), labels: {gateway.networking.k8s.io/gateway-name: addr}}
        spec: {type: ClusterIP, clusterIP: 10.96.50.1, ports: [{name: http, port: 8080}]}

        """
        let empty = try GW.build(gateway("addr", addresses: "\n  addresses: [{type: IPAddress}]", listeners: "  - {name: http, port: 8080, protocol: HTTP}") + service)
        let status = try #require(empty.status.gateways.values.first)
        #expect(status.conditions?.map { "\($0.type)=\($0.status)/\($0.reason ?? "")" } == ["Accepted=True/Accepted", "Programmed=True/Programmed"])
        #expect(status.addresses == [GatewayAddress(type: "IPAddress", value: "10.96.50.1")])
        let emptyValue = try GW.build(gateway("addr", addresses: "\n  addresses: [{type: IPAddress, value: \"\"}]", listeners: "  - {name: http, port: 8080, protocol: HTTP}") + service)
        #expect(emptyValue.status.gateways.values.first?.conditions?.first?.reason == "Accepted")
    }

    /// GatewayInvalidParametersRef: Portway has no parameters kind, so any
    /// `spec.infrastructure.parametersRef` is one it cannot resolve: Accepted=False/InvalidParameters.
    /// Labels and annotations alone leave the Gateway accepted.
    @Test func aParametersRefMakesTheGatewayInvalidParameters() throws {
        let listener = "  - {name: http, port: 80, protocol: HTTP}"
        let invalid = try GW.build(gateway("params", addresses: "\n  infrastructure: {parametersRef: {group: invalid.io, kind: InvalidParameters, name: invalid}}", listeners: listener))
        let conditions = try #require(invalid.status.gateways.values.first?.conditions)
        #expect(conditions.map { "\($0.type)=\($0.status)/\($0.reason ?? "")" } == ["Accepted=False/InvalidParameters", "Programmed=False/Invalid"])
        #expect(conditions[0].message?.contains("invalid.io/InvalidParameters invalid") == true, "\(conditions[0])")
        let labelsOnly = try GW.build(gateway("params", addresses: "\n  infrastructure: {labels: {team: a}}", listeners: listener))
        #expect(labelsOnly.status.gateways.values.first?.conditions?.first.map { "\($0.type)=\($0.status)/\($0.reason ?? "")" } == "Accepted=True/Accepted")
    }

    @Test func gatewayClassesOfPortwayAreAccepted() throws {
        let state = try GW.build("")
        #expect(state.status.gatewayClasses.keys.sorted() == ["portway"])
        #expect(state.status.gatewayClasses["portway"]?.conditions?.map { "\($0.type)=\($0.status)/\($0.reason ?? "")" } == ["Accepted=True/Accepted"])
    }

    @Test func routeConditionsCarryTheRouteGeneration() throws {
        let state = try GW.build(gateway("g", listeners: "  - {name: http, port: 80, protocol: HTTP}") + """
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: r, namespace: \(GW.infra), generation: 7}
        spec:
          parentRefs: [{name: g}]
          rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]

        """)
        let parents = try #require(state.status.routes[NamespacedName(namespace: GW.infra, name: "r")])
        #expect(parents.count == 1)
        #expect(parents[0].controllerName == GatewayOptions.defaultControllerName)
        #expect(parents[0].parentRef == ParentReference(name: "g"))
        #expect(parents[0].conditions?.map(\.observedGeneration) == [7, 7])
    }

    @Test func theControllerNameIsAnOption() throws {
        let snapshot = try GW.load(gateway("g", listeners: "  - {name: http, port: 80, protocol: HTTP}"))
        let other = GatewayState.build(snapshot, options: GatewayOptions(controllerName: "example.org/other-controller"))
        #expect(other.ownedGateways == [])
        #expect(other.foreignGateways[NamespacedName(namespace: GW.infra, name: "g")] == GatewayOptions.defaultControllerName)
        #expect(other.status.gatewayClasses.keys.sorted() == ["other"])
    }
}

/// Decodes small YAML snippets into models through the file source.
enum FileSourceDecode {
    static func selector(_ yaml: String) throws -> LabelSelector {
        let snapshot = try GW.load("""
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: s, namespace: x}
        spec:
          gatewayClassName: none
          listeners: [{name: l, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector, selector: \(yaml)}}}]
        """)
        return try #require(snapshot.gateways.first?.spec.listeners.first?.allowedRoutes?.namespaces?.selector)
    }
}

@Suite struct GatewayStatusMergeTests {
    private let now = "2026-11-26T02:00:00Z"
    private let ours = GatewayOptions.defaultControllerName

    private func entry(_ gateway: String, controller: String, accepted: String = "True", time: String? = "2026-11-01T00:00:00Z", section: String? = nil) -> RouteParentStatus {
        RouteParentStatus(
            parentRef: ParentReference(name: gateway, sectionName: section), controllerName: controller,
            conditions: [Condition(type: "Accepted", status: accepted, reason: "Accepted", lastTransitionTime: time, observedGeneration: 1)]
        )
    }

    @Test func othersEntriesSurviveOursAreReplacedAndStaleOnesRemoved() {
        let existing = [
            entry("theirs", controller: "example.org/other"),
            entry("a", controller: ours),
            entry("stale", controller: ours),
            entry("theirs-2", controller: "example.org/other", accepted: "False"),
        ]
        var wantedA = entry("a", controller: ours, time: nil)
        wantedA.parentRef = ParentReference(group: GatewayAPI.group, kind: "Gateway", namespace: "ns", name: "a")  // defaults written out: same parent
        let wanted = [wantedA, entry("b", controller: ours, accepted: "False", time: nil)]
        let merged = GatewayStatusMerge.mergeParents(existing: existing, ours: wanted, controllerName: ours, routeNamespace: "ns", now: now)
        #expect(merged.map(\.parentRef.name) == ["theirs", "a", "theirs-2", "b"])
        #expect(merged[0] == existing[0])
        #expect(merged[2] == existing[3])
        // Unchanged status keeps its transition time; a new entry gets now.
        #expect(merged[1].conditions?.first?.lastTransitionTime == "2026-11-01T00:00:00Z")
        #expect(merged[3].conditions?.first?.lastTransitionTime == now)
    }

    @Test func aChangedConditionGetsANewTransitionTime() {
        let existing = [entry("a", controller: ours, accepted: "True")]
        let merged = GatewayStatusMerge.mergeParents(existing: existing, ours: [entry("a", controller: ours, accepted: "False", time: nil)], controllerName: ours, routeNamespace: "ns", now: now)
        #expect(merged.first?.conditions?.first?.status == "False")
        #expect(merged.first?.conditions?.first?.lastTransitionTime == now)
    }

    @Test func differentSectionsAreDifferentParents() {
        let existing = [entry("a", controller: ours, section: "http")]
        let merged = GatewayStatusMerge.mergeParents(existing: existing, ours: [entry("a", controller: ours, time: nil, section: "https")], controllerName: ours, routeNamespace: "ns", now: now)
        #expect(merged.map(\.parentRef.sectionName) == ["https"])
    }

    @Test func nothingOfOursLeavesOnlyOthers() {
        let existing = [entry("theirs", controller: "example.org/other"), entry("a", controller: ours)]
        #expect(GatewayStatusMerge.mergeParents(existing: existing, ours: [], controllerName: ours, routeNamespace: "ns", now: now) == [existing[0]])
    }
}

@Suite struct GatewayStatusWriteTests {
    @Test func gatewayStatusKeepsTransitionTimesSoAnUnchangedStatusNeedsNoWrite() throws {
        let yaml = """
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: g, namespace: \(GW.infra), generation: 2}
        spec: {gatewayClassName: portway, listeners: [{name: http, port: 80, protocol: HTTP}, {name: other, port: 81, protocol: HTTP}]}

        """
        let state = try GW.build(yaml)
        let computed = try #require(state.status.gateways[NamespacedName(namespace: GW.infra, name: "g")])
        let first = GatewayStatusMerge.mergeGatewayStatus(existing: nil, new: computed, now: "T1")
        #expect(first.conditions?.allSatisfy { $0.lastTransitionTime == "T1" } == true)
        #expect(first.listeners?.allSatisfy { $0.conditions.allSatisfy { $0.lastTransitionTime == "T1" } } == true)
        // Recomputed later from the same objects: identical, so the writer skips the write.
        let second = GatewayStatusMerge.mergeGatewayStatus(existing: first, new: try GW.build(yaml).status.gateways.values.first!, now: "T2")
        #expect(second == first)
        // A listener that becomes conflicted changes only its own changed conditions.
        let conflicted = try GW.build(yaml.replacing("port: 81", with: "port: 80")).status.gateways.values.first!
        let third = GatewayStatusMerge.mergeGatewayStatus(existing: first, new: conflicted, now: "T3")
        #expect(third != first)
        let http = try #require(third.listeners?.first { $0.name == "http" })
        #expect(http.conditions.map { "\($0.type)@\($0.lastTransitionTime ?? "")" } == ["Accepted@T3", "Conflicted@T3", "ResolvedRefs@T1", "Programmed@T3"])
    }

    @Test("status.addresses: written when they change, not when only their order differs; a Gateway losing its address is no longer Programmed")
    func gatewayAddressesMerge() {
        let a = GatewayAddress(type: "IPAddress", value: "192.0.2.1"), b = GatewayAddress(type: "IPAddress", value: "192.0.2.2")
        let host = GatewayAddress(type: "Hostname", value: "lb.example")
        let programmed = Condition(type: "Programmed", status: "True", reason: "Programmed", message: "", observedGeneration: 1)
        let existing = GatewayStatusMerge.mergeGatewayStatus(existing: nil, new: GatewayStatus(addresses: [a, b], conditions: [programmed]), now: "T1")
        #expect(existing.addresses == [a, b])
        // Same addresses, other order: the object's order stays, so nothing to write.
        let reordered = GatewayStatusMerge.mergeGatewayStatus(existing: existing, new: GatewayStatus(addresses: [b, a], conditions: [programmed]), now: "T2")
        #expect(reordered == existing)
        // A node more, or another kind of address: a change.
        let grown = GatewayStatusMerge.mergeGatewayStatus(existing: existing, new: GatewayStatus(addresses: [b, a, host], conditions: [programmed]), now: "T2")
        #expect(grown.addresses == [b, a, host])
        #expect(grown.conditions?.first?.lastTransitionTime == "T1", "Programmed did not change")
        let swapped = GatewayStatusMerge.mergeGatewayStatus(existing: existing, new: GatewayStatus(addresses: [a, host], conditions: [programmed]), now: "T2")
        #expect(swapped.addresses == [a, host])
        // The addresses go (a LoadBalancer released): none written, Programmed False from now.
        let notAssigned = Condition(type: "Programmed", status: "False", reason: "AddressNotAssigned", message: "", observedGeneration: 1)
        let gone = GatewayStatusMerge.mergeGatewayStatus(existing: existing, new: GatewayStatus(addresses: nil, conditions: [notAssigned]), now: "T3")
        #expect(gone.addresses == nil)
        #expect(gone.conditions?.map { "\($0.status)/\($0.reason ?? "")@\($0.lastTransitionTime ?? "")" } == ["False/AddressNotAssigned@T3"])
    }

    @Test func sniChoosesTheMostSpecificListener() throws {
        let yaml = """
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: tls, namespace: \(GW.infra)}
        spec:
          gatewayClassName: portway
          listeners:
          - {name: wildcard, port: 443, protocol: HTTPS, hostname: "*.example.com", tls: {certificateRefs: [{name: wild}]}}
          - {name: exact, port: 443, protocol: HTTPS, hostname: www.example.com, tls: {certificateRefs: [{name: www}]}}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: wild, namespace: \(GW.infra)}
        type: kubernetes.io/tls
        data: \(GW.tlsData(certificate: GW.pem("CERTIFICATE", tag: 1)))
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: www, namespace: \(GW.infra)}
        type: kubernetes.io/tls
        data: \(GW.tlsData(certificate: GW.pem("CERTIFICATE", tag: 2)))

        """
        let state = try GW.build(yaml)
        let table = try #require(state.tables.first)
        let certificate = { (sni: String) -> String? in
            RouteMatcher.listener(for: sni, in: table)?.certificates.first.flatMap { state.certificates[$0] }.map { String(decoding: $0.certificateChain, as: UTF8.self) }
        }
        #expect(certificate("www.example.com") == GW.pem("CERTIFICATE", tag: 2))
        #expect(certificate("WWW.example.com") == GW.pem("CERTIFICATE", tag: 2))
        #expect(certificate("api.example.com") == GW.pem("CERTIFICATE", tag: 1))
        #expect(certificate("example.com") == nil)
    }
}
