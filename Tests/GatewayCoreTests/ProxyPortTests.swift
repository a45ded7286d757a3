import GatewayCore
import KubeModels
import Testing
@testable import GatewayCore
import LoadBalancer

private func key(_ gateway: String, _ port: Int) -> ProxyPortKey {
    ProxyPortKey(gateway: NamespacedName(namespace: GW.infra, name: gateway), port: port)
}

/// Gateways `names` in the infra namespace, one HTTP listener per port of `ports`, each with its
/// NodePort Service (`portway-gw-NAME`, node ports from 30000 up).
private func gateways(_ names: [String], ports: [Int] = [80]) throws -> ClusterSnapshot {
    var yaml = ""
    var nodePort = 30000
    for name in names {
        let listeners = ports.map { "{name: l\($0), port: \($0), protocol: HTTP}" }.joined(separator: ", ")
        let servicePorts = ports.map { port -> String in
            defer { nodePort += 1 }
            return "{name: p\(port), port: \(port), nodePort: \(nodePort)}"
        }.joined(separator: ", ")
        yaml += """
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: \(name), namespace: \(GW.infra)}
        spec: {gatewayClassName: portway, listeners: [\(listeners)]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: portway-gw-\(name), namespace: \(GW.infra), labels: {gateway.networking.k8s.io/gateway-name: \(name)}}
        spec: {type: NodePort, ports: [\(servicePorts)]}

        """
    }
    return try GW.load(yaml)
}

/// The plan of `snapshot` and the translated state it programs.
private func programmed(
    _ snapshot: ClusterSnapshot, range: ClosedRange<UInt16> = 10000...10003, inherited: [Frontend: UInt16] = [:]
) -> (plan: GatewayPlan, state: DesiredL4State) {
    var plan = GatewayPlan(index: ClusterIndex(snapshot), proxyPortRange: range, inherited: inherited)
    let state = plan.program(Translator.translate(snapshot, options: TranslatorOptions(nodeName: "node-a")))
    return (plan, state)
}

@Suite struct GatewayPlanProxyPortTests {
    @Test func newKeysGetTheLowestFreePortsInKeyOrder() throws {
        let (plan, _) = programmed(try gateways(["b", "a"], ports: [80, 443]))
        #expect(plan.proxyPorts == [key("a", 80): 10000, key("a", 443): 10001, key("b", 80): 10002, key("b", 443): 10003])
        #expect(plan.exhausted.isEmpty)
    }

    @Test func portsHeldInThePinsAreKeptAndNewKeysFillTheGaps() throws {
        let snapshot = try gateways(["a", "b", "c"])
        let first = programmed(snapshot)
        // The pins of a previous run gave b 10000 and c 10003 (another Gateway, since deleted, had 10001).
        var pins: [Frontend: UInt16] = [:]
        for entry in first.state.entries where entry.l7ProxyPort != nil {
            switch entry.service.name {
            case "portway-gw-b": pins[entry.frontend] = 10000
            case "portway-gw-c": pins[entry.frontend] = 10003
            default: break
            }
        }
        let (plan, _) = programmed(snapshot, inherited: pins)
        #expect(plan.proxyPorts == [key("a", 80): 10001, key("b", 80): 10000, key("c", 80): 10003])
    }

    @Test func aPortOutOfRangeOrClaimedTwiceIsReassigned() throws {
        let snapshot = try gateways(["a", "b", "c"])
        let first = programmed(snapshot)
        var pins: [Frontend: UInt16] = [:]
        for entry in first.state.entries where entry.l7ProxyPort != nil {
            switch entry.service.name {
            case "portway-gw-a": pins[entry.frontend] = 9000
            case "portway-gw-b", "portway-gw-c": pins[entry.frontend] = 10002
            default: break
            }
        }
        let (plan, _) = programmed(snapshot, inherited: pins)
        // b keeps 10002 (first in key order); a and c get the lowest free ports.
        #expect(plan.proxyPorts == [key("a", 80): 10000, key("b", 80): 10002, key("c", 80): 10001])
    }

    @Test func aFullRangeLeavesTheRestL4WithAWarning() throws {
        let (plan, state) = programmed(try gateways(["a"], ports: [1, 2, 3, 4, 5, 6]))
        #expect(plan.proxyPorts.count == 4)
        #expect(plan.exhausted == [key("a", 5), key("a", 6)])
        #expect(Set(plan.proxyPorts.values) == [10000, 10001, 10002, 10003])
        #expect(state.entries.filter { $0.service.port == 6 }.allSatisfy { !$0.flags.contains(.l7LoadBalancer) && $0.l7ProxyPort == nil })
        #expect(state.warnings.map(\.message).contains("no proxy port left in 10000-10003 for port 6; its Service's frontends stay L4"))
    }

    @Test func theTopOfThePortSpaceDoesNotOverflow() throws {
        let (plan, _) = programmed(try gateways(["a"], ports: [1, 2, 3]), range: 65534...65535)
        #expect(plan.proxyPorts == [key("a", 1): 65534, key("a", 2): 65535])
        #expect(plan.exhausted == [key("a", 3)])
    }

