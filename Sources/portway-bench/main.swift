// portway-bench: each benchmark runs Portway's code and a baseline side by side in one process and
// reports the ratio, so numbers compare across machines. Run with `make bench` (root for the maps).
import BPFMaps
import CBenchBaseline
import CPortwayBPF
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

/// A cluster of `services` Services (the first `nodePorts` of type NodePort, the rest ClusterIP, so that
/// nodePorts stay unique), each with one EndpointSlice of `endpointsPerService` ready endpoints.
func syntheticCluster(services: Int, endpointsPerService: Int, nodePorts: Int = 2000) -> ClusterSnapshot {
    var snapshot = ClusterSnapshot()
    for i in 0..<services {
        let name = "svc-\(i)"
        let clusterIP = "10.96.\(i / 256 % 256).\(i % 256)"
        snapshot.services.append(Service(
            metadata: ObjectMeta(name: name, namespace: "bench"),
            spec: ServiceSpec(
                type: i < nodePorts ? "NodePort" : "ClusterIP", clusterIP: clusterIP, clusterIPs: [clusterIP],
                ports: [ServicePort(name: "http", protocol: "TCP", port: 80, targetPort: .int(8080), nodePort: i < nodePorts ? 30000 + i : nil)]
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

/// A private bpffs mount for the map benchmarks, removed afterwards; nil (with a printed reason) when not root.
func withBenchBPFFS(_ body: (String) throws -> Void) throws {
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
    try body(dir)
}

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

/// The desired state of `services` ClusterIP Services with `endpoints` endpoints each.
func desiredState(services: Int, endpoints: Int) -> DesiredL4State {
    let snapshot = syntheticCluster(services: services, endpointsPerService: endpoints, nodePorts: 0)
    return Translator.translate(snapshot, options: TranslatorOptions(nodeName: "node-0", nodeAddresses: [IPAddress("192.0.2.10")!]))
}

/// Packed key and value bytes of every entry of one pinned map.
func packedEntries(_ map: PinnedMap) throws -> (keys: [UInt8], values: [UInt8], count: Int) {
    let p = try map.allEntries()
    return (p.keys, p.values, p.count)
}

/// The same entries written by C: one bpf_map_update_elem per entry, or BPF_MAP_UPDATE_BATCH.
/// Returns wall and on-CPU seconds.
func cBaseline(_ entries: [(MapKind, keys: [UInt8], values: [UInt8], count: Int, maxEntries: UInt32)], batch: Bool) throws -> (wall: Double, cpu: Double) {
    var total = (wall: 0.0, cpu: 0.0)
    for (kind, keys, values, count, maxEntries) in entries {
        let fd = pw_bench_create_map(kind.keySize, kind.valueSize, maxEntries)
        guard fd >= 0 else { throw BenchError.failed("create map: errno \(-fd)") }
        defer { close(fd) }
        var cpu: Int64 = 0
        let ns = keys.withUnsafeBytes { k in
            values.withUnsafeBytes { v in
                batch
                    ? pw_bench_update_batch(fd, k.baseAddress, v.baseAddress, UInt32(count), kind.keySize, kind.valueSize, 4096, &cpu)
                    : pw_bench_update_loop(fd, k.baseAddress, v.baseAddress, UInt32(count), kind.keySize, kind.valueSize, &cpu)
            }
        }
        guard ns >= 0 else { throw BenchError.failed("C baseline: errno \(-ns)") }
        total.wall += Double(ns) / 1e9
        total.cpu += Double(cpu) / 1e9
    }
    return total
}

/// Cold sync into empty pinned maps, beside C writing the same entries one by one and in batches.
func benchColdSync(_ dir: String, services: Int, endpoints: Int) throws {
    let desired = desiredState(services: services, endpoints: endpoints)
    var best = Double.infinity, bestCPU = Double.infinity, entries = 0
    var written: [(MapKind, keys: [UInt8], values: [UInt8], count: Int, maxEntries: UInt32)] = []
    for round in 0..<3 {
        let bpffs = dir + "/cold-\(services)x\(endpoints)-\(round)"
        let maps = try MapSet.openOrCreate(bpffs: bpffs)
        let writer = try MapWriter(maps: maps)
        var summary = SyncSummary()
        let cpuStart = threadCPUTime()
        let elapsed = ContinuousClock().measure { summary = writer.sync(desired) }
        bestCPU = min(bestCPU, threadCPUTime() - cpuStart)
        guard summary.failures.isEmpty else { throw BenchError.failed("cold sync: \(summary.failures.first!)") }
        best = min(best, seconds(elapsed))
        entries = summary.writes
        if round == 0 {
            written = try [MapKind.services, .backends, .reverseNAT].map { kind in
                let p = try packedEntries(maps[kind])
                return (kind, p.keys, p.values, p.count, maps[kind].maxEntries)
            }
        }
    }
    var loop = Double.infinity, batch = Double.infinity, loopCPU = Double.infinity, batchCPU = Double.infinity
    for _ in 0..<3 {
        let l = try cBaseline(written, batch: false), b = try cBaseline(written, batch: true)
        loop = min(loop, l.wall)
        loopCPU = min(loopCPU, l.cpu)
        batch = min(batch, b.wall)
        batchCPU = min(batchCPU, b.cpu)
    }
    print("cold sync \(services / 1000)k x \(endpoints): \(desired.entries.count) frontends, \(entries) entries in \(format(best)) "
        + "(\(Int(Double(services) / best)) services/s); C update loop \(format(loop)), C batch \(format(batch)); "
        + "writer/loop = \(String(format: "%.2f", best / loop)), writer/batch = \(String(format: "%.2f", best / batch)) (target <= 1.5); "
        + "on-CPU: writer \(format(bestCPU)), loop \(format(loopCPU)), batch \(format(batchCPU)), writer/batch = \(String(format: "%.2f", bestCPU / batchCPU))")
    targetRow("cold sync writer vs C `BPF_MAP_UPDATE_BATCH`, \(services / 1000)k × \(endpoints) (on-CPU)",
              measured: "\(ratioText(bestCPU / batchCPU)) (writer \(format(bestCPU)))", reference: "C batch \(format(batchCPU))",
              target: "≤ 1.5×", met: bestCPU / batchCPU <= 1.5)
}

/// CPU time of the calling thread, in seconds (wall time on a loaded machine includes waiting for a core).
func threadCPUTime() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// One frontend's backends changed at 10k x 10: time and syscalls per `apply`, p50/p99 over 1,000 changes.
func benchOneChange(_ dir: String) throws {
    let desired = desiredState(services: 10_000, endpoints: 10)
    let maps = try MapSet.openOrCreate(bpffs: dir + "/change")
    let writer = try MapWriter(maps: maps)
    let cold = writer.sync(desired)
    guard cold.failures.isEmpty else { throw BenchError.failed("cold sync: \(cold.failures.first!)") }
    var times: [Double] = [], cpu: [Double] = [], syscalls: [Int] = [], writes: [Int] = []
    let clock = ContinuousClock()
    for n in 0..<1000 {
        var entry = desired.entries[(n * 7919) % desired.entries.count]
        // Replace one endpoint by a new address, then (next time this frontend comes) put it back.
        entry.backends[3].address = IPAddress("10.250.\(n / 256 % 256).\(n % 256)")!
        var summary = SyncSummary()
        let cpuStart = threadCPUTime()
        let elapsed = clock.measure { summary = writer.apply([entry.frontend: entry]) }
        cpu.append(threadCPUTime() - cpuStart)
        guard summary.failures.isEmpty else { throw BenchError.failed("apply: \(summary.failures.first!)") }
        times.append(seconds(elapsed))
        syscalls.append(summary.syscalls)
        writes.append(summary.writes + summary.deletes)
    }
    times.sort()
    cpu.sort()
    // The reference: the same change as a full sync of the whole desired state (what the agent did before).
    var changed = desired
    changed.entries[0].backends[3].address = IPAddress("10.251.0.1")!
    let full = clock.measure { _ = writer.sync(changed) }
    let p50 = times[times.count / 2], p99 = times[times.count * 99 / 100]
    print("one frontend changed at 10k x 10: p50 \(String(format: "%.1f", p50 * 1e6)) µs, p99 \(String(format: "%.1f", p99 * 1e6)) µs "
        + "(target p99 < 1 ms; on-CPU p50 \(String(format: "%.1f", cpu[500] * 1e6)) µs, p99 \(String(format: "%.1f", cpu[990] * 1e6)) µs), \(syscalls.sorted()[500]) syscalls and \(writes.sorted()[500]) map writes/deletes per change; "
        + "full sync of the same change \(format(seconds(full))); full/apply p50 = \(String(format: "%.0f", seconds(full) / p50))")
}

/// 10k x 10 into 65,536-entry maps: the capacity plan fails what does not fit before writing.
func benchCapacity(_ dir: String) throws {
    let desired = desiredState(services: 10_000, endpoints: 10)
    let sizes = MapSizes([.services: 65_536, .backends: 65_536, .reverseNAT: 65_536])
    let writer = try MapWriter(maps: try MapSet.openOrCreate(bpffs: dir + "/capacity", sizes: sizes))
    var summary = SyncSummary()
    let cpuStart = threadCPUTime()
    let elapsed = ContinuousClock().measure { summary = writer.sync(desired) }
    let cpu = threadCPUTime() - cpuStart
    print("10k x 10 into 65,536-entry maps: first sync result in \(format(seconds(elapsed))) (on-CPU \(format(cpu))) (target < 1 s): "
        + "\(summary.added) frontends programmed, \(summary.failures.count) failed; \(summary.shortfall ?? "no shortfall")")
}

/// A services map that claims to be larger than it is, so the writer attempts every frontend and
/// rolls back those the kernel refuses (the path issue 12 measured at 19 s).
final class BlindCapacityMap: MapOperations {
    let base: PinnedMap
    init(_ base: PinnedMap) { self.base = base }
    var kind: MapKind { base.kind }
    var maxEntries: UInt32 { UInt32.max }
    func lookup(key: UnsafeRawBufferPointer, value: UnsafeMutableRawBufferPointer) throws(BPFMapError) -> Bool { try base.lookup(key: key, value: value) }
    func update(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) throws(BPFMapError) { try base.update(key: key, value: value) }
    func delete(key: UnsafeRawBufferPointer) throws(BPFMapError) -> Bool { try base.delete(key: key) }
    func allKeys() throws(BPFMapError) -> [[UInt8]] { try base.allKeys() }
    func nativeUpdateBatch(keys: UnsafeRawBufferPointer, values: UnsafeRawBufferPointer, count: Int) -> MapBatchResult? {
        base.nativeUpdateBatch(keys: keys, values: values, count: count)
    }
    func nativeDeleteBatch(keys: UnsafeRawBufferPointer, count: Int) -> MapBatchResult? { base.nativeDeleteBatch(keys: keys, count: count) }
    func nativeEntries() throws(BPFMapError) -> PackedEntries? { try base.nativeEntries() }
}

/// 20k services x 1 endpoint into a 30,000-entry services map: with the capacity plan, and blind
/// (every frontend attempted, the kernel refusing and the writer rolling back).
func benchFullMap(_ dir: String) throws {
    let desired = desiredState(services: 20_000, endpoints: 1)
    let sizes = MapSizes([.services: 30_000])
    let planned = try MapWriter(maps: try MapSet.openOrCreate(bpffs: dir + "/full-planned", sizes: sizes))
    var a = SyncSummary()
    var cpuStart = threadCPUTime()
    let withPlan = ContinuousClock().measure { a = planned.sync(desired) }
    let planCPU = threadCPUTime() - cpuStart
    let set = try MapSet.openOrCreate(bpffs: dir + "/full-blind", sizes: sizes)
    let blind = try MapWriter(maps: LoadBalancerMaps(services: BlindCapacityMap(set.services), backends: set.backends, reverseNAT: set.reverseNAT))
    var b = SyncSummary()
    cpuStart = threadCPUTime()
    let withoutPlan = ContinuousClock().measure { b = blind.sync(desired) }
    let blindCPU = threadCPUTime() - cpuStart
    print("20k services into a 30,000-entry map: \(format(seconds(withPlan))) (on-CPU \(format(planCPU))) with the capacity plan "
        + "(\(a.failures.count) failed); \(format(seconds(withoutPlan))) (on-CPU \(format(blindCPU))) attempting all and rolling back "
        + "(\(b.failures.count) failed); issue 12 measured 19 s")
}

/// PORTWAY_BENCH_ONLY=<name> runs one benchmark alone (for profiling): cold10k, cold50k, change,
/// capacity, full (the map writer), routes (the per-request route lookup), ingest (watch events decoded).
let benchOnly = ProcessInfo.processInfo.environment["PORTWAY_BENCH_ONLY"]
func wanted(_ name: String) -> Bool { benchOnly == nil || benchOnly == name }

func benchMapWriter() throws {
    guard ["cold10k", "cold50k", "change", "capacity", "full"].contains(where: wanted) else { return }
    try withBenchBPFFS { dir in
        if wanted("cold10k") { try benchColdSync(dir, services: 10_000, endpoints: 10) }
        if wanted("cold50k") { try benchColdSync(dir, services: 50_000, endpoints: 2) }
        if wanted("change") { try benchOneChange(dir) }
        if wanted("capacity") { try benchCapacity(dir) }
        if wanted("full") { try benchFullMap(dir) }
    }
}

enum BenchError: Error { case failed(String) }

do {
    if benchOnly == nil { try benchTranslator() }
    try benchMapWriter()
    if wanted("ingest") { try benchWatchIngest() }
    if benchOnly == nil { try benchOneChange() }
    if wanted("routes") { benchRouteLookup() }
} catch {
    print("benchmark failed: \(error)")
    exit(1)
}
