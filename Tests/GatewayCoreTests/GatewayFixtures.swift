import FileSource
import Foundation
import GatewayCore
import KubeModels
import Testing
@testable import GatewayCore
import LoadBalancer

/// Builds Gateway API fixtures from YAML (the shape the conformance suite's manifests have).
enum GW {
    static let infra = "gateway-conformance-infra"
    static let app = "gateway-conformance-app-backend"
    static let web = "gateway-conformance-web-backend"

    /// The GatewayClass `portway` (Portway's controller) and `other` (another controller's).
    static let classes = KubeYAML.join(
        KubeYAML.gatewayClass(), KubeYAML.gatewayClass("other", controller: "example.org/other-controller"),
        KubeYAML.namespace(infra, labels: ["gateway-conformance": "infra"]),
        KubeYAML.namespace(web, labels: ["gateway-conformance": "web-backend"]),
        KubeYAML.namespace(app, labels: ["gateway-conformance": "app-backend"]))

    /// A Service on port 8080 with `ready` endpoints 10.1.<n>.1… (and none when `ready` is 0).
    static func backend(_ name: String, namespace: String = infra, subnet: Int, ready: Int = 1, terminating: Int = 0) -> String {
        let endpoints = (0..<ready).map { KubeYAML.Endpoint("10.1.\(subnet).\($0 + 1)") }
            + (0..<terminating).map { KubeYAML.Endpoint("10.1.\(subnet).\(100 + $0)", ready: false, serving: true, terminating: true) }
        return "---\n" + KubeYAML.join(
            KubeYAML.service(name, namespace: namespace, clusterIP: "10.96.\(subnet).1", ports: [.init(port: 8080, targetPort: 3000, protocol: nil)]),
            KubeYAML.endpointSlice("\(name)-x", namespace: namespace, service: name, ports: [.init(port: 3000, protocol: nil)], endpoints: endpoints))
    }

    /// The three conformance backends in the infra namespace, plus one in the app-backend namespace.
    static let backends = backend("infra-backend-v1", subnet: 1) + backend("infra-backend-v2", subnet: 2)
        + backend("infra-backend-v3", subnet: 3) + backend("app-backend-v1", namespace: app, subnet: 4)

    static func load(_ yaml: String) throws -> ClusterSnapshot {
        let result = try FileSource.load(yaml: classes + backends + "---\n" + yaml, file: "fixture.yaml")
        #expect(result.warnings == [], "fixture warnings")
        return result.snapshot
    }

    static func build(_ yaml: String, options: GatewayOptions = GatewayOptions()) throws -> GatewayState {
        GatewayState.build(try load(yaml), options: options)
    }

    /// A PEM block of `label` whose body is DER-shaped (an ASN.1 SEQUENCE), as the default
    /// (structural) certificate check wants it; `tag` makes blocks differ.
    static func pem(_ label: String, tag: UInt8 = 0) -> String {
        "-----BEGIN \(label)-----\n\(Data([0x30, 0x01, tag]).base64EncodedString())\n-----END \(label)-----\n"
    }

    /// The `data` of a kubernetes.io/tls Secret holding `certificate` and `key` (PEM text).
    static func tlsData(certificate: String = pem("CERTIFICATE"), key: String = pem("PRIVATE KEY")) -> String {
        "{tls.crt: \(Data(certificate.utf8).base64EncodedString()), tls.key: \(Data(key.utf8).base64EncodedString())}"
    }
}

extension GatewayState {
    /// Where a request goes, in one line: `ns/route rule R → backend` (the backend whose first
    /// endpoint is picked), `404`, `500 (reason)` or `503`.
    func route(_ gateway: String, port: Int = 80, host: String, path: String = "/", method: String = "GET", headers: [(String, String)] = []) -> String {
        let parts = gateway.split(separator: "/").map(String.init)
        let key = parts.count == 2 ? NamespacedName(namespace: parts[0], name: parts[1]) : NamespacedName(namespace: GW.infra, name: gateway)
        guard let table = table(gateway: key, port: port) else { return "no table" }
        let request = RouteRequest(host: host, path: path, method: method, headers: headers.map { HTTPHeader(name: $0.0, value: $0.1) })
        let decision = RouteMatcher.decide(table, request: request)
        // The proxy's fast path chooses exactly what the explaining matcher chooses.
        let fast = RouteMatcher.match(table, request: request)
        #expect(fast.entry == decision.entry && fast.code == decision.code && fast.listener.map { table.listeners[$0].name } == decision.listener)
        guard let entry = decision.entry else { return "\(decision.code)" }
        let route = entry.route.namespace == GW.infra ? entry.route.name : entry.route.description
        switch decision.code {
        case 200:
            let names = entry.backends.filter { $0.weight > 0 && $0.failureCode == nil }.map(\.reference.name)
            return "\(route)/\(entry.rule) → \(names.joined(separator: "+"))"
        case 500:
            return "\(route)/\(entry.rule) → 500 \(entry.backends.compactMap(\.failure?.reason).joined(separator: ","))"
        default:
            return "\(route)/\(entry.rule) → \(decision.code)"
        }
    }

    /// `Type=Status/Reason` of each condition of the route's parent entry for `gateway`.
    func routeConditions(_ route: String, namespace: String = GW.infra, parent: Int = 0) -> [String] {
        let parents = status.routes[NamespacedName(namespace: namespace, name: route)] ?? []
        guard parent < parents.count else { return ["no status"] }
        return (parents[parent].conditions ?? []).map { "\($0.type)=\($0.status)/\($0.reason ?? "")" }
    }

    /// The message of the first condition (Accepted) of the route's first parent entry; "" when none.
    func routeMessage(_ route: String, namespace: String = GW.infra) -> String {
        status.routes[NamespacedName(namespace: namespace, name: route)]?.first?.conditions?.first?.message ?? ""
    }

    /// `Type=Status/Reason` of the Gateway's listener conditions, and its attachedRoutes.
    func listenerConditions(_ gateway: String, listener: String, namespace: String = GW.infra) -> [String] {
        guard let l = status.gateways[NamespacedName(namespace: namespace, name: gateway)]?.listeners?.first(where: { $0.name == listener }) else { return ["no status"] }
        return l.conditions.map { "\($0.type)=\($0.status)/\($0.reason ?? "")" } + ["attachedRoutes=\(l.attachedRoutes)"]
    }
}
