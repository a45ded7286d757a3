import Foundation
import KubeModels
import Testing
@testable import LoadBalancer

private func labelled(_ s: Service, _ labels: [String: String]) -> Service {
    var s = s
    s.metadata.labels = labels
    return s
}

private let oneEndpoint = slice("web-1", endpoints: [ep("10.244.1.10", node: "node-a", ready: true)])
private let nodePortWeb = service("web", type: "NodePort", clusterIP: "10.96.0.10", ports: [port(80, name: "http", target: .int(8080), nodePort: 30080)])
private let webFrontends = [
    "0.0.0.0:30080/TCP NodePort [NodePort, non-routable] -> 10.244.1.10:8080",
    "10.96.0.10:80/TCP ClusterIP [ClusterIP, non-routable] -> 10.244.1.10:8080",
    "192.0.2.10:30080/TCP NodePort [NodePort] -> 10.244.1.10:8080",
]
private func loadBalancer(_ ingress: [LoadBalancerIngress]) -> Service {
    service("web", type: "LoadBalancer", clusterIP: "10.96.0.10", ingress: ingress)
}

/// kube-proxy's rules: other proxies' Services and Proxy-mode load-balancer addresses get no frontends.
private let proxyRuleCases: [TranslationCase] = [
    TranslationCase(
        name: "service-proxy-name (any value, even empty): not Portway's, no frontends",
        snapshot: ClusterSnapshot(
            services: [
                labelled(nodePortWeb, [KubeProxyRules.serviceProxyNameLabel: "other-proxy"]),
                labelled(service("api", clusterIP: "10.96.0.11"), [KubeProxyRules.serviceProxyNameLabel: ""]),
            ],
            endpointSlices: [oneEndpoint]),
        expected: []
    ),
    TranslationCase(
        name: "service.kubernetes.io/headless (any value): no frontends",
        snapshot: ClusterSnapshot(services: [labelled(nodePortWeb, [KubeProxyRules.headlessLabel: ""])], endpointSlices: [oneEndpoint]),
        expected: []
    ),
    TranslationCase(
        name: "other labels (and a look-alike key) change nothing",
        snapshot: ClusterSnapshot(
            services: [labelled(nodePortWeb, ["app": "web", "service.kubernetes.io/service-proxy": "x", "example.com/headless": "true"])],
            endpointSlices: [oneEndpoint]),
        expected: webFrontends
    ),
    TranslationCase(
        name: "one labelled Service does not affect its neighbour",
        snapshot: ClusterSnapshot(
            services: [nodePortWeb, labelled(service("other", clusterIP: "10.96.0.12"), [KubeProxyRules.serviceProxyNameLabel: "x"])],
            endpointSlices: [oneEndpoint]),
        expected: webFrontends
    ),
    TranslationCase(
        name: "ipMode: VIP and absent get a LoadBalancer frontend, Proxy does not",
        snapshot: ClusterSnapshot(
            services: [loadBalancer([
                LoadBalancerIngress(ip: "203.0.113.5", ipMode: "VIP"), LoadBalancerIngress(ip: "203.0.113.6", ipMode: "Proxy"),
                LoadBalancerIngress(ip: "203.0.113.7"),
            ])],
            endpointSlices: [oneEndpoint]),
        expected: [
            "10.96.0.10:80/TCP ClusterIP [ClusterIP, non-routable] -> 10.244.1.10:8080",
            "203.0.113.5:80/TCP LoadBalancer [LoadBalancer] -> 10.244.1.10:8080",
            "203.0.113.7:80/TCP LoadBalancer [LoadBalancer] -> 10.244.1.10:8080",
        ]
    ),
    TranslationCase(
        name: "ipMode Proxy only: the ClusterIP stays, no LoadBalancer frontend",
        snapshot: ClusterSnapshot(services: [loadBalancer([LoadBalancerIngress(ip: "203.0.113.6", ipMode: "Proxy")])], endpointSlices: [oneEndpoint]),
        expected: ["10.96.0.10:80/TCP ClusterIP [ClusterIP, non-routable] -> 10.244.1.10:8080"]
    ),
    TranslationCase(
        name: "unknown ipMode: not served, with a warning (ipMode is case-sensitive)",
        snapshot: ClusterSnapshot(
            services: [loadBalancer([LoadBalancerIngress(ip: "203.0.113.5", ipMode: "vip"), LoadBalancerIngress(ip: "203.0.113.7")])],
            endpointSlices: [oneEndpoint]),
        expected: [
            "10.96.0.10:80/TCP ClusterIP [ClusterIP, non-routable] -> 10.244.1.10:8080",
            "203.0.113.7:80/TCP LoadBalancer [LoadBalancer] -> 10.244.1.10:8080",
        ],
        warnings: ["Service demo/web status.loadBalancer.ingress[0].ipMode"]
    ),
]

@Suite struct KubeProxyRulesTests {
    @Test(arguments: proxyRuleCases)
    func rule(_ c: TranslationCase) {
        let state = Translator.translate(c.snapshot, options: c.options)
        #expect(lines(state) == c.expected)
        #expect(warningLines(state) == c.warnings)
    }

    @Test func selectorIsKubeProxys() {
        #expect(KubeProxyRules.serviceLabelSelector == "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless")
    }

    @Test(arguments: [
        (nil, KubeProxyRules.IngressMode.vip), ("VIP", .vip), ("Proxy", .proxy), ("proxy", .unknown("proxy")), ("", .unknown("")),
    ] as [(String?, KubeProxyRules.IngressMode)])
    func ingressModes(_ mode: String?, _ expected: KubeProxyRules.IngressMode) {
        #expect(KubeProxyRules.ingressMode(LoadBalancerIngress(ip: "203.0.113.5", ipMode: mode)) == expected)
    }

    @Test func ipModeDecodesFromJSON() throws {
        let json = #"{"ingress":[{"ip":"203.0.113.6","ipMode":"Proxy"},{"ip":"203.0.113.5"}]}"#
        let status = try JSONDecoder().decode(LoadBalancerStatus.self, from: Data(json.utf8))
        #expect(status.ingress?.map(\.ipMode) == ["Proxy", nil])
    }
}
