import Agent
import Foundation
import GatewayCore
import KubeAPI
import KubeAPITestSupport
import KubeModels
import Testing

private let haveListenerSetCRD: Bool = {
    let ok = FileManager.default.fileExists(atPath: crdDirectoryV161 + "/listenersets.yaml")
    if !ok { print("skipped: ListenerSetEnvtestTests need \(crdDirectoryV161)/listenersets.yaml") }
    return ok
}()

/// ListenerSet status written by one agent's Gateway leader on a real kube-apiserver with the
/// v1.6.1 CRDs (ListenerSetDefaultNotAllowed, ListenerSetHTTPRouting's status half,
/// ListenerSetHostnameConflict's shape; docs/GATEWAY-API.md).
@Suite(
    "envtest: ListenerSet status with the v1.6.1 CRDs", .serialized,
    .enabled(if: EnvtestControlPlane.availableOrPrintSkip(), "needs KUBEBUILDER_ASSETS with kube-apiserver and etcd"),
    .enabled(if: haveListenerSetCRD, "needs ../shared/gateway-api-crds/v1.6.1"))
struct ListenerSetEnvtestTests {
    typealias Conformance = GatewayConformanceEnvtestTests

    @Test("ListenerSet: NotAllowed by default, accepted when allowed (listeners, attachedRoutes, conflicts), attachedListenerSets, the Service's new port")
    func listenerSetStatus() async throws {
        try await Conformance.withLeader { admin, _ in
            let ns = Conformance.infra
            let all = AllowedRoutes(namespaces: RouteNamespaces(from: "All"))
            func http(_ name: String, _ host: String, port: Int = 80) -> Listener { Listener(name: name, hostname: host, port: port, protocol: "HTTP", allowedRoutes: all) }
            func listenerSet(_ name: String, gateway: String, _ listeners: [Listener]) async throws {
                _ = try await admin.create(ListenerSet(
                    metadata: ObjectMeta(name: name, namespace: ns),
                    spec: ListenerSetSpec(parentRef: ListenerSetParentReference(group: GatewayAPI.group, kind: "Gateway", namespace: ns, name: gateway), listeners: listeners)))
            }
            _ = try await admin.create(Service(metadata: ObjectMeta(name: "infra-backend-v1", namespace: ns), spec: ServiceSpec(ports: [ServicePort(protocol: "TCP", port: 8080)])))
            // ListenerSetDefaultNotAllowed.
            _ = try await admin.create(Gateway(
                metadata: ObjectMeta(name: "default-gw", namespace: ns), spec: GatewaySpec(gatewayClassName: "portway", listeners: [http("gateway-listener", "gateway-listener.com")])))
            try await listenerSet("not-allowed", gateway: "default-gw", [http("ls-listener", "ls-listener.com")])
            // Allowed (All): one listener new, one conflicting with the Gateway's, one on a new port.
            _ = try await admin.create(Gateway(
                metadata: ObjectMeta(name: "gw", namespace: ns),
                spec: GatewaySpec(
                    gatewayClassName: "portway", listeners: [http("gateway-listener", "gateway-listener.com")],
                    allowedListeners: AllowedListeners(namespaces: RouteNamespaces(from: "All")))))
            try await listenerSet("set", gateway: "gw", [http("one", "one.com"), http("clash", "gateway-listener.com"), http("other-port", "two.com", port: 8080)])
            _ = try await admin.create(HTTPRoute(
                metadata: ObjectMeta(name: "to-set", namespace: ns),
                spec: HTTPRouteSpec(
                    parentRefs: [ParentReference(group: GatewayAPI.group, kind: "ListenerSet", name: "set", sectionName: "one")],
                    rules: [HTTPRouteRule(backendRefs: [HTTPBackendRef(name: "infra-backend-v1", port: 8080)])])))

            func set(_ name: String) async throws -> ListenerSet { try await admin.get(ListenerSet.self, name: name, namespace: ns) }
            try await eventually("not-allowed: Accepted and Programmed False/NotAllowed at its generation") {
                let s = try await set("not-allowed")
                return Conformance.latest(s.status?.conditions, s.metadata.generation)
                    && Conformance.summary(s.status?.conditions) == ["Accepted=False/NotAllowed", "Programmed=False/NotAllowed"]
            }
            try await eventually("default-gw: Accepted, attachedListenerSets 0") {
                let g = try await admin.get(Gateway.self, name: "default-gw", namespace: ns)
                return Conformance.summary(g.status?.conditions).first == "Accepted=True/Accepted" && (g.status?.attachedListenerSets ?? 0) == 0
            }
            var got = ""
            let accepted = try await waitUntil {
                let s = try await set("set")
                guard Conformance.latest(s.status?.conditions, s.metadata.generation) else { return false }
                got = (Conformance.summary(s.status?.conditions) + (s.status?.listeners ?? []).map { l in
                    "\(l.name): \(Conformance.summary(l.conditions).joined(separator: " ")) attached=\(l.attachedRoutes) kinds=\(l.supportedKinds.map(\.kind))"
                }).joined(separator: "; ")
                return got == [
                    "Accepted=True/ListenersNotValid", "Programmed=True/Programmed",
                    "one: Accepted=True/Accepted Conflicted=False/NoConflicts ResolvedRefs=True/ResolvedRefs Programmed=True/Programmed attached=1 kinds=[\"HTTPRoute\"]",
                    "clash: Accepted=False/HostnameConflict Conflicted=True/HostnameConflict ResolvedRefs=True/ResolvedRefs Programmed=False/HostnameConflict attached=0 kinds=[\"HTTPRoute\"]",
                    "other-port: Accepted=True/Accepted Conflicted=False/NoConflicts ResolvedRefs=True/ResolvedRefs Programmed=True/Programmed attached=0 kinds=[\"HTTPRoute\"]",
                ].joined(separator: "; ")
            }
            #expect(accepted, "ListenerSet set: \(got)")
            try await eventually("gw: attachedListenerSets 1, its own listener unconflicted") {
                let g = try await admin.get(Gateway.self, name: "gw", namespace: ns)
                return g.status?.attachedListenerSets == 1 && g.status?.listeners?.map(\.name) == ["gateway-listener"]
                    && Conformance.summary(g.status?.listeners?.first?.conditions).first == "Accepted=True/Accepted"
            }
            try await eventually("to-set: Accepted through its ListenerSet parentRef") {
                let r = try await admin.get(HTTPRoute.self, name: "to-set", namespace: ns)
                return r.status?.parents?.count == 1 && r.status?.parents?.first?.parentRef.kind == "ListenerSet"
                    && Conformance.summary(r.status?.parents?.first?.conditions) == ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"]
            }
            try await eventually("the Gateway's Service fronts the ListenerSet's port 8080 too") {
                let service = try? await admin.get(Service.self, name: GatewayServices.serviceName(gateway: "gw"), namespace: ns)
                return service?.spec.ports?.map(\.port).sorted() == [80, 8080]
            }
            // The Gateway stops allowing ListenerSets: the set becomes NotAllowed, the route is no longer accepted.
            _ = try await admin.patch(Gateway.self, name: "gw", namespace: ns, mergePatch: try Conformance.mergePatch(["spec": ["allowedListeners": ["namespaces": ["from": "None"]]]]))
            try await eventually("set: NotAllowed once the Gateway allows none") {
                Conformance.summary(try await set("set").status?.conditions) == ["Accepted=False/NotAllowed", "Programmed=False/NotAllowed"]
            }
            try await eventually("gw: attachedListenerSets 0") { (try await admin.get(Gateway.self, name: "gw", namespace: ns).status?.attachedListenerSets ?? 0) == 0 }
            try await eventually("to-set: not accepted") {
                let r = try await admin.get(HTTPRoute.self, name: "to-set", namespace: ns)
                return Conformance.summary(r.status?.parents?.first?.conditions).first == "Accepted=False/NotAllowedByListeners"
            }
        }
    }

