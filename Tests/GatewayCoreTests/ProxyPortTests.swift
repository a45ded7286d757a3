import GatewayCore
import KubeModels
import Testing
@testable import GatewayCore
import LoadBalancer

private func key(_ gateway: String, _ port: Int) -> ProxyPortKey {
    ProxyPortKey(gateway: NamespacedName(namespace: "ns", name: gateway), port: port)
}

@Suite struct ProxyPortAllocatorTests {
    private let allocator = ProxyPortAllocator(range: 10000...10003)

    @Test func newKeysGetTheLowestFreePortsInKeyOrder() {
        let result = allocator.allocate(wanted: [key("b", 80), key("a", 443), key("a", 80)], previous: [:])
        #expect(result.ports == [key("a", 80): 10000, key("a", 443): 10001, key("b", 80): 10002])
        #expect(result.exhausted == [])
    }

    @Test func previousAssignmentsAreKeptAndNewKeysFillTheGaps() {
        let previous: [ProxyPortKey: UInt16] = [key("b", 80): 10000, key("gone", 80): 10001, key("c", 80): 10003]
        let result = allocator.allocate(wanted: [key("a", 80), key("b", 80), key("c", 80)], previous: previous)
        #expect(result.ports == [key("a", 80): 10001, key("b", 80): 10000, key("c", 80): 10003])
    }

    @Test func outOfRangeOrDuplicatePreviousPortsAreReassigned() {
        let previous: [ProxyPortKey: UInt16] = [key("a", 80): 9000, key("b", 80): 10002, key("c", 80): 10002]
        let result = allocator.allocate(wanted: [key("a", 80), key("b", 80), key("c", 80)], previous: previous)
        // b keeps 10002 (first in key order); a and c get the lowest free ports.
        #expect(result.ports == [key("a", 80): 10000, key("b", 80): 10002, key("c", 80): 10001])
    }

    @Test func aFullRangeReportsWhatIsLeftOver() {
        let wanted: Set = [key("a", 1), key("a", 2), key("a", 3), key("a", 4), key("a", 5), key("a", 6)]
        let result = allocator.allocate(wanted: wanted, previous: [key("a", 6): 10003])
        #expect(result.ports.count == 4)
        #expect(result.ports[key("a", 6)] == 10003)
        #expect(result.exhausted == [key("a", 4), key("a", 5)])
        #expect(Set(result.ports.values) == [10000, 10001, 10002, 10003])
    }

    @Test func theTopOfThePortSpaceDoesNotOverflow() {
        let top = ProxyPortAllocator(range: 65534...65535)
        let result = top.allocate(wanted: [key("a", 1), key("a", 2), key("a", 3)], previous: [:])
        #expect(result.ports == [key("a", 1): 65534, key("a", 2): 65535])
        #expect(result.exhausted == [key("a", 3)])
    }
}

@Suite struct GatewayFrontendMarkingTests {
    /// A Portway Gateway and another controller's, each with a NodePort/LoadBalancer Service labelled with its name.
    private let yaml = """
    ---
    apiVersion: gateway.networking.k8s.io/v1
    kind: Gateway
    metadata: {name: web, namespace: \(GW.infra)}
    spec: {gatewayClassName: portway, listeners: [{name: http, port: 80, protocol: HTTP}, {name: alt, port: 8080, protocol: HTTP}]}
    ---
    apiVersion: gateway.networking.k8s.io/v1
    kind: Gateway
    metadata: {name: foreign, namespace: \(GW.infra)}
    spec: {gatewayClassName: other, listeners: [{name: http, port: 80, protocol: HTTP}]}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: portway-gw-web, namespace: \(GW.infra), labels: {gateway.networking.k8s.io/gateway-name: web}}
    spec:
      type: LoadBalancer
      clusterIP: 10.96.100.1
      ports: [{name: http, port: 80, nodePort: 30080}, {name: alt, port: 8080, nodePort: 30081}]
    status: {loadBalancer: {ingress: [{ip: 203.0.113.10}]}}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: foreign-svc, namespace: \(GW.infra), labels: {gateway.networking.k8s.io/gateway-name: foreign}}
    spec: {type: NodePort, clusterIP: 10.96.100.2, ports: [{port: 80, nodePort: 30090}]}

    """

