import KubeModels
import PortwayTestSupport
import Testing
@testable import LoadBalancer

/// Random cluster changes over a small name space, so that objects collide: two Services claim one
/// frontend, slices move between Services, node addresses come and go.
struct ChangeGenerator {
    var rng: SeededRandom
    let names = ["a", "b", "c", "d", "e"]
    let namespaces = ["demo", "prod"]
    /// The cluster as the generator has built it: the truth a from-scratch translation reads.
    var services: [ObjectKey: Service] = [:]
    var slices: [ObjectKey: EndpointSlice] = [:]
    var endpoints: [ObjectKey: Endpoints] = [:]
    var nodes: [String: Node] = [:]

    init(seed: UInt64) { rng = SeededRandom(seed: seed) }

    var snapshot: ClusterSnapshot {
        ClusterSnapshot(
            services: Array(services.values), endpointSlices: Array(slices.values),
            endpoints: Array(endpoints.values), nodes: Array(nodes.values))
    }

    mutating func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &rng)] }
    mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &rng) < percent }

    mutating func randomService(_ key: ObjectKey) -> Service {
        let type = pick(["ClusterIP", "NodePort", "LoadBalancer", "ExternalName", "Bogus", "ClusterIP"])
        // Few addresses and ports, so that different Services often claim the same frontend.
        let clusterIP = chance(10) ? "None" : "10.96.0.\(Int.random(in: 1...4, using: &rng))"
        var ports: [ServicePort] = []
        for i in 0..<Int.random(in: 0...2, using: &rng) {
            let nodePort = type == "ClusterIP" ? nil : (chance(80) ? 30000 + Int.random(in: 0...2, using: &rng) : (chance(50) ? 0 : 99999))
            ports.append(port(pick([80, 443, 0]), name: i == 0 ? "http" : pick(["https", "http"]), proto: pick([nil, "TCP", "UDP", "XYZ"]), nodePort: nodePort))
        }
        return service(
            key.name, ns: key.namespace, type: type, clusterIP: clusterIP, ports: ports,
            externalIPs: chance(30) ? [pick(["198.51.100.1", "198.51.100.2", "bad"])] : nil,
            etp: chance(30) ? pick(["Local", "Cluster", "Weird"]) : nil, itp: chance(20) ? "Local" : nil,
            affinity: chance(20) ? pick(["ClientIP", "Sticky"]) : nil, timeout: chance(10) ? pick([5, 0, 100_000]) : nil,
            ingress: chance(30) ? [LoadBalancerIngress(ip: pick(["203.0.113.1", "203.0.113.2"]))] : nil)
    }

    mutating func randomEndpoints() -> [Endpoint] {
        (0..<Int.random(in: 0...3, using: &rng)).map { _ in
            ep(pick(["10.244.1.1", "10.244.1.2", "10.244.2.1", "nope"]), node: pick(["node-a", "node-b", nil]),
               ready: pick([nil, true, false]), serving: pick([nil, true]), terminating: pick([nil, true]))
        }
    }

    /// One random change, applied to the generator's truth and returned for the reconciler.
    mutating func next() -> ClusterChange {
        let key = ObjectKey(namespace: pick(namespaces), name: pick(names))
        switch Int.random(in: 0..<100, using: &rng) {
        case 0..<35:
            if services[key] != nil && chance(25) {
                services[key] = nil
                return .services(key, [])
            }
            let s = randomService(key)
            services[key] = s
            return .services(key, [s])
        case 35..<70:
            let sliceKey = ObjectKey(namespace: key.namespace, name: "\(key.name)-\(pick(["x", "y"]))")
            if slices[sliceKey] != nil && chance(25) {
                slices[sliceKey] = nil
                return .endpointSlices(sliceKey, [])
            }
            // The label may name any Service (or none): a relabelled slice moves between Services.
            let owner: String? = chance(90) ? pick(names) : nil
            let s = slice(sliceKey.name, service: owner, ns: sliceKey.namespace, addressType: chance(95) ? "IPv4" : "FQDN",
                          ports: [eport(pick([8080, 8443]), name: pick(["http", "https"]), proto: pick(["TCP", "UDP"]))],
                          endpoints: randomEndpoints())
            slices[sliceKey] = s
            return .endpointSlices(sliceKey, [s])
        case 70..<85:
            if endpoints[key] != nil && chance(25) {
                endpoints[key] = nil
                return .endpoints(key, [])
            }
            let e = Endpoints(metadata: ObjectMeta(name: key.name, namespace: key.namespace), subsets: [
                EndpointSubset(addresses: randomEndpoints().map { EndpointAddress(ip: $0.addresses[0], nodeName: $0.nodeName) },
                               ports: [eport(8080, name: pick(["http", "https"]))]),
            ])
            endpoints[key] = e
            return .endpoints(key, [e])
        default:
            let name = pick(["node-a", "node-b"])
            if nodes[name] != nil && chance(25) {
                nodes[name] = nil
                return .nodes(name, [])
            }
            let addresses = (0..<Int.random(in: 0...2, using: &rng)).map { _ in
                NodeAddress(type: pick(["InternalIP", "ExternalIP", "Hostname"]), address: pick(["192.0.2.10", "192.0.2.11", "fd00::1"]))
            }
            let n = Node(metadata: ObjectMeta(name: name), status: NodeStatus(addresses: addresses))
            nodes[name] = n
            return .nodes(name, [n])
        }
    }
}