    /// ListenerSetReferenceGrant, ListenerSetAllowedRoutesSupportedKinds and
    /// ListenerSetProtocolConflict on the real server: a set's listener needs a grant from kind
    /// ListenerSet (the set without one is not accepted), HTTPRoute asked of a TLS listener is
    /// InvalidRouteKinds, a TCP listener on the Gateway's HTTP port is ProtocolConflict.
    @Test("ListenerSet on the real server: certificate grants from kind ListenerSet, invalid route kinds, protocol conflicts")
    func listenerSetReferencesKindsAndConflicts() async throws {
        try await Conformance.withLeader { admin, plane in
            let ns = Conformance.infra, web = "gateway-conformance-web-backend", other = "gateway-api-listener-sets-test-reference-grant-ns"
            _ = try await admin.create(Namespace(metadata: ObjectMeta(name: other)))
            let pair = [
                "tls.crt": plane.certificates.read(plane.certificates.serverCertPath).base64EncodedString(),
                "tls.key": plane.certificates.read(plane.certificates.serverKeyPath).base64EncodedString(),
            ]
            _ = try await admin.create(Secret(metadata: ObjectMeta(name: "certificate", namespace: web), type: Secret.tlsType, data: pair))
            for kind in ["Gateway", "ListenerSet"] {
                _ = try await admin.create(ReferenceGrant(
                    metadata: ObjectMeta(name: "for-\(kind.lowercased())", namespace: web),
                    spec: ReferenceGrantSpec(from: [ReferenceGrantFrom(group: GatewayAPI.group, kind: kind, namespace: ns)], to: [ReferenceGrantTo(group: "", kind: "Secret")])))
            }
            let all = AllowedRoutes(namespaces: RouteNamespaces(from: "All"))
            func https(_ name: String) -> Listener {
                Listener(
                    name: name, hostname: "\(name).com", port: 443, protocol: "HTTPS", allowedRoutes: all,
                    tls: GatewayTLSConfig(certificateRefs: [SecretObjectReference(group: "", kind: "Secret", name: "certificate", namespace: web)]))
            }
            _ = try await admin.create(Gateway(
                metadata: ObjectMeta(name: "gw", namespace: ns),
                spec: GatewaySpec(
                    gatewayClassName: "portway", listeners: [https("gateway-listener"), Listener(name: "http", hostname: "http.com", port: 80, protocol: "HTTP", allowedRoutes: all)],
                    allowedListeners: AllowedListeners(namespaces: RouteNamespaces(from: "All")))))
            func listenerSet(_ name: String, in namespace: String = ns, _ listeners: [Listener]) async throws {
                _ = try await admin.create(ListenerSet(
                    metadata: ObjectMeta(name: name, namespace: namespace),
                    spec: ListenerSetSpec(parentRef: ListenerSetParentReference(group: GatewayAPI.group, kind: "Gateway", namespace: ns, name: "gw"), listeners: listeners)))
            }
            try await listenerSet("with-grant", [https("with-grant-listener")])
            try await listenerSet("without-grant", in: other, [https("without-grant-listener")])
            try await listenerSet("kinds", [Listener(
                name: "tls-only", hostname: "tls-only.com", port: 443, protocol: "TLS",
                allowedRoutes: AllowedRoutes(namespaces: RouteNamespaces(from: "All"), kinds: [RouteGroupKind(kind: "HTTPRoute")]), tls: GatewayTLSConfig(mode: "Passthrough"))])
            try await listenerSet("tcp", [Listener(name: "ok", hostname: "ok.com", port: 80, protocol: "HTTP", allowedRoutes: all), Listener(name: "tcp", port: 80, protocol: "TCP")])

            /// The set's conditions, then each listener's conditions of `types`, at its generation.
            func status(_ name: String, in namespace: String = ns, _ types: [String]) async throws -> String {
                let s = try await admin.get(ListenerSet.self, name: name, namespace: namespace)
                guard Conformance.latest(s.status?.conditions, s.metadata.generation) else { return "not at generation \(s.metadata.generation ?? 0)" }
                let listeners = (s.status?.listeners ?? []).map { l in
                    "\(l.name): " + Conformance.summary(l.conditions).filter { c in types.contains { c.hasPrefix($0 + "=") } }.joined(separator: " ")
                }
                return (Conformance.summary(s.status?.conditions) + listeners).joined(separator: "; ")
            }
            let expected: [(String, String, [String], String)] = [
                ("with-grant", ns, ["ResolvedRefs"], "Accepted=True/Accepted; Programmed=True/Programmed; with-grant-listener: ResolvedRefs=True/ResolvedRefs"),
                ("without-grant", other, ["ResolvedRefs"],
                 "Accepted=False/ListenersNotValid; Programmed=False/ListenersNotValid; without-grant-listener: ResolvedRefs=False/RefNotPermitted"),
                ("kinds", ns, ["ResolvedRefs"], "Accepted=False/ListenersNotValid; Programmed=False/ListenersNotValid; tls-only: ResolvedRefs=False/InvalidRouteKinds"),
                ("tcp", ns, ["Accepted", "Conflicted", "Programmed"],
                 "Accepted=True/ListenersNotValid; Programmed=True/Programmed; ok: Accepted=True/Accepted Conflicted=False/NoConflicts Programmed=True/Programmed; "
                    + "tcp: Accepted=False/ProtocolConflict Conflicted=True/ProtocolConflict Programmed=False/ProtocolConflict"),
            ]
            for (name, namespace, types, want) in expected {
                var got = ""
                let done = try await waitUntil { got = try await status(name, in: namespace, types); return got == want }
                #expect(done, "ListenerSet \(name): \(got)")
            }
            try await eventually("gw: attachedListenerSets 2 (with-grant, tcp)") {
                try await admin.get(Gateway.self, name: "gw", namespace: ns).status?.attachedListenerSets == 2
            }
        }
    }

