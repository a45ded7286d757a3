@testable import Agent
import Foundation
import GatewayCore
import KubeModels
import LoadBalancer
import PortwayTestSupport
import Testing

/// Random changes over a small world of Gateway-side objects and Services: what the Gateway stage
/// keeps (building only the Gateways a change affects, or nothing) must equal a build from scratch.
@Suite("GatewayStage model: partial builds equal a full build over random change sequences")
struct GatewayStageModelTests {
    struct World {
        var rng: SplitMix
        let gateways = [ObjectKey(namespace: "demo", name: "g1"), ObjectKey(namespace: "demo", name: "g2"), ObjectKey(namespace: "other", name: "g3")]
        let routes = [ObjectKey(namespace: "demo", name: "r1"), ObjectKey(namespace: "demo", name: "r2"), ObjectKey(namespace: "other", name: "r3"), ObjectKey(namespace: "demo", name: "r4")]
        let services = [ObjectKey(namespace: "demo", name: "s1"), ObjectKey(namespace: "demo", name: "s2"), ObjectKey(namespace: "other", name: "s3")]
        let listenerSets = [ObjectKey(namespace: "demo", name: "ls1"), ObjectKey(namespace: "other", name: "ls2")]

        mutating func pick<T>(_ items: [T]) -> T { items[Int(rng.next() % UInt64(items.count))] }
        mutating func chance(_ percent: UInt64) -> Bool { rng.next() % 100 < percent }

        mutating func gateway(_ key: ObjectKey) -> Gateway {
            var listeners = [Listener(
                name: "http", hostname: pick([nil, "*.example.com", "a.example.com"]), port: 80, protocol: "HTTP",
                allowedRoutes: AllowedRoutes(namespaces: RouteNamespaces(
                    from: pick(["Same", "All", "Selector"]), selector: LabelSelector(matchLabels: ["routes": "yes"]))))]
            if chance(40) {
                listeners.append(Listener(
                    name: "https", port: 443, protocol: "HTTPS",
                    tls: GatewayTLSConfig(certificateRefs: [SecretObjectReference(name: "cert", namespace: pick([nil, "demo"]))])))
            }
            if chance(20) { listeners.append(Listener(name: "alt", port: 8080, protocol: "HTTP")) }
            // A second listener with the first one's hostname: both conflicted, neither served.
            if chance(15) { listeners.append(Listener(name: "dup", hostname: listeners[0].hostname, port: 80, protocol: "HTTP")) }
            // Client certificate validation with the ConfigMap `ca` (of the Gateway's namespace or demo's).
            let tls: GatewayWideTLSConfig? = chance(40) ? GatewayWideTLSConfig(frontend: FrontendTLSConfig(default: FrontendTLSSettings(validation: FrontendTLSValidation(
                caCertificateRefs: [ObjectReference(kind: "ConfigMap", name: "ca", namespace: pick([nil, "demo"]))],
                mode: pick([nil, "AllowInsecureFallback"]))))) : nil
            return Gateway(
                metadata: ObjectMeta(name: key.name, namespace: key.namespace, generation: Int64(rng.next() % 5)),
                spec: GatewaySpec(
                    gatewayClassName: pick(["portway", "portway", "foreign", "missing"]), listeners: listeners,
                    allowedListeners: chance(60) ? AllowedListeners(namespaces: RouteNamespaces(from: pick(["All", "Same", "None"]))) : nil, tls: tls))
        }

        mutating func route(_ key: ObjectKey) -> HTTPRoute {
            var parents: [ParentReference] = []
            for gateway in gateways where chance(45) {
                parents.append(ParentReference(namespace: gateway.namespace == key.namespace && chance(50) ? nil : gateway.namespace, name: gateway.name))
            }
            for set in listenerSets where chance(25) {
                parents.append(ParentReference(
                    group: GatewayAPI.group, kind: "ListenerSet", namespace: set.namespace == key.namespace && chance(50) ? nil : set.namespace, name: set.name,
                    sectionName: chance(30) ? "ls-a" : nil))
            }
            var backends: [HTTPBackendRef] = []
            for service in services where chance(50) {
                backends.append(HTTPBackendRef(
                    name: service.name, namespace: service.namespace == key.namespace && chance(50) ? nil : service.namespace,
                    port: pick([80, 80, 81]), weight: pick([nil, 1, 3])))
            }
            return HTTPRoute(
                metadata: ObjectMeta(name: key.name, namespace: key.namespace, generation: 1, creationTimestamp: "2026-11-2\(rng.next() % 9)T00:00:00Z"),
                spec: HTTPRouteSpec(
                    parentRefs: parents, hostnames: chance(30) ? nil : [pick(["a.example.com", "b.example.com", "*.example.com"])],
                    rules: [HTTPRouteRule(matches: [HTTPRouteMatch(path: HTTPPathMatch(type: "PathPrefix", value: pick(["/", "/api"])))], backendRefs: backends)]))
        }

