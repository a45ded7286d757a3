import Foundation
import GatewayCore
import PortwayTestSupport
import Testing
import Views

/// `portway routes` and `explain` say which listeners come from a ListenerSet (docs/CLI-JSON.md).
@Suite struct ListenerSetViewTests {
    static let yaml = KubeYAML.join(
        KubeYAML.gatewayClass(),
        """
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: web, namespace: demo}
        spec:
          gatewayClassName: portway
          allowedListeners: {namespaces: {from: Same}}
          listeners: [{name: main, port: 80, protocol: HTTP, hostname: main.example}]

        """,
        KubeYAML.gatewayService("web", namespace: "demo", clusterIP: "10.96.0.10", ports: [.init(name: "port-80", port: 80, targetPort: 80, nodePort: 30080)]),
        KubeYAML.backend("app", namespace: "demo", clusterIP: "10.96.0.11", targetPort: 8080, addresses: ["10.1.0.5"]),
        """
        apiVersion: gateway.networking.k8s.io/v1
        kind: ListenerSet
        metadata: {name: extra, namespace: demo}
        spec:
          parentRef: {name: web}
          listeners:
          - {name: shop, port: 80, protocol: HTTP, hostname: shop.example}
          - {name: clash, port: 80, protocol: HTTP, hostname: main.example}

        """,
        """
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: shop, namespace: demo}
        spec:
          parentRefs: [{kind: ListenerSet, name: extra}]
          rules: [{backendRefs: [{name: app, port: 80}]}]

        """)

    @Test func routesAndExplainNameTheListenerSet() throws {
        let dir = try makeTempDirectory("portway-listenerset-view")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.yaml.write(toFile: dir + "/objects.yaml", atomically: true, encoding: .utf8)
        let options = GatewayViewOptions(directory: dir, nodeName: "node-a", nodeIPs: ["192.0.2.10"])

        let text = try Command.routes(options, format: .table).stdout
        #expect(text.contains("LISTENER shop HTTP shop.example (ListenerSet demo/extra)"), "\(text)")
        #expect(text.contains("LISTENER main HTTP main.example\n"), "the Gateway's own listener has no mark")
        #expect(text.contains("NOT SERVED clash (ListenerSet demo/extra) HTTP main.example: Conflicted=True HostnameConflict"), "\(text)")

        let json = try #require(try JSONSerialization.jsonObject(with: Data(Command.routes(options, format: .json).stdout.utf8)) as? [String: Any])
        let listeners = (json["tables"] as? [[String: Any]] ?? []).flatMap { $0["listeners"] as? [[String: Any]] ?? [] }
        #expect(listeners.first { $0["name"] as? String == "shop" }?["listenerSet"] as? [String: String] == ["namespace": "demo", "name": "extra"])
        #expect(listeners.first { $0["name"] as? String == "main" }?.keys.contains("listenerSet") == false)
        let unserved = json["unservedListeners"] as? [[String: Any]] ?? []
        #expect(unserved.map { $0["listenerSet"] as? [String: String] } == [["namespace": "demo", "name": "extra"]])

        let explained = try Command.explain(options, request: ExplainRequest(to: "10.96.0.10:80", host: "shop.example", path: "/"), format: .text).stdout
        #expect(explained.contains("listener: shop (shop.example) of ListenerSet demo/extra\n"), "\(explained)")
        let explainJSON = try Command.explain(options, request: ExplainRequest(to: "10.96.0.10:80", host: "shop.example", path: "/"), format: .json).stdout
        let object = try #require(try JSONSerialization.jsonObject(with: Data(explainJSON.utf8)) as? [String: Any])
        #expect((object["listener"] as? [String: Any])?["listenerSet"] as? [String: String] == ["namespace": "demo", "name": "extra"])
        #expect(object["code"] as? Int == 200)
    }
}