    /// Issue 19 on the real server: with a node's report Lease, the leader writes a ListenerSet's
    /// `Programmed` and a route parent's `Accepted` from what the node serves: Pending, naming the
    /// node, while its report lacks them; True once it has them at their generations.
    @Test("ListenerSet Programmed and HTTPRoute Accepted follow a node's report Lease")
    func listenerSetAndRouteFollowTheNodeReport() async throws {
        try await Conformance.withLeader { admin, _ in
            let ns = Conformance.infra
            _ = try await admin.create(Node(metadata: ObjectMeta(name: "node-x")))
            _ = try await admin.create(Service(metadata: ObjectMeta(name: "infra-backend-v1", namespace: ns), spec: ServiceSpec(ports: [ServicePort(protocol: "TCP", port: 8080)])))
            _ = try await admin.create(Gateway(
                metadata: ObjectMeta(name: "gw", namespace: ns),
                spec: GatewaySpec(
                    gatewayClassName: "portway", listeners: [Listener(name: "http", port: 80, protocol: "HTTP")],
                    allowedListeners: AllowedListeners(namespaces: RouteNamespaces(from: "All")))))
            _ = try await admin.create(ListenerSet(
                metadata: ObjectMeta(name: "set", namespace: ns),
                spec: ListenerSetSpec(
                    parentRef: ListenerSetParentReference(group: GatewayAPI.group, kind: "Gateway", namespace: ns, name: "gw"),
                    listeners: [Listener(name: "one", hostname: "one.com", port: 80, protocol: "HTTP")])))
            _ = try await admin.create(HTTPRoute(
                metadata: ObjectMeta(name: "to-set", namespace: ns),
                spec: HTTPRouteSpec(
                    parentRefs: [ParentReference(group: GatewayAPI.group, kind: "ListenerSet", name: "set")],
                    rules: [HTTPRouteRule(backendRefs: [HTTPBackendRef(name: "infra-backend-v1", port: 8080)])])))
            // node-x's report: the Gateway only, neither the ListenerSet nor the route.
            func lease(_ report: NodeProgramReport) -> Lease {
                var lease = Lease(
                    metadata: ObjectMeta(name: NodeProgramReport.leaseName(node: "node-x"), namespace: "portway-system"),
                    spec: LeaseSpec(holderIdentity: "node-x", leaseDurationSeconds: 3600, renewTime: LeaderElectionMachine.microTime(Date())))
                lease.metadata.labels = [NodeProgramReport.label: "node-x"]
                lease.metadata.annotations = [NodeProgramReport.annotation: report.json]
                return lease
            }
            let gatewayOnly = NodeProgramReport(gateways: ["\(ns)/gw": GatewayProgram(generation: 1)])
            _ = try await admin.create(lease(gatewayOnly), namespace: "portway-system")

            func set() async throws -> ListenerSet { try await admin.get(ListenerSet.self, name: "set", namespace: ns) }
            func accepted() async throws -> Condition? {
                let route = try await admin.get(HTTPRoute.self, name: "to-set", namespace: ns)
                return route.status?.parents?.first { $0.controllerName == GatewayOptions.defaultControllerName }?.conditions?.first { $0.type == "Accepted" }
            }
            try await eventually("the ListenerSet Programmed False/Pending, naming node-x") {
                let programmed = try await set().status?.conditions?.first { $0.type == "Programmed" }
                return programmed?.status == "False" && programmed?.reason == "Pending"
                    && programmed?.message == "0 of 1 nodes serve generation 1; node-x: has not programmed this ListenerSet"
            }
            try await eventually("the route's Accepted False/Pending, naming node-x") {
                let condition = try await accepted()
                return condition?.status == "False" && condition?.reason == "Pending"
                    && condition?.message == "0 of 1 nodes serve generation 1; node-x: has not programmed this route"
            }
            // node-x serves both now.
            var current = try await admin.get(Lease.self, name: NodeProgramReport.leaseName(node: "node-x"), namespace: "portway-system")
            var full = gatewayOnly
            full.listenerSets = ["\(ns)/set": GatewayProgram(generation: 1)]
            full.routes = [ns: ["to-set": 1]]
            current.metadata.annotations = [NodeProgramReport.annotation: full.json]
            _ = try await admin.update(current, namespace: "portway-system")
            try await eventually("the ListenerSet Programmed True, served by the 1 node") {
                let programmed = try await set().status?.conditions?.first { $0.type == "Programmed" }
                return programmed?.status == "True" && programmed?.message == "generation 1 served by the 1 node"
            }
            try await eventually("the route's Accepted True once node-x serves it") {
                let condition = try await accepted()
                return condition?.status == "True" && condition?.reason == "Accepted"
            }
        }
    }
}