        /// A base64 PEM block the builder's default (structural) check takes; `tag` makes them differ.
        static func pem(_ label: String, _ tag: UInt8) -> String {
            Data("-----BEGIN \(label)-----\n\(Data([0x30, 0x01, tag]).base64EncodedString())\n-----END \(label)-----\n".utf8).base64EncodedString()
        }

        /// One random change.
        mutating func change() -> ClusterChange {
            switch rng.next() % 14 {
            case 0:
                let key = pick(gateways)
                return .gateways(key, chance(20) ? [] : [gateway(key)])
            case 1, 2:
                let key = pick(routes)
                return .httpRoutes(key, chance(20) ? [] : [route(key)])
            case 3:
                let key = pick(services)
                return .services(key, chance(15) ? [] : [Service(
                    metadata: ObjectMeta(name: key.name, namespace: key.namespace),
                    spec: ServiceSpec(clusterIP: "10.96.0.\(rng.next() % 200 + 1)", ports: [ServicePort(name: "http", protocol: "TCP", port: pick([80, 81]))]))])
            case 4, 5:
                let service = pick(services)
                let key = ObjectKey(namespace: service.namespace, name: "\(service.name)-x")
                return .endpointSlices(key, chance(15) ? [] : [EndpointSlice(
                    metadata: ObjectMeta(name: key.name, namespace: key.namespace, labels: [EndpointSlice.serviceNameLabel: service.name]),
                    addressType: "IPv4", endpoints: [Endpoint(addresses: ["10.1.0.\(rng.next() % 200 + 1)"], conditions: EndpointConditions(ready: chance(80)))],
                    ports: [EndpointPort(name: "http", port: 8080)])])
            case 6:
                // A Gateway's Service (as the leader keeps it), or an unrelated one.
                let gateway = pick(gateways)
                let key = ObjectKey(namespace: gateway.namespace, name: "portway-gw-\(gateway.name)")
                return .services(key, chance(20) ? [] : [Service(
                    metadata: ObjectMeta(name: key.name, namespace: key.namespace, labels: chance(85) ? [GatewayAPI.gatewayNameLabel: gateway.name] : nil),
                    spec: ServiceSpec(type: "NodePort", clusterIP: "10.96.1.\(rng.next() % 200 + 1)", ports: [
                        ServicePort(name: "http", protocol: "TCP", port: 80, nodePort: 30080),
                    ]))])
            case 7:
                let name = pick(["portway", "foreign"])
                return .gatewayClasses(name, chance(15) ? [] : [GatewayClass(
                    metadata: ObjectMeta(name: name), spec: GatewayClassSpec(controllerName: chance(80) == (name == "portway") ? "portway.io/gateway-controller" : "example.com/other"))])
            case 8:
                let name = pick(["demo", "other"])
                return .namespaces(name, [Namespace(metadata: ObjectMeta(name: name, labels: chance(50) ? ["routes": "yes"] : [:]))])
            case 9:
                return .referenceGrants(ObjectKey(namespace: "other", name: "grant"), chance(40) ? [] : [ReferenceGrant(
                    metadata: ObjectMeta(name: "grant", namespace: "other"),
                    spec: ReferenceGrantSpec(
                        from: [ReferenceGrantFrom(group: GatewayAPI.group, kind: "HTTPRoute", namespace: "demo")],
                        to: [ReferenceGrantTo(group: "", kind: "Service")]))])
            case 10:
                // A ListenerSet naming one of the Gateways (or moving to another), its listeners
                // overlapping the Gateways' and each other's.
                let key = pick(listenerSets)
                let gateway = pick(gateways)
                var listeners = [Listener(
                    name: "ls-a", hostname: pick([nil, "a.example.com", "c.example.com"]), port: pick([80, 80, 9090]), protocol: pick(["HTTP", "HTTP", "TCP"]),
                    allowedRoutes: AllowedRoutes(namespaces: RouteNamespaces(from: pick(["Same", "All"]))))]
                if chance(40) { listeners.append(Listener(name: "ls-b", hostname: "*.example.com", port: 80, protocol: "HTTP")) }
                return .listenerSets(key, chance(20) ? [] : [ListenerSet(
                    metadata: ObjectMeta(name: key.name, namespace: key.namespace, generation: 1, creationTimestamp: "2026-11-2\(rng.next() % 9)T00:00:00Z"),
                    spec: ListenerSetSpec(parentRef: ListenerSetParentReference(namespace: gateway.namespace, name: gateway.name), listeners: listeners))])
            case 11:
                let key = ObjectKey(namespace: pick(["demo", "other"]), name: "ca")
                return .configMaps(key, chance(25) ? [] : [ConfigMap(
                    metadata: ObjectMeta(name: "ca", namespace: key.namespace),
                    data: ["ca.crt": pick(["-----BEGIN CERTIFICATE-----\nMAEB\n-----END CERTIFICATE-----\n", "-----BEGIN CERTIFICATE-----\nMAEC\n-----END CERTIFICATE-----\n", "garbage"])])])
            case 12:
                // A BackendTLSPolicy on a Service (or one of its ports), with the ConfigMap `ca`
                // of its namespace: two per namespace, so they conflict now and then.
                let service = pick(services)
                let key = ObjectKey(namespace: service.namespace, name: pick(["p1", "p2"]))
                return .backendTLSPolicies(key, chance(20) ? [] : [BackendTLSPolicy(
                    metadata: ObjectMeta(name: key.name, namespace: key.namespace, generation: 1, creationTimestamp: "2026-11-2\(rng.next() % 3)T00:00:00Z"),
                    spec: BackendTLSPolicySpec(
                        targetRefs: [PolicyTargetReference(name: service.name, sectionName: pick([nil, "http", "other"]))],
                        validation: BackendTLSPolicyValidation(
                            caCertificateRefs: chance(85) ? [LocalObjectReference(name: "ca")] : nil, wellKnownCACertificates: chance(15) ? "System" : nil,
                            hostname: pick(["a.example.com", "b.example.com"]))))])
            default:
                let key = ObjectKey(namespace: "demo", name: "cert")
                return .secrets(key, chance(25) ? [] : [Secret(
                    metadata: ObjectMeta(name: "cert", namespace: "demo"), type: Secret.tlsType,
                    data: ["tls.crt": pick([Self.pem("CERTIFICATE", 1), Self.pem("CERTIFICATE", 2)]), "tls.key": Self.pem("PRIVATE KEY", 1)])])
            }
        }
    }

