import KubeModels
import Testing
@testable import GatewayCore
import LoadBalancer

/// Which Gateways a change of each Gateway API kind touches (`ClusterIndex.apply`).
@Suite("ClusterIndex: Gateway API changes and the Gateways they touch")
struct GatewayKeysTests {
    static func gateway(_ name: String, namespace: String = "demo", className: String = "portway", from: String? = nil) -> Gateway {
        let allowed = from.map { AllowedRoutes(namespaces: RouteNamespaces(from: $0)) }
        return Gateway(
            metadata: ObjectMeta(name: name, namespace: namespace),
            spec: GatewaySpec(gatewayClassName: className, listeners: [Listener(name: "http", port: 80, protocol: "HTTP", allowedRoutes: allowed)]))
    }

    static func route(_ name: String, parents: [ParentReference]) -> HTTPRoute {
        HTTPRoute(metadata: ObjectMeta(name: name, namespace: "demo"), spec: HTTPRouteSpec(parentRefs: parents))
    }

    static func key(_ name: String, _ namespace: String = "demo") -> ObjectKey { ObjectKey(namespace: namespace, name: name) }

    var index: ClusterIndex {
        ClusterIndex(ClusterSnapshot(gateways: [
            Self.gateway("a"), Self.gateway("b", from: "Selector"), Self.gateway("c", namespace: "infra", className: "other"),
        ]))
    }

    @Test("a Gateway touches itself; its removal too")
    func gatewayTouchesItself() {
        var index = index
        #expect(index.apply(.gateways(Self.key("a"), [Self.gateway("a", className: "x")])).gateways == [Self.key("a")])
        #expect(index.apply(.gateways(Self.key("a"), [])).gateways == [Self.key("a")])
        #expect(index.gateways[Self.key("a")] == nil)
    }

    @Test("an HTTPRoute touches the Gateways it leaves and joins; parentRefs of other kinds touch none")
    func routeTouchesParents() {
        var index = index
        let first = index.apply(.httpRoutes(Self.key("r"), [Self.route("r", parents: [ParentReference(name: "a")])]))
        #expect(first.gateways == [Self.key("a")])
        #expect(first.services.isEmpty)
        let moved = index.apply(.httpRoutes(Self.key("r"), [Self.route("r", parents: [ParentReference(namespace: "infra", name: "c")])]))
        #expect(moved.gateways == [Self.key("a"), Self.key("c", "infra")], "the old parent and the new one")
        let service = index.apply(.httpRoutes(Self.key("r"), [Self.route("r", parents: [ParentReference(group: "", kind: "Service", name: "web")])]))
        #expect(service.gateways == [Self.key("c", "infra")], "a Service parent (mesh) is no Gateway: only the parent left")
        #expect(index.apply(.httpRoutes(Self.key("r"), [])).gateways.isEmpty)
    }

    @Test("a GatewayClass touches its Gateways; a Namespace the Gateways selecting namespaces by label; a ReferenceGrant every Gateway")
    func classNamespaceGrant() {
        var index = index
        #expect(index.apply(.gatewayClasses("portway", [])).gateways == [Self.key("a"), Self.key("b")])
        #expect(index.apply(.gatewayClasses("unused", [])).gateways.isEmpty)
        #expect(index.apply(.namespaces("team", [Namespace(metadata: ObjectMeta(name: "team", labels: ["shared": "yes"]))])).gateways == [Self.key("b")])
        let grant = ReferenceGrant(metadata: ObjectMeta(name: "g", namespace: "infra"), spec: ReferenceGrantSpec(from: [], to: []))
        #expect(index.apply(.referenceGrants(Self.key("g", "infra"), [grant])).gateways == [Self.key("a"), Self.key("b"), Self.key("c", "infra")])
        #expect(index.referenceGrants[Self.key("g", "infra")] == [grant])
    }

    @Test("snapshots carry the Gateway kinds and diffs name their keys")
    func snapshotRoundTrip() {
        let old = index.snapshot
        #expect(old.gateways.map(\.metadata.name) == ["a", "b", "c"], "in key order: demo/a, demo/b, infra/c")
        var new = old
        new.httpRoutes = [Self.route("r", parents: [ParentReference(name: "a")])]
        new.gateways.removeAll { $0.metadata.name == "b" }
        let changes = ClusterIndex.changes(from: old, to: new)
        #expect(changes == [.gateways(Self.key("b"), []), .httpRoutes(Self.key("r"), new.httpRoutes)])
    }

    @Test("a Secret touches the Gateways whose listeners name it (namespace defaulted to the Gateway's); snapshots and diffs carry it")
    func secretTouchesReferencingGateways() {
        func https(_ name: String, namespace: String, refs: [SecretObjectReference]) -> Gateway {
            Gateway(
                metadata: ObjectMeta(name: name, namespace: namespace),
                spec: GatewaySpec(gatewayClassName: "portway", listeners: [
                    Listener(name: "http", port: 80, protocol: "HTTP"),
                    Listener(name: "https", port: 443, protocol: "HTTPS", tls: GatewayTLSConfig(certificateRefs: refs)),
                ]))
        }
        var index = ClusterIndex(ClusterSnapshot(gateways: [
            https("local", namespace: "demo", refs: [SecretObjectReference(name: "cert")]),
            https("remote", namespace: "infra", refs: [SecretObjectReference(name: "cert", namespace: "demo")]),
            https("other", namespace: "infra", refs: [SecretObjectReference(name: "cert")]),
            https("configmap", namespace: "demo", refs: [SecretObjectReference(group: "", kind: "ConfigMap", name: "cert")]),
            Self.gateway("plain"),
        ]))
        let secret = Secret(metadata: ObjectMeta(name: "cert", namespace: "demo"), type: Secret.tlsType, data: ["tls.crt": "", "tls.key": ""])
        let touched = index.apply(.secrets(Self.key("cert"), [secret]))
        #expect(touched.gateways == [Self.key("local"), Self.key("remote", "infra")])
        #expect(touched.services.isEmpty)
        #expect(index.secrets[Self.key("cert")] == [secret])
        #expect(index.snapshot.secrets == [secret])
        #expect(index.apply(.secrets(Self.key("unused"), [])).gateways.isEmpty)
        #expect(index.apply(.secrets(Self.key("cert"), [])).gateways == [Self.key("local"), Self.key("remote", "infra")], "a deletion touches them too")
        #expect(index.snapshot.secrets.isEmpty)
        let changes = ClusterIndex.changes(from: ClusterSnapshot(), to: ClusterSnapshot(secrets: [secret]))
        #expect(changes == [.secrets(Self.key("cert"), [secret])])
    }

    @Test("the registry watches only TLS Secrets, with the Gateway kinds")
    func secretsSelectors() {
        #expect(ResourceRegistry.secrets.selectors(WatchScope(nodeName: "n")) == ListSelectors(fieldSelector: "type=kubernetes.io/tls"))
        #expect(ResourceRegistry.secrets.selectors(WatchScope(nodeName: "n", watchGateways: false)) == nil)
        #expect(!ResourceRegistry.secrets.optional, "a core kind: always served")
    }
}
