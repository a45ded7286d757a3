// The pipeline's benchmarks (issue 7): one EndpointSlice change at scale, watch ingest, and memory.
import BPFMaps
import CBenchBaseline
import Foundation
import KubeAPI
import KubeModels
import LoadBalancer


func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
}

func formatMicros(_ s: Double) -> String { String(format: "%.1f µs", s * 1e6) }

/// The process's resident set size in MB (VmRSS) after glibc returned its free heap pages
/// (`malloc_trim`), so the figure is what the live structures hold, not what freed temporaries left.
func liveResidentMB() -> Double {
    pw_bench_malloc_trim()
    return residentMB()
}

/// The process's resident set size in MB (VmRSS).
func residentMB() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
        let kb = Double(line.split(separator: " ").dropFirst().first ?? "")
    else { return -1 }
    return kb / 1024
}

/// One EndpointSlice change at 10,000 Services × 10 endpoints: translation + diff of the touched
/// key (the reconciler) over 1,000 changes, beside a from-scratch translation of the same cluster;
/// then, as root, event in hand → map write through today's writer adapter.
func benchOneChange() throws {
    let services = 10_000, endpoints = 10
    let options = TranslatorOptions(nodeName: "node-0", nodeAddresses: [IPAddress("192.0.2.10")!])
    let baseMB = liveResidentMB()
    var snapshot = syntheticCluster(services: services, endpointsPerService: endpoints)
    let snapshotMB = liveResidentMB()
    let clock = ContinuousClock()
    var reconciler = L4Reconciler(options: .init(nodeName: "node-0"))
    let cold = clock.measure { reconciler = L4Reconciler(options: options, snapshot: snapshot) }
    let reconcilerMB = liveResidentMB()
    var generator = SystemRandomNumberGenerator()

    /// A change of one endpoint address of one Service's slice.
    func change(_ round: Int) -> ClusterChange {
        let i = Int.random(in: 0..<services, using: &generator)
        var slice = snapshot.endpointSlices[i]
        slice.endpoints?[round % endpoints].addresses = ["10.\(200 + round % 50).\(i / 256 % 256).\(i % 256)"]
        snapshot.endpointSlices[i] = slice
        return .endpointSlices(ObjectKey(slice.metadata), [slice])
    }
    var samples: [Double] = []
    var changedFrontends = 0
    for round in 0..<1000 {
        let c = change(round)
        var step: ReconcileStep?
        samples.append(seconds(clock.measure { step = reconciler.apply([c]) }))
        changedFrontends += step?.changes.count ?? 0
    }
    samples.sort()
    let full = seconds(cold)
    print("one EndpointSlice change at \(services) services × \(endpoints) endpoints, translation+diff (L4Reconciler.apply), 1,000 changes: "
        + "p50 \(formatMicros(percentile(samples, 0.5))), p99 \(formatMicros(percentile(samples, 0.99))), "
        + "\(String(format: "%.1f", Double(changedFrontends) / 1000)) frontends changed per change; "
        + "from-scratch translation of the same cluster \(format(full)); full/p99 = \(String(format: "%.0f", full / percentile(samples, 0.99)))×")

    guard getuid() == 0 else {
        print("one change, event in hand → maps written: skipped (needs root to create BPF maps)")
        return
    }
    let dir = NSTemporaryDirectory() + "pwpl-bench-\(getpid())"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    guard mount("bpf", dir, "bpf", 0, nil) == 0 else {
        print("one change, event in hand → maps written: skipped (cannot mount bpffs)")
        return
    }
    defer {
        umount(dir)
        try? FileManager.default.removeItem(atPath: dir)
    }
    let sizes = MapSizes(services: 262_144, backends: 131_072, reverseNAT: 32_768, affinity: 1024, connectionTracking: 1024, snat: 1024)
    let writer = try MapWriter(maps: try MapSet.openOrCreate(bpffs: dir + "/maps", sizes: sizes))
    let beforeWriterMB = liveResidentMB()
    let first = writer.sync(reconciler.state)
    guard first.failures.isEmpty else { throw BenchError.failed("first sync: \(first.failures.first!)") }
    let writerMB = liveResidentMB()
    // What the agent does per change: the reconciler's frontend changes into MapWriter.apply.
    var mapSamples: [Double] = []
    var operations = 0
    var syscalls = 0
    let rounds = 1000
    for round in 0..<rounds {
        let c = change(1000 + round)
        let elapsed = clock.measure {
            let step = reconciler.apply([c])
            let summary = writer.apply(step.changes)
            operations += summary.writes + summary.deletes
            syscalls += summary.syscalls
        }
        mapSamples.append(seconds(elapsed))
    }
    mapSamples.sort()
    print("one change, event in hand → maps written (L4Reconciler.apply + MapWriter.apply), \(rounds) changes: "
        + "p50 \(formatMicros(percentile(mapSamples, 0.5))), p99 \(formatMicros(percentile(mapSamples, 0.99))), "
        + "\(String(format: "%.1f", Double(operations) / Double(rounds))) map writes+deletes and "
        + "\(String(format: "%.1f", Double(syscalls) / Double(rounds))) syscalls per change")
    print("RSS after syncing \(services) services / \(services * endpoints) endpoints (reconciler + writer state, bench process): "
        + String(format: "%.0f MB", residentMB()) + " (target < 150 MB)")
    // Where it goes: live memory (after malloc_trim) measured after each stage was built.
    print("RSS by stage (after malloc_trim): process \(String(format: "%.0f", baseMB)) MB, "
        + "snapshot +\(String(format: "%.0f", snapshotMB - baseMB)) MB, "
        + "reconciler index and results +\(String(format: "%.0f", reconcilerMB - snapshotMB)) MB, "
        + "1,000 changes +\(String(format: "%.0f", beforeWriterMB - reconcilerMB)) MB, "
        + "map writer mirrors after the first sync +\(String(format: "%.0f", writerMB - beforeWriterMB)) MB; "
        + "live total after the changes \(String(format: "%.0f", liveResidentMB())) MB")
}

