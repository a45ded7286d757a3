import LoadBalancer
import KubeModels

/// The Service the leader keeps for each of Portway's Gateways (pure: what it should look like;
/// creating, updating and deleting it is the leader's writer's job). Its frontends are what every
/// node marks L7LB (`GatewayPlan.program`).
public enum GatewayServices {
    public static let namePrefix = "portway-gw-"
    /// Gateway annotation choosing the Service type: `NodePort` (the default) or `LoadBalancer`.
    public static let serviceTypeAnnotation = "portway.io/service-type"
    /// Service annotations recording which label and annotation keys came from the Gateway's
    /// `spec.infrastructure` (comma-separated; keys cannot hold commas), so that a key removed
    /// there is removed from the Service too, and keys others put on the Service stay.
    public static let propagatedLabelsAnnotation = "portway.io/infrastructure-labels"
    public static let propagatedAnnotationsAnnotation = "portway.io/infrastructure-annotations"
    /// Longest Service name the API accepts (a DNS-1035 label).
    public static let maxNameLength = 63

    /// `portway-gw-<gateway>`; when that exceeds 63 characters, its first 54 characters (without
    /// a trailing `-`), a `-` and 8 hex digits of a hash of the full name, so that two long names
    /// never collide by truncation and the result is the same on every agent and every run.
    public static func serviceName(gateway: String) -> String {
        let full = namePrefix + gateway
        guard full.count > maxNameLength else { return full }
        var head = String(full.prefix(maxNameLength - 9))
        while head.hasSuffix("-") { head.removeLast() }
        let hash = fnv1a64(full)
        let hex = String(hash >> 32, radix: 16)
        return head + "-" + String(repeating: "0", count: 8 - hex.count) + hex
    }

    /// The Service for `gateway`: in its namespace, labelled with its name, owned by it (deleted
    /// with it), one TCP port per distinct listener port (named `port-<n>`), no selector (its
    /// frontends go to the proxy, never to endpoints). `defaultType` applies unless the Gateway's
    /// `portway.io/service-type` annotation says `NodePort` or `LoadBalancer`. `extraPorts`: the
    /// ports of the listeners its ListenerSets add (`GatewayState.listenerSetPorts`).
    ///
    /// GatewayInfrastructurePropagation: the Gateway's `spec.infrastructure.labels` and
    /// `.annotations` are the Service's too; the `gateway.networking.k8s.io/gateway-name` label
    /// stays the Gateway's name whatever `labels` says (the leader and the nodes find the Service by it).
    public static func desiredService(for gateway: Gateway, defaultType: String = "NodePort", extraPorts: [Int] = []) -> Service {
        let namespace = GatewayBuild.namespace(gateway.metadata)
        let requested = gateway.metadata.annotations?[serviceTypeAnnotation]
        let type = ["NodePort", "LoadBalancer"].contains(requested ?? "") ? requested! : defaultType
        let ports = Set((gateway.spec.listeners.map(\.port) + extraPorts).filter { (1...65535).contains($0) }).sorted()
        var labels = gateway.spec.infrastructure?.labels ?? [:]
        labels[GatewayAPI.gatewayNameLabel] = gateway.metadata.name
        var annotations = gateway.spec.infrastructure?.annotations ?? [:]
        let propagatedLabels = labels.keys.filter { $0 != GatewayAPI.gatewayNameLabel }.sorted()
        let propagatedAnnotations = annotations.keys.sorted()
        if !propagatedLabels.isEmpty { annotations[propagatedLabelsAnnotation] = propagatedLabels.joined(separator: ",") }
        if !propagatedAnnotations.isEmpty { annotations[propagatedAnnotationsAnnotation] = propagatedAnnotations.joined(separator: ",") }
        return Service(
            metadata: ObjectMeta(
                name: serviceName(gateway: gateway.metadata.name), namespace: namespace,
                labels: labels, annotations: annotations.isEmpty ? nil : annotations,
                ownerReferences: [OwnerReference(
                    apiVersion: Gateway.resource.apiVersion, kind: "Gateway", name: gateway.metadata.name,
                    uid: gateway.metadata.uid ?? "", controller: true, blockOwnerDeletion: true
                )]
            ),
            spec: ServiceSpec(type: type, ports: ports.map { ServicePort(name: "port-\($0)", protocol: "TCP", port: $0) })
        )
    }

    /// FNV-1a, 64 bits: small, stable across runs and platforms (Swift's Hasher is seeded per process).
    static func fnv1a64(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return hash
    }
}
