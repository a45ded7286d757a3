import Foundation

/// YAML documents of Kubernetes and Gateway API objects, for the tests that feed files to the agent
/// (`--from-dir`), `translate`, `routes` and `explain`. Each builder returns one or more documents
/// ending in a newline; `KubeYAML.join` puts `---` between them. Namespace `demo` unless told.
public enum KubeYAML {
    /// Portway's GatewayClass name and controller in the fixtures.
    public static let className = "portway"
    public static let controllerName = "portway.io/gateway-controller"

    /// The documents, separated by `---`.
    public static func join(_ documents: [String]) -> String {
        documents.map { $0.hasSuffix("\n") ? $0 : $0 + "\n" }.joined(separator: "---\n")
    }

    public static func join(_ documents: String...) -> String { join(documents) }

    // MARK: core objects

    /// A Service port (`protocol: nil` leaves the field out).
    public struct Port: Sendable {
        public var name: String
        public var port: Int
        public var targetPort: Int?
        public var nodePort: Int?
        public var `protocol`: String?

        public init(name: String = "http", port: Int, targetPort: Int? = nil, nodePort: Int? = nil, protocol: String? = "TCP") {
            self.name = name
            self.port = port
            self.targetPort = targetPort
            self.nodePort = nodePort
            self.protocol = `protocol`
        }

        var flow: String {
            var fields = ["name: \(name)", "port: \(port)"]
            if let targetPort { fields.append("targetPort: \(targetPort)") }
            if let nodePort { fields.append("nodePort: \(nodePort)") }
            if let `protocol` { fields.append("protocol: \(`protocol`)") }
            return "{\(fields.joined(separator: ", "))}"
        }
    }

    /// An endpoint of an EndpointSlice (nil conditions are left out).
    public struct Endpoint: Sendable {
        public var address: String
        public var ready: Bool?
        public var serving: Bool?
        public var terminating: Bool?
        public var nodeName: String?

        public init(_ address: String, ready: Bool? = true, serving: Bool? = nil, terminating: Bool? = nil, nodeName: String? = nil) {
            self.address = address
            self.ready = ready
            self.serving = serving
            self.terminating = terminating
            self.nodeName = nodeName
        }

        var flow: String {
            var fields = ["addresses: [\"\(address)\"]"]
            let conditions = [("ready", ready), ("serving", serving), ("terminating", terminating)].compactMap { name, value in value.map { "\(name): \($0)" } }
            if !conditions.isEmpty { fields.append("conditions: {\(conditions.joined(separator: ", "))}") }
            if let nodeName { fields.append("nodeName: \(nodeName)") }
            return "{\(fields.joined(separator: ", "))}"
        }
    }

    static func labels(_ labels: [String: String]) -> String {
        labels.isEmpty ? "" : "  labels: {\(labels.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))}\n"
    }

    /// A Service (no `type`: ClusterIP).
    public static func service(
        _ name: String, namespace: String = "demo", type: String? = nil, clusterIP: String? = nil, labels: [String: String] = [:], ports: [Port]
    ) -> String {
        var text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: \(name)\n  namespace: \(namespace)\n" + Self.labels(labels) + "spec:\n"
        if let type { text += "  type: \(type)\n" }
        if let clusterIP { text += "  clusterIP: \(clusterIP)\n" }
        text += "  ports:\n" + ports.map { "  - \($0.flow)\n" }.joined()
        return text
    }

    /// An EndpointSlice of Service `service` (IPv4).
    public static func endpointSlice(_ name: String, namespace: String = "demo", service: String, ports: [Port], endpoints: [Endpoint]) -> String {
        var text = """
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: \(name)
              namespace: \(namespace)
              labels: {kubernetes.io/service-name: \(service)}
            addressType: IPv4
            ports: [\(ports.map(\.flow).joined(separator: ", "))]

            """
        text += endpoints.isEmpty ? "endpoints: []\n" : "endpoints:\n" + endpoints.map { "- \($0.flow)\n" }.joined()
        return text
    }

    /// A NodePort Service `name` (port 80 named http to 8080/TCP, node port `nodePort`).
    public static func nodePortService(_ name: String, namespace: String = "demo", clusterIP: String, nodePort: Int) -> String {
        service(name, namespace: namespace, type: "NodePort", clusterIP: clusterIP, ports: [Port(port: 80, targetPort: 8080, nodePort: nodePort)])
    }

    /// The EndpointSlice `<service>-abc` with one ready endpoint on `nodeName` per address (port http 8080/TCP).
    public static func readySlice(service: String, namespace: String = "demo", addresses: [String], nodeName: String? = "node-a") -> String {
        endpointSlice(
            "\(service)-abc", namespace: namespace, service: service, ports: [Port(port: 8080, protocol: "TCP")],
            endpoints: addresses.map { Endpoint($0, nodeName: nodeName) })
    }

