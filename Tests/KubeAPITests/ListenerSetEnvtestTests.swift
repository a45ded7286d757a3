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
}
