import KubeModels

// Compact builders of the Kubernetes objects tests feed to the translator, the agent and the API
// servers: every field the code under test reads, defaults elsewhere. Namespace `demo` unless told.

/// A Service: by default port 80 named `http` to target 8080, no type (ClusterIP), no protocol (TCP).
/// `port` and `nodePort` set the number and node port of every port in `ports`; a `nodePort`
/// makes the type NodePort unless `type` says otherwise. `ports: nil` is a Service without ports.
public func service(
    _ name: String, ns: String? = "demo", type: String? = nil, clusterIP: String? = nil, clusterIPs: [String]? = nil,
    port number: Int? = nil, nodePort: Int? = nil, ports: [ServicePort]? = [port(80, name: "http", target: .int(8080))],
    labels: [String: String]? = nil, externalIPs: [String]? = nil, etp: String? = nil, itp: String? = nil, affinity: String? = nil,
    timeout: Int? = nil, ingress: [LoadBalancerIngress]? = nil, externalName: String? = nil
) -> Service {
    let ports = ports?.map { p -> ServicePort in
        var p = p
        if let number { p.port = number }
        if let nodePort { p.nodePort = nodePort }
        return p
    }
    return Service(
        metadata: ObjectMeta(name: name, namespace: ns, labels: labels),
        spec: ServiceSpec(
            type: type ?? (nodePort == nil ? nil : "NodePort"), clusterIP: clusterIP, clusterIPs: clusterIPs, ports: ports,
            externalIPs: externalIPs, externalTrafficPolicy: etp, internalTrafficPolicy: itp, sessionAffinity: affinity,
            sessionAffinityConfig: timeout.map { SessionAffinityConfig(clientIP: ClientIPConfig(timeoutSeconds: $0)) },
            externalName: externalName
        ),
        status: ingress.map { ServiceStatus(loadBalancer: LoadBalancerStatus(ingress: $0)) }
    )
}

/// A Service port.
public func port(_ number: Int, name: String? = nil, proto: String? = nil, target: IntOrString? = nil, nodePort: Int? = nil) -> ServicePort {
    ServicePort(name: name, protocol: proto, port: number, targetPort: target, nodePort: nodePort)
}

/// An EndpointSlice of Service `service` (nil: no service-name label), by default port `http` 8080/TCP.
public func slice(
    _ name: String, service: String? = "web", ns: String? = "demo", addressType: String = "IPv4",
    ports: [EndpointPort]? = [EndpointPort(name: "http", protocol: "TCP", port: 8080)], endpoints: [Endpoint]
) -> EndpointSlice {
    EndpointSlice(
        metadata: ObjectMeta(name: name, namespace: ns, labels: service.map { [EndpointSlice.serviceNameLabel: $0] }),
        addressType: addressType, endpoints: endpoints, ports: ports
    )
}

/// An EndpointSlice of Service `service` with one ready endpoint per address (port `http` 8080/TCP).
public func slice(_ name: String, service: String, ns: String? = "demo", addresses: [String]) -> EndpointSlice {
    slice(name, service: service, ns: ns, endpoints: addresses.map { ep($0, ready: true, serving: true, terminating: false) })
}

/// An endpoint; conditions are left out unless one is given.
public func ep(_ address: String, node: String? = nil, ready: Bool? = nil, serving: Bool? = nil, terminating: Bool? = nil) -> Endpoint {
    let conditions = (ready == nil && serving == nil && terminating == nil)
        ? nil : EndpointConditions(ready: ready, serving: serving, terminating: terminating)
    return Endpoint(addresses: [address], conditions: conditions, nodeName: node)
}

/// An EndpointSlice port.
public func eport(_ number: Int?, name: String? = "http", proto: String? = "TCP") -> EndpointPort {
    EndpointPort(name: name, protocol: proto, port: number)
}

/// A Node with `internalIP` (when given) followed by `addresses`.
public func node(_ name: String, internalIP: String? = nil, addresses: [NodeAddress] = []) -> Node {
    Node(metadata: ObjectMeta(name: name), status: NodeStatus(addresses: internalIP.map { [NodeAddress(type: "InternalIP", address: $0)] + addresses } ?? addresses))
}