/// Watch ingest: 100,000 watch events shaped like the recordings (../shared/k8s-api-traces),
/// Services and EndpointSlices, through the real line framing and event decoder, beside
/// Foundation's JSONSerialization on the same lines.
func benchWatchIngest() throws {
    let traces = ["../shared/k8s-api-traces", "shared/k8s-api-traces"].first { FileManager.default.fileExists(atPath: $0 + "/watch-services.http") }
    guard let traces else {
        print("watch ingest: skipped (../shared/k8s-api-traces not found)")
        return
    }
    func eventLines(_ file: String) throws -> [String] {
        // Split on LF and CRLF alike ("\r\n" is one Character in Swift).
        try String(contentsOfFile: "\(traces)/\(file)", encoding: .utf8).split(whereSeparator: { $0 == "\n" || $0 == "\r\n" })
            .map(String.init).filter { $0.hasPrefix("{\"type\":\"ADDED\"") || $0.hasPrefix("{\"type\":\"MODIFIED\"") }
    }
    let serviceTemplates = try eventLines("watch-services.http"), sliceTemplates = try eventLines("watch-endpointslices.http")
    guard !serviceTemplates.isEmpty, !sliceTemplates.isEmpty else {
        print("watch ingest: skipped (no ADDED/MODIFIED events in the recordings)")
        return
    }
    // 100,000 events, half of each kind, each with its own name (as a real stream has).
    var buffer = [UInt8]()
    var kinds: [Bool] = []
    for i in 0..<100_000 {
        let isService = i % 2 == 0
        let template = isService ? serviceTemplates[i / 2 % serviceTemplates.count] : sliceTemplates[i / 2 % sliceTemplates.count]
        let line = template.replacingOccurrences(of: "\"namespace\":\"demo\"", with: "\"namespace\":\"ns-\(i % 97)\"")
        buffer += Array(line.utf8)
        buffer.append(UInt8(ascii: "\n"))
        kinds.append(isService)
    }
    let megabytes = Double(buffer.count) / 1e6
    let chunk = 16 * 1024  // what curl hands over per write callback
    func framed(_ body: ([UInt8], Int) throws -> Void) throws {
        var splitter = LineSplitter()
        var index = 0
        var offset = 0
        while offset < buffer.count {
            let end = min(offset + chunk, buffer.count)
            for line in try splitter.append(buffer[offset..<end]) {
                try body(line, index)
                index += 1
            }
            offset = end
        }
    }
    let decoder = JSONDecoder()
    var decoded = 0
    let ours = try bestTime(rounds: 3) {
        decoded = 0
        try framed { line, index in
            if kinds[index] { _ = try decodeWatchEvent(Service.self, line: line, decoder: decoder) } else {
                _ = try decodeWatchEvent(EndpointSlice.self, line: line, decoder: decoder)
            }
            decoded += 1
        }
    }
    let foundation = try bestTime(rounds: 3) {
        try framed { line, _ in _ = try JSONSerialization.jsonObject(with: Data(line)) }
    }
    print("watch ingest: \(decoded) recorded-shape events (\(String(format: "%.1f", megabytes)) MB) framed and decoded in \(format(ours)): "
        + String(format: "%.0f events/s, %.1f MB/s", Double(decoded) / ours, megabytes / ours)
        + "; JSONSerialization on the same lines \(format(foundation)): "
        + String(format: "%.0f events/s; ours/JSONSerialization throughput = %.2f× (target ≥ 1.0)", Double(decoded) / foundation, foundation / ours))
    targetRow("watch ingest vs JSONSerialization (throughput)", measured: "\(ratioText(foundation / ours)) (\(format(ours)))",
              reference: "JSONSerialization \(format(foundation))", target: "≥ 1.0×", met: foundation / ours >= 1.0)
}
