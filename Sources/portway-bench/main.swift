// portway-bench: each benchmark runs Portway's code and a baseline side by side in one process and
// reports the ratio, so numbers compare across machines. Run with `make bench` (root for the maps).
import BPFMaps
import CBenchBaseline
import Foundation
import KubeModels
import LoadBalancer

/// Best-of-`rounds` wall time of `body`, in seconds.
func bestTime(rounds: Int, _ body: () throws -> Void) rethrows -> Double {
    var best = Double.infinity
    let clock = ContinuousClock()
    for _ in 0..<rounds {
        let elapsed = try clock.measure(body)
        best = min(best, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }
    return best
}

func format(_ seconds: Double) -> String { String(format: "%.2f ms", seconds * 1000) }

/// A cluster of `services` Services (the first 2,000 of type NodePort, the rest ClusterIP, so that
/// nodePorts stay unique), each with one EndpointSlice of `endpointsPerService` ready endpoints.
func syntheticCluster(services: Int, endpointsPerService: Int) -> ClusterSnapshot {
    var snapshot = ClusterSnapshot()
    for i in 0..<services {
        let name = "svc-\(i)"
        let clusterIP = "10.96.\(i / 256 % 256).\(i % 256)"
        snapshot.services.append(Service(
            metadata: ObjectMeta(name: name, namespace: "bench"),
            spec: ServiceSpec(
                type: i < 2000 ? "NodePort" : "ClusterIP", clusterIP: clusterIP, clusterIPs: [clusterIP],
                ports: [ServicePort(name: "http", protocol: "TCP", port: 80, targetPort: .int(8080), nodePort: i < 2000 ? 30000 + i : nil)]
            )
        ))
        let endpoints = (0..<endpointsPerService).map { e in
            Endpoint(
                addresses: ["10.\(128 + e).\(i / 256 % 256).\(i % 256)"],
                conditions: EndpointConditions(ready: true, serving: true, terminating: false),
                nodeName: "node-\(e % 3)"
            )
        }
        snapshot.endpointSlices.append(EndpointSlice(
            metadata: ObjectMeta(name: "\(name)-abc", namespace: "bench", labels: [EndpointSlice.serviceNameLabel: name]),
            addressType: "IPv4", endpoints: endpoints, ports: [EndpointPort(name: "http", protocol: "TCP", port: 8080)]
        ))
    }
    return snapshot
}

func benchTranslator() throws {
    let services = 10_000
    let snapshot = syntheticCluster(services: services, endpointsPerService: 3)
    let options = TranslatorOptions(nodeName: "node-0", nodeAddresses: [IPAddress("192.0.2.10")!])
    // Baseline: decoding the same objects from JSON, the step that precedes translation in the agent.
    let servicesJSON = try JSONEncoder().encode(snapshot.services)
    let slicesJSON = try JSONEncoder().encode(snapshot.endpointSlices)
    let decode = try bestTime(rounds: 5) {
        _ = try JSONDecoder().decode([Service].self, from: servicesJSON)
        _ = try JSONDecoder().decode([EndpointSlice].self, from: slicesJSON)
    }
    var frontends = 0
    let translate = bestTime(rounds: 5) {
        frontends = Translator.translate(snapshot, options: options).entries.count
    }
    print("translator: \(services) services -> \(frontends) frontends in \(format(translate)); "
        + "JSON decoding of the same objects \(format(decode)); translate/decode = "
        + String(format: "%.2f", translate / decode))
}

func benchMapWriter() throws {
    guard getuid() == 0 else {
        print("map writer: skipped (needs root to create BPF maps)")
        return
    }
    let dir = NSTemporaryDirectory() + "portway-bench-\(getpid())"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    guard mount("bpf", dir, "bpf", 0, nil) == 0 else {
        print("map writer: skipped (cannot mount bpffs on \(dir): \(String(cString: strerror(errno))))")
        return
    }
    defer {
        umount(dir)
        try? FileManager.default.removeItem(atPath: dir)
    }
    let snapshot = syntheticCluster(services: 5_000, endpointsPerService: 3)
    let desired = Translator.translate(snapshot, options: TranslatorOptions(nodeName: "node-0", nodeAddresses: [IPAddress("192.0.2.10")!]))
    var best = Double.infinity
    var writes = 0
    for round in 0..<3 {
        let bpffs = dir + "/round\(round)"
        let writer = try MapWriter(maps: try MapSet.openOrCreate(bpffs: bpffs))
        let clock = ContinuousClock()
        var summary = SyncSummary()
        let elapsed = clock.measure { summary = writer.sync(desired) }
        guard summary.failures.isEmpty else { throw BenchError.failed("\(summary.failures.first!)") }
        writes = summary.writes
        best = min(best, Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds))
        if round == 2 {
            let resync = clock.measure { summary = writer.sync(desired) }
            print("map writer: unchanged resync of \(desired.entries.count) frontends made \(summary.writes) writes in "
                + format(Double(resync.components.attoseconds) / 1e18 + Double(resync.components.seconds)))
        }
    }
    var raw = Double.infinity
    for _ in 0..<3 {
        let ns = pw_bench_raw_update_loop(UInt32(writes))
        guard ns >= 0 else { throw BenchError.failed("raw loop: errno \(-ns)") }
        raw = min(raw, Double(ns) / 1e9)
    }
    print("map writer: full sync of \(desired.entries.count) frontends = \(writes) map writes in \(format(best)); "
        + "raw C bpf_map_update_elem loop of \(writes) writes \(format(raw)); writer/raw = " + String(format: "%.2f", best / raw))
}

enum BenchError: Error { case failed(String) }

do {
    try benchTranslator()
    try benchMapWriter()
    try benchWatchIngest()
    try benchOneChange()
} catch {
    print("benchmark failed: \(error)")
    exit(1)
}