    @Test func everyFrontendOfAPortwayGatewayServiceBecomesL7LB() throws {
        let snapshot = try GW.load(yaml)
        let gateways = GatewayState.build(snapshot)
        let keys = GatewayFrontends.keys(snapshot, ownedGateways: gateways.ownedGateways)
        let web = NamespacedName(namespace: GW.infra, name: "web")
        #expect(keys == [
            ServicePortKey(service: NamespacedName(namespace: GW.infra, name: "portway-gw-web"), port: 80): ProxyPortKey(gateway: web, port: 80),
            ServicePortKey(service: NamespacedName(namespace: GW.infra, name: "portway-gw-web"), port: 8080): ProxyPortKey(gateway: web, port: 8080),
        ])
        let allocation = ProxyPortAllocator().allocate(wanted: Set(keys.values), previous: [:])
        let l4 = Translator.translate(snapshot, options: TranslatorOptions(nodeName: "node-a", nodeAddresses: [IPAddress("192.0.2.10")!]))
        let marked = GatewayFrontends.markL7(l4, keys: keys, allocation: allocation)
        let lines = marked.entries.map { e in
            "\(e.frontend) \(e.service.name) \(e.flags.contains(.l7LoadBalancer) ? "l7:\(e.l7ProxyPort!)" : "l4") backends=\(e.backends.count)"
        }
        #expect(lines.filter { $0.contains("portway-gw-web") } == [
            "0.0.0.0:30080/TCP portway-gw-web l7:10000 backends=0",
            "0.0.0.0:30081/TCP portway-gw-web l7:10001 backends=0",
            "10.96.100.1:80/TCP portway-gw-web l7:10000 backends=0",
            "10.96.100.1:8080/TCP portway-gw-web l7:10001 backends=0",
            "192.0.2.10:30080/TCP portway-gw-web l7:10000 backends=0",
            "192.0.2.10:30081/TCP portway-gw-web l7:10001 backends=0",
            "203.0.113.10:80/TCP portway-gw-web l7:10000 backends=0",
            "203.0.113.10:8080/TCP portway-gw-web l7:10001 backends=0",
        ])
        // Another controller's Gateway stays L4.
        #expect(lines.filter { $0.contains("foreign-svc") }.allSatisfy { $0.contains(" l4 ") })
        #expect(marked.warnings == l4.warnings)
    }

    @Test func portsSurviveARestartThroughTheMaps() throws {
        let snapshot = try GW.load(yaml)
        let keys = GatewayFrontends.keys(snapshot, ownedGateways: GatewayState.build(snapshot).ownedGateways)
        let l4 = Translator.translate(snapshot, options: TranslatorOptions(nodeName: "node-a"))
        // The previous run had given the ports in the other order (e.g. another Gateway was deleted since).
        let web = NamespacedName(namespace: GW.infra, name: "web")
        let before = ProxyPortAllocation(ports: [ProxyPortKey(gateway: web, port: 80): 10005, ProxyPortKey(gateway: web, port: 8080): 10002])
        let programmed = GatewayFrontends.markL7(l4, keys: keys, allocation: before).entries
        let previous = GatewayFrontends.previousAssignment(programmed: programmed, desired: l4, keys: keys)
        #expect(previous == before.ports)
        let after = ProxyPortAllocator().allocate(wanted: Set(keys.values), previous: previous)
        #expect(after.ports == before.ports)
    }

    @Test func anExhaustedRangeLeavesFrontendsL4WithAWarning() throws {
        let snapshot = try GW.load(yaml)
        let keys = GatewayFrontends.keys(snapshot, ownedGateways: GatewayState.build(snapshot).ownedGateways)
        let allocation = ProxyPortAllocator(range: 10000...10000).allocate(wanted: Set(keys.values), previous: [:])
        let l4 = Translator.translate(snapshot, options: TranslatorOptions(nodeName: "node-a"))
        let marked = GatewayFrontends.markL7(l4, keys: keys, allocation: allocation)
        #expect(marked.entries.filter { $0.l7ProxyPort != nil }.map(\.frontend.description) == ["0.0.0.0:30080/TCP", "10.96.100.1:80/TCP", "203.0.113.10:80/TCP"])
        #expect(marked.warnings.map(\.message) == ["no proxy port left for Gateway gateway-conformance-infra/web:8080; its frontends stay L4"])
    }
}

@Suite struct ProxyPortTablesTests {
    @Test func theProxyServesEachAllocatedPortWithItsTable() throws {
        let snapshot = try GW.load("""
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: web, namespace: \(GW.infra)}
        spec: {gatewayClassName: portway, listeners: [{name: http, port: 80, protocol: HTTP}, {name: bad, port: 81, protocol: TCP}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: portway-gw-web, namespace: \(GW.infra), labels: {gateway.networking.k8s.io/gateway-name: web}}
        spec: {type: NodePort, clusterIP: 10.96.100.1, ports: [{port: 80, nodePort: 30080}, {port: 81, nodePort: 30081}]}

        """)
        let state = GatewayState.build(snapshot)
        let keys = GatewayFrontends.keys(snapshot, ownedGateways: state.ownedGateways)
        let allocation = ProxyPortAllocator().allocate(wanted: Set(keys.values), previous: [:])
        #expect(allocation.ports.count == 2)
        let served = state.tablesByProxyPort(allocation)
        // Port 81's only listener is not programmed: its proxy port serves nothing.
        #expect(served.mapValues(\.port) == [10000: 80])
    }
}
