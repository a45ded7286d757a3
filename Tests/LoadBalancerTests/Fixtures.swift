import KubeModels
@testable import LoadBalancer

// Compact builders for translator tests: every field the translator reads, defaults elsewhere.

func service(
    _ name: String, ns: String? = "demo", type: String? = nil, clusterIP: String? = nil, clusterIPs: [String]? = nil,
    ports: [ServicePort]? = [port(80, name: "http", target: .int(8080))], externalIPs: [String]? = nil,
    etp: String? = nil, itp: String? = nil, affinity: String? = nil, timeout: Int? = nil,
    ingress: [LoadBalancerIngress]? = nil, externalName: String? = nil
) -> Service {
    Service(
        metadata: ObjectMeta(name: name, namespace: ns),
        spec: ServiceSpec(
            type: type, clusterIP: clusterIP, clusterIPs: clusterIPs, ports: ports, externalIPs: externalIPs,
            externalTrafficPolicy: etp, internalTrafficPolicy: itp, sessionAffinity: affinity,
            sessionAffinityConfig: timeout.map { SessionAffinityConfig(clientIP: ClientIPConfig(timeoutSeconds: $0)) },
            externalName: externalName
        ),
        status: ingress.map { ServiceStatus(loadBalancer: LoadBalancerStatus(ingress: $0)) }
    )
}

func port(_ number: Int, name: String? = nil, proto: String? = nil, target: IntOrString? = nil, nodePort: Int? = nil) -> ServicePort {
    ServicePort(name: name, protocol: proto, port: number, targetPort: target, nodePort: nodePort)
}

func slice(
    _ name: String, service: String? = "web", ns: String? = "demo", addressType: String = "IPv4",
    ports: [EndpointPort]? = [EndpointPort(name: "http", protocol: "TCP", port: 8080)], endpoints: [Endpoint]
) -> EndpointSlice {
    EndpointSlice(
        metadata: ObjectMeta(name: name, namespace: ns, labels: service.map { [EndpointSlice.serviceNameLabel: $0] }),
        addressType: addressType, endpoints: endpoints, ports: ports
    )
}

func ep(_ address: String, node: String? = nil, ready: Bool? = nil, serving: Bool? = nil, terminating: Bool? = nil) -> Endpoint {
    let conditions = (ready == nil && serving == nil && terminating == nil)
        ? nil : EndpointConditions(ready: ready, serving: serving, terminating: terminating)
    return Endpoint(addresses: [address], conditions: conditions, nodeName: node)
}

func eport(_ number: Int?, name: String? = "http", proto: String? = "TCP") -> EndpointPort {
    EndpointPort(name: name, protocol: proto, port: number)
}

let nodeA = TranslatorOptions(nodeName: "node-a", nodeAddresses: [IPAddress("192.0.2.10")!])

/// One line per entry: `frontend type [flags] (affinity N) -> backend, backend (terminating)`.
/// Backend protocols are checked separately (`backendProtocolsMatchFrontends`).
func lines(_ state: DesiredL4State) -> [String] {
    state.entries.map { e in
        var s = "\(e.frontend) \(e.type.rawValue) [\(e.flags.names.joined(separator: ", "))]"
        if let t = e.affinityTimeoutSeconds { s += " (affinity \(t))" }
        if let p = e.l7ProxyPort { s += " (proxy \(p))" }
        s += " ->"
        if !e.backends.isEmpty {
            s += " " + e.backends.map { "\($0.address):\($0.port)" + ($0.state == .active ? "" : " (\($0.state.rawValue))") }
                .joined(separator: ", ")
        }
        return s
    }
}

/// `object field` of each warning, in order.
func warningLines(_ state: DesiredL4State) -> [String] {
    state.warnings.map { "\($0.object) \($0.field)" }
}