@Suite struct ReconcilerModelTests {
    static let optionSets: [TranslatorOptions] = [
        TranslatorOptions(nodeName: "node-a"),  // node addresses from the Node object
        TranslatorOptions(nodeName: "node-a", nodeAddresses: [IPAddress("192.0.2.99")!]),
        TranslatorOptions(nodeName: "node-b", endpointsSource: .endpoints),
    ]

    /// Long random sequences applied one change at a time: after every step the accumulated
    /// frontend changes (an output that only ever saw changes) equal a from-scratch translation of
    /// the same cluster, and so do the warnings.
    @Test(arguments: Array(optionSets.indices), [1, 2, 3, 4])
    func incrementalEqualsFromScratch(options index: Int, seed: UInt64) async throws {
        // CPU-bound: on the tests' CPU lane, not the 2-thread cooperative pool.
        try await onCPULane { try Self.compare(options: index, seed: seed) }
    }

    /// 600 random changes of `seed`, each checked against a translation from scratch.
    static func compare(options index: Int, seed: UInt64) throws {
        let options = Self.optionSets[index]
        var generator = ChangeGenerator(seed: seed &* 7919 &+ UInt64(index))
        var reconciler = L4Reconciler(options: options)
        var output: [Frontend: FrontendEntry] = [:]
        for step in 0..<600 {
            let change = generator.next()
            let result = reconciler.apply([change])
            for (frontend, entry) in result.changes {
                // Every reported change is a real change of the output.
                try check(output[frontend] != entry, "step \(step): redundant change for \(frontend)")
                output[frontend] = entry
            }
            let scratch = Translator.translate(generator.snapshot, options: options)
            let accumulated = DesiredL4State(entries: Array(output.values), warnings: reconciler.warnings)
            try check(accumulated == scratch, "seed \(seed) step \(step) after \(change)")
        }
    }