    /// A backend of HTTPRoutes: Service `service` (port 80 named http to `targetPort`) and its
    /// EndpointSlice `sliceName` (default `<service>-1`) with ready endpoints on `targetPort`.
    public static func backend(
        _ service: String, namespace: String = "demo", clusterIP: String, targetPort: Int, addresses: [String], nodeName: String? = nil,
        sliceName: String? = nil
    ) -> String {
        join(
            Self.service(service, namespace: namespace, clusterIP: clusterIP, ports: [Port(port: 80, targetPort: targetPort)]),
            endpointSlice(
                sliceName ?? "\(service)-1", namespace: namespace, service: service, ports: [Port(port: targetPort)],
                endpoints: addresses.map { Endpoint($0, nodeName: nodeName) }))
    }

    /// A Namespace with labels.
    public static func namespace(_ name: String, labels: [String: String] = [:]) -> String {
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: \(name)\n" + Self.labels(labels)
    }

    /// A kubernetes.io/tls Secret holding `certificate` and `key` (PEM bytes).
    public static func tlsSecret(_ name: String, namespace: String = "demo", certificate: Data, key: Data) -> String {
        """
        apiVersion: v1
        kind: Secret
        metadata: {name: \(name), namespace: \(namespace)}
        type: kubernetes.io/tls
        data: {tls.crt: \(certificate.base64EncodedString()), tls.key: \(key.base64EncodedString())}

        """
    }

    // MARK: Gateway API

    /// A GatewayClass (Portway's by default).
    public static func gatewayClass(_ name: String = KubeYAML.className, controller: String = KubeYAML.controllerName) -> String {
        """
        apiVersion: gateway.networking.k8s.io/v1
        kind: GatewayClass
        metadata: {name: \(name)}
        spec: {controllerName: \(controller)}

        """
    }

    /// A listener as a flow mapping; `certificate` adds `tls.certificateRefs` (and `mode` when given).
    public static func listener(
        _ name: String = "http", port: Int = 80, protocol: String = "HTTP", hostname: String? = nil, certificate: String? = nil, mode: String? = nil
    ) -> String {
        var fields = ["name: \(name)", "port: \(port)", "protocol: \(`protocol`)"]
        if let hostname { fields.append("hostname: \(hostname)") }
        if let certificate { fields.append("tls: {\(mode.map { "mode: \($0), " } ?? "")certificateRefs: [{name: \(certificate)}]}") }
        return "{\(fields.joined(separator: ", "))}"
    }

    /// A Gateway of class `className` with `listeners` (flow mappings, see `listener`).
    public static func gateway(_ name: String, namespace: String = "demo", className: String = KubeYAML.className, listeners: [String] = [listener()]) -> String {
        """
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: \(name), namespace: \(namespace)}
        spec:
          gatewayClassName: \(className)
          listeners:

        """ + listeners.map { "  - \($0)\n" }.joined()
    }

    /// The NodePort Service `portway-gw-<gateway>` the leader keeps for a Gateway (or a dump holds).
    public static func gatewayService(_ gateway: String, namespace: String = "demo", clusterIP: String, ports: [Port]) -> String {
        service(
            "portway-gw-\(gateway)", namespace: namespace, type: "NodePort", clusterIP: clusterIP,
            labels: ["gateway.networking.k8s.io/gateway-name": gateway], ports: ports)
    }

    /// A rule as a list item: `matches` (a YAML flow list, when given) then one backendRef.
    public static func rule(_ backend: String, port: Int = 80, matches: String? = nil) -> String {
        (matches.map { "- matches: \($0)\n  " } ?? "- ") + "backendRefs: [{name: \(backend), port: \(port)}]\n"
    }

    /// An HTTPRoute attached to Gateway `parent` with `rules` (see `rule`).
    public static func httpRoute(_ name: String, namespace: String = "demo", parent: String = "web", hostnames: [String], rules: [String]) -> String {
        """
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: \(name), namespace: \(namespace)}
        spec:
          parentRefs: [{name: \(parent)}]
          hostnames: [\(hostnames.joined(separator: ", "))]
          rules:

        """ + rules.map { $0.split(separator: "\n").map { "  \($0)\n" }.joined() }.joined()
    }

    /// Portway's GatewayClass, the Gateway `web` with one HTTP listener on port 80, and its NodePort
    /// Service (`portway-gw-web`, port 80 → node port `nodePort`).
    public static func webGateway(
        namespace: String = "demo", clusterIP: String, nodePort: Int = 30880, controller: String = KubeYAML.controllerName
    ) -> String {
        join(
            gatewayClass(controller: controller), gateway("web", namespace: namespace),
            gatewayService("web", namespace: namespace, clusterIP: clusterIP, ports: [Port(port: 80, targetPort: 80, nodePort: nodePort)]))
    }
}

/// `KubeYAML.nodePortService` in namespace demo (port 80 → 8080, node port `nodePort`).
public func serviceYAML(name: String, clusterIP: String, nodePort: Int) -> String {
    KubeYAML.nodePortService(name, clusterIP: clusterIP, nodePort: nodePort)
}

/// `KubeYAML.readySlice` in namespace demo: `<service>-abc`, ready endpoints on node-a, port 8080.
public func sliceYAML(service: String, addresses: [String]) -> String {
    KubeYAML.readySlice(service: service, addresses: addresses)
}
