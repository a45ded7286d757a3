import GatewayCore
import KubeModels
import Testing
@testable import GatewayCore
import LoadBalancer

@Suite struct GatewayServicesTests {
    private func gateway(_ name: String, annotations: [String: String]? = nil, ports: [Int] = [80, 443, 80, 8080]) -> Gateway {
        Gateway(
            metadata: ObjectMeta(name: name, namespace: "shop", uid: "uid-1", annotations: annotations),
            spec: GatewaySpec(gatewayClassName: "portway", listeners: ports.enumerated().map { Listener(name: "l\($0)", port: $1, protocol: "HTTP") })
        )
    }

    @Test func shortNamesArePrefixed() {
        #expect(GatewayServices.serviceName(gateway: "public") == "portway-gw-public")
        let exact = String(repeating: "a", count: 52)  // 11 + 52 = 63
        #expect(GatewayServices.serviceName(gateway: exact) == "portway-gw-" + exact)
    }

    @Test func longNamesAreShortenedStablyWithoutCollisions() {
        let long1 = String(repeating: "a", count: 60) + "-one"
        let long2 = String(repeating: "a", count: 60) + "-two"
        let name1 = GatewayServices.serviceName(gateway: long1)
        let name2 = GatewayServices.serviceName(gateway: long2)
        #expect(name1.count == 63 && name2.count == 63)
        #expect(name1 != name2)
        #expect(name1 == GatewayServices.serviceName(gateway: long1))
        #expect(name1.hasPrefix("portway-gw-aaaa"))
        // A cut that ends in "-" does not leave "--".
        let dashed = GatewayServices.serviceName(gateway: String(repeating: "b", count: 42) + "-" + String(repeating: "c", count: 30))
        #expect(!dashed.contains("--"))
        #expect(dashed.count <= 63)
        #expect(GatewayServices.fnv1a64("") == 0xcbf2_9ce4_8422_2325)
        #expect(GatewayServices.fnv1a64("a") == 0xaf63_dc4c_8601_ec8c)  // the published FNV-1a test vector
    }

    @Test func theServiceIsOwnedLabelledAndHasOnePortPerListenerPort() {
        let service = GatewayServices.desiredService(for: gateway("public"))
        #expect(service.metadata.name == "portway-gw-public")
        #expect(service.metadata.namespace == "shop")
        #expect(service.metadata.labels == [GatewayAPI.gatewayNameLabel: "public"])
        #expect(service.metadata.ownerReferences == [OwnerReference(apiVersion: "gateway.networking.k8s.io/v1", kind: "Gateway", name: "public", uid: "uid-1", controller: true, blockOwnerDeletion: true)])
        #expect(service.spec.type == "NodePort")
        #expect(service.spec.selector == nil)
        #expect(service.spec.ports == [80, 443, 8080].map { ServicePort(name: "port-\($0)", protocol: "TCP", port: $0) })
    }

    /// GatewayInfrastructurePropagation: `spec.infrastructure` labels and annotations on the Service,
    /// recorded so that the leader can remove them later; the gateway-name label stays the Gateway's.
    @Test func infrastructureLabelsAndAnnotationsArePropagatedAndRecorded() {
        var gw = gateway("public", annotations: ["portway.io/service-type": "LoadBalancer"])
        gw.spec.infrastructure = GatewayInfrastructure(
            labels: ["key2": "value2", "a": "b", GatewayAPI.gatewayNameLabel: "someone-else"], annotations: ["key1": "value1"])
        let service = GatewayServices.desiredService(for: gw)
        #expect(service.metadata.labels == [GatewayAPI.gatewayNameLabel: "public", "key2": "value2", "a": "b"])
        #expect(service.metadata.annotations == [
            "key1": "value1", GatewayServices.propagatedLabelsAnnotation: "a,key2", GatewayServices.propagatedAnnotationsAnnotation: "key1",
        ])
        // The Gateway's own annotations are not its infrastructure's.
        #expect(service.spec.type == "LoadBalancer")
        #expect(GatewayServices.desiredService(for: gateway("plain")).metadata.annotations == nil)
    }

    @Test func theTypeComesFromTheAnnotationOrTheDefault() {
        #expect(GatewayServices.desiredService(for: gateway("g", annotations: ["portway.io/service-type": "LoadBalancer"])).spec.type == "LoadBalancer")
        #expect(GatewayServices.desiredService(for: gateway("g", annotations: ["portway.io/service-type": "ClusterIP"])).spec.type == "NodePort")
        #expect(GatewayServices.desiredService(for: gateway("g"), defaultType: "LoadBalancer").spec.type == "LoadBalancer")
    }

    @Test func theDesiredServiceIsMarkedL7ByEveryNode() {
        let gw = gateway("public")
        var service = GatewayServices.desiredService(for: gw)
        service.spec.clusterIP = "10.96.0.50"
        service.spec.ports = service.spec.ports?.enumerated().map { i, p in var p = p; p.nodePort = 30100 + i; return p }
        let snapshot = ClusterSnapshot(
            services: [service],
            gatewayClasses: [GatewayClass(metadata: ObjectMeta(name: "portway"), spec: GatewayClassSpec(controllerName: GatewayOptions.defaultControllerName))],
            gateways: [gw]
        )
        var plan = GatewayPlan(index: ClusterIndex(snapshot))
        let marked = plan.program(Translator.translate(snapshot, options: TranslatorOptions(nodeName: "n")))
        #expect(marked.entries.count == 6)  // ClusterIP and 0.0.0.0 NodePort for each of 3 ports
        #expect(marked.entries.allSatisfy { $0.flags.contains(.l7LoadBalancer) && $0.backends.isEmpty })
        #expect(Set(marked.entries.compactMap(\.l7ProxyPort)) == [10000, 10001, 10002])
    }
}
