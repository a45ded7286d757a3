import Foundation
import LoadBalancer
import Testing
@testable import FileSource
import Views

/// The file source follows kube-proxy's rules as the watch does: the same YAML gives no frontends
/// for another proxy's or a headless-labelled Service, nor for an `ipMode: Proxy` ingress address.
@Suite struct KubeProxyRulesFileTests {
    @Test func labelledServicesAndProxyModeIngressGetNoFrontends() throws {
        try withTemporaryDirectory { dir in
            try write("""
            apiVersion: v1
            kind: Service
            metadata: {name: mine, namespace: demo}
            spec: {type: NodePort, clusterIP: 10.96.0.10, ports: [{port: 80, nodePort: 30080}]}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: theirs, namespace: demo, labels: {service.kubernetes.io/service-proxy-name: other}}
            spec: {type: NodePort, clusterIP: 10.96.0.11, ports: [{port: 80, nodePort: 30081}]}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: dns-only, namespace: demo, labels: {service.kubernetes.io/headless: ""}}
            spec: {clusterIP: 10.96.0.12, ports: [{port: 53, protocol: UDP}]}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: lb, namespace: demo}
            spec: {type: LoadBalancer, clusterIP: 10.96.0.13, ports: [{port: 443}]}
            status: {loadBalancer: {ingress: [{ip: 203.0.113.5, ipMode: Proxy}, {ip: 203.0.113.6, ipMode: VIP}, {ip: 203.0.113.7}]}}
            """, to: "objs.yaml", in: dir)
            let output = try Command.translate(TranslateRequest(directory: dir, nodeName: "node-a", nodeIPs: ["192.0.2.10"]))
            #expect(output.state.entries.map(\.frontend.description) == [
                "0.0.0.0:30080/TCP", "10.96.0.10:80/TCP", "10.96.0.13:443/TCP", "192.0.2.10:30080/TCP",
                "203.0.113.6:443/TCP", "203.0.113.7:443/TCP",
            ])
            #expect(output.state.warnings.isEmpty)
        }
    }
}