    @Test("each listener port takes the port most of its frontends held; a frontend that moved to another Service does not steal it")
    func majorityWins() throws {
        // Gateways a, b and c (one listener each); the pins of a previous run: a's frontends held
        // 10003 — and so did c's NodePort surrogate, reused from a Service of a's since deleted — b's 10002.
        let snapshot = try gateways(["a", "b", "c"])
        let first = programmed(snapshot)
        var pins: [Frontend: UInt16] = [:]
        for entry in first.state.entries where entry.l7ProxyPort != nil {
            switch entry.service.name {
            case "portway-gw-a": pins[entry.frontend] = 10003
            case "portway-gw-b": pins[entry.frontend] = 10002
            case "portway-gw-c" where entry.frontend.address.description == "0.0.0.0": pins[entry.frontend] = 10003
            default: break
            }
        }
        let (plan, state) = programmed(snapshot, inherited: pins)
        #expect(plan.proxyPorts == [key("a", 80): 10003, key("b", 80): 10002, key("c", 80): 10000])
        #expect(state.entries.filter { $0.service.name == "portway-gw-a" }.allSatisfy { $0.l7ProxyPort == 10003 })
    }

    @Test func anInheritedPortOutsideTheRangeIsNotKept() throws {
        let snapshot = try gateways(["a"])
        let first = programmed(snapshot)
        let pins = Dictionary(uniqueKeysWithValues: first.state.entries.filter { $0.l7ProxyPort != nil }.map { ($0.frontend, UInt16(20005)) })
        #expect(programmed(snapshot, inherited: pins).plan.proxyPorts == [key("a", 80): 10000])
    }

    @Test func aKeyThatGoesGivesItsPortBack() throws {
        var plan = GatewayPlan(index: ClusterIndex(try gateways(["a", "b"])), proxyPortRange: 10000...10003)
        let index = ClusterIndex(try gateways(["a", "b"]))
        _ = plan.program(Translator.translate(index.snapshot, options: TranslatorOptions(nodeName: "n")))
        #expect(plan.proxyPorts == [key("a", 80): 10000, key("b", 80): 10001])
        let smaller = ClusterIndex(try gateways(["b", "c"]))
        plan.rebuild(.all, index: smaller)
        #expect(plan.proxyPorts == [key("b", 80): 10001], "a's port is released, b keeps its own")
        _ = plan.program(Translator.translate(smaller.snapshot, options: TranslatorOptions(nodeName: "n")))
        #expect(plan.proxyPorts == [key("b", 80): 10001, key("c", 80): 10000])
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
        var plan = GatewayPlan(index: ClusterIndex(snapshot))
        let web = NamespacedName(namespace: GW.infra, name: "web")
        #expect(plan.frontends == [
            ServicePortKey(service: NamespacedName(namespace: GW.infra, name: "portway-gw-web"), port: 80): ProxyPortKey(gateway: web, port: 80),
            ServicePortKey(service: NamespacedName(namespace: GW.infra, name: "portway-gw-web"), port: 8080): ProxyPortKey(gateway: web, port: 8080),
        ])
        let l4 = Translator.translate(snapshot, options: TranslatorOptions(nodeName: "node-a", nodeAddresses: [IPAddress("192.0.2.10")!]))
        let marked = plan.program(l4)
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
        let l4 = Translator.translate(snapshot, options: TranslatorOptions(nodeName: "node-a"))
        // The previous run had given the ports in the other order (e.g. another Gateway was deleted since).
        var pins: [Frontend: UInt16] = [:]
        for entry in l4.entries where entry.service.name == "portway-gw-web" { pins[entry.frontend] = entry.service.port == 80 ? 10005 : 10002 }
        var plan = GatewayPlan(index: ClusterIndex(snapshot), inherited: pins)
        let programmed = plan.program(l4)
        let web = NamespacedName(namespace: GW.infra, name: "web")
        #expect(plan.proxyPorts == [ProxyPortKey(gateway: web, port: 80): 10005, ProxyPortKey(gateway: web, port: 8080): 10002])
        #expect(programmed.entries.filter { $0.service.name == "portway-gw-web" }.allSatisfy { $0.l7ProxyPort == pins[$0.frontend] })
    }

    @Test func anExhaustedRangeLeavesFrontendsL4WithAWarning() throws {
        let snapshot = try GW.load(yaml)
        var plan = GatewayPlan(index: ClusterIndex(snapshot), proxyPortRange: 10000...10000)
        let l4 = Translator.translate(snapshot, options: TranslatorOptions(nodeName: "node-a"))
        let marked = plan.program(l4)
        #expect(marked.entries.filter { $0.l7ProxyPort != nil }.map(\.frontend.description) == ["0.0.0.0:30080/TCP", "10.96.100.1:80/TCP", "203.0.113.10:80/TCP"])
        #expect(marked.warnings.map(\.message) == ["no proxy port left in 10000-10000 for port 8080; its Service's frontends stay L4"])
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
        spec: {type: NodePort, clusterIP: 10.96.100.1, ports: [{name: http, port: 80, nodePort: 30080}, {name: bad, port: 81, nodePort: 30081}]}

        """)
        var plan = GatewayPlan(index: ClusterIndex(snapshot))
        _ = plan.program(Translator.translate(snapshot, options: TranslatorOptions(nodeName: "n")))
        #expect(plan.proxyPorts.count == 2)
        let served = plan.routeTables
        // Port 81's only listener is not programmed: its proxy port serves nothing.
        #expect(served.mapValues(\.port) == [10000: 80])
    }
}