    /// A small deterministic generator (seeded, so a failure can be replayed).
    struct SplitMix {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test("the plan's partial builds and skipped steps agree with GatewayState.build from scratch", arguments: [UInt64(1), 2, 3, 4, 5, 6, 7, 8])
    func incrementalEqualsFromScratch(seed: UInt64) async throws {
        // CPU-bound: on the tests' CPU lane, not the 2-thread cooperative pool.
        let outcome = try await onCPULane { Self.compare(seed: seed) }
        #expect(outcome.mismatch == nil, "\(outcome.mismatch ?? "")")
        // The model exercises all three paths.
        #expect(outcome.skipped > 0 && outcome.partialBuilds > 0, "skipped \(outcome.skipped), partial \(outcome.partialBuilds)")
    }

    /// 400 steps of `seed`: the first step whose incremental state differs from a build from
    /// scratch (what differs), and how often a step was skipped or built partly.
    static func compare(seed: UInt64) -> (mismatch: String?, skipped: Int, partialBuilds: Int) {
        var world = World(rng: SplitMix(state: seed))
        var index = ClusterIndex()
        var stage = GatewayPlan()
        var skipped = 0
        for step in 0..<400 {
            // Batches of one to three changes, as the pipeline takes them together.
            var work = GatewayPlan.Work.none
            var applied: [ClusterChange] = []
            for _ in 0...(world.rng.next() % 3) {
                let change = world.change()
                applied.append(change)
                work.formUnion(stage.affected(index.apply(change), index: index))
            }
            if step % 97 == 0 { work = .all }
            if work == .none { skipped += 1 } else { _ = stage.rebuild(work, index: index) }

            let snapshot = index.snapshot
            let full = GatewayState.build(snapshot)
            let built = stage.state
            var differs: [String] = []
            if built.tables != full.tables { differs.append("tables") }
            if built.certificates != full.certificates { differs.append("certificates") }
            if built.ownedGateways != full.ownedGateways { differs.append("ownedGateways") }
            if built.foreignGateways != full.foreignGateways { differs.append("foreignGateways") }
            if built.warnings != full.warnings { differs.append("warnings: \(built.warnings) vs \(full.warnings)") }
            if built.unservedListeners != full.unservedListeners { differs.append("unservedListeners") }
            if stage.frontends != GatewayPlan(index: index).frontends { differs.append("frontends") }
            if !differs.isEmpty {
                return ("seed \(seed) step \(step) after \(applied): \(differs.joined(separator: ", ")) differ", skipped, stage.partialBuilds)
            }
        }
        return (nil, skipped, stage.partialBuilds)
    }
}