    /// Batches (what a coalescing loop hands over) and the full path's `replaceAll` give the same
    /// state as one change at a time.
    @Test(arguments: [11, 12, 13] as [UInt64])
    func batchesAndReplaceAllAgree(seed: UInt64) {
        let options = Self.optionSets[0]
        var generator = ChangeGenerator(seed: seed)
        var batched = L4Reconciler(options: options)
        var full = L4Reconciler(options: options)
        var output: [Frontend: FrontendEntry] = [:]
        for _ in 0..<60 {
            let batch = (0..<Int.random(in: 1...12, using: &generator.rng)).map { _ in generator.next() }
            for (frontend, entry) in batched.apply(batch).changes { output[frontend] = entry }
            let fullChanges = full.replaceAll(with: generator.snapshot).changes
            #expect(batched.state == full.state)
            #expect(DesiredL4State(entries: Array(output.values)).entries == full.state.entries)
            for (frontend, entry) in fullChanges { #expect(full.desired[frontend] == entry) }
        }
    }

    @Test func sliceRelabelTouchesOldAndNewService() {
        var index = ClusterIndex()
        let key = ObjectKey(namespace: "demo", name: "web-x")
        index.apply(.endpointSlices(key, [slice("web-x", service: "web", endpoints: [])]))
        let touched = index.apply(.endpointSlices(key, [slice("web-x", service: "api", endpoints: [])]))
        #expect(touched.services == [ObjectKey(namespace: "demo", name: "web"), ObjectKey(namespace: "demo", name: "api")])
        #expect(index.apply(.endpointSlices(key, [])).services == [ObjectKey(namespace: "demo", name: "api")])
    }

    @Test func onlyTouchedKeysAreTranslated() {
        var snapshot = ClusterSnapshot()
        for i in 0..<50 {
            snapshot.services.append(service("s\(i)", clusterIP: "10.96.1.\(i)"))
            snapshot.endpointSlices.append(slice("s\(i)-1", service: "s\(i)", endpoints: [ep("10.244.0.\(i)")]))
        }
        var reconciler = L4Reconciler(options: nodeA, snapshot: snapshot)
        let changed = slice("s7-1", service: "s7", endpoints: [ep("10.244.9.9")])
        let step = reconciler.apply([.endpointSlices(ObjectKey(namespace: "demo", name: "s7-1"), [changed])])
        #expect(step.translated == [ObjectKey(namespace: "demo", name: "s7")])
        #expect(step.changes.count == 1)
        #expect(step.changes.values.first??.backends.map(\.address.description) == ["10.244.9.9"])
    }

    @Test func nodeAddressChangeRetranslatesNodePortServicesOnly() {
        let options = TranslatorOptions(nodeName: "node-a")
        var reconciler = L4Reconciler(options: options, snapshot: ClusterSnapshot(services: [
            service("np", type: "NodePort", clusterIP: "10.96.0.1", ports: [port(80, nodePort: 30080)]),
            service("cip", clusterIP: "10.96.0.2"),
        ]))
        #expect(reconciler.nodeObjectMissing)
        let nodeObject = node("node-a", internalIP: "192.0.2.7")
        let step = reconciler.apply([.nodes("node-a", [nodeObject])])
        #expect(!reconciler.nodeObjectMissing)
        #expect(step.translated == [ObjectKey(namespace: "demo", name: "np")])
        #expect(step.changes.keys.map(\.description) == ["192.0.2.7:30080/TCP"])
        // Another node's object touches nothing.
        #expect(reconciler.apply([.nodes("node-b", [nodeObject])]).translated.isEmpty)
    }

    @Test func conflictMovesToNextClaimantWhenOwnerLeaves() {
        let a = service("a", clusterIP: "10.96.0.1"), b = service("b", clusterIP: "10.96.0.1")
        var reconciler = L4Reconciler(options: nodeA, snapshot: ClusterSnapshot(services: [b, a]))
        let frontend = Frontend(address: IPAddress("10.96.0.1")!, port: 80, proto: .tcp)
        #expect(reconciler.desired[frontend]?.service.name == "a")
        #expect(reconciler.warnings.map(\.object) == ["Service demo/b"])
        let step = reconciler.apply([.services(ObjectKey(namespace: "demo", name: "a"), [])])
        #expect(step.changes[frontend]??.service.name == "b")
        #expect(reconciler.warnings.isEmpty)
    }
}
