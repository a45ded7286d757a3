import Agent
import BPFMaps
import Foundation
import KubeAPI
import Logging
import Testing

@Suite struct TelemetryTests {
    private func telemetry(stuckAfter: Duration = .seconds(300), resync: Duration? = .seconds(300)) -> AgentTelemetry {
        AgentTelemetry(nodeName: "node-a", version: "1.2.3", commit: "abcdef123456", resyncInterval: resync, stuckAfter: stuckAfter)
    }

    private func written(failures: Int = 0) -> SyncSummary {
        var summary = SyncSummary()
        summary.frontends = 3
        summary.backends = 2
        summary.duration = .milliseconds(2)
        summary.entries = [.services: 5, .backends: 2, .reverseNAT: 3]
        summary.capacity = [.services: 1024, .backends: 1024, .reverseNAT: 256]
        for _ in 0..<failures { summary.failures.append(SyncFailure(subject: "x", error: .notBPFFS(path: "x"))) }
        return summary
    }

    @Test("readiness: a take-over standing by is ready (the rollout must stop the old agent); once the pins are taken, ready after the first sync with every proxy port listening")
    func readinessPhases() {
        let t = telemetry()
        t.setPhase(.standby)
        #expect(t.readiness().ok)
        #expect(t.readiness().reasons.first?.contains("standing by") == true)
        t.setPhase(.starting)
        #expect(!t.readiness().ok)
        t.mapsWritten(written())
        #expect(t.phase == .serving)
        #expect(t.readiness().ok)
        t.proxyPortsPending([10001, 10000])
        let verdict = t.readiness()
        #expect(!verdict.ok)
        #expect(verdict.reasons == ["proxy ports not listening: 10000, 10001"])
        t.proxyPortsPending([])
        #expect(t.readiness().ok)
    }

    @Test("health: an informer stuck in backoff fails it, a watch again heals it; an API server merely restarting does not")
    func healthFromInformers() async throws {
        let t = telemetry(stuckAfter: .milliseconds(50))
        #expect(t.health().ok)
        t.informer("services", .backingOff(.rewatch, delay: .seconds(1), reason: "connection refused"))
        #expect(t.health().ok)  // not yet stuck
        try await Task.sleep(for: .milliseconds(80))  // past stuckAfter: the condition is the elapsed time itself
        let verdict = t.health()
        #expect(!verdict.ok)
        #expect(verdict.reasons.first?.hasPrefix("services: informer backing off") == true)
        t.informer("services", .watching(resourceVersion: "7"))
        #expect(t.health().ok)
    }

    @Test("metrics: one registry with the build info, map entries against capacity, sync histogram, watch restarts, relists and the proxy's series")
    func metricsText() {
        let t = telemetry()
        t.mapsWritten(written())
        t.mapsWritten(written(failures: 2))
        t.informer("services", .watching(resourceVersion: "1"))
        t.informer("services", .watching(resourceVersion: "2"))
        t.informer("services", .relisting)
        t.leadership(true)
        t.proxyMetrics.record(route: .none, status: 404, latencySeconds: 0.001)
        let text = t.metricsText()
        for line in [
            #"portway_build_info{version="1.2.3",commit="abcdef123456"} 1.0"#,
            "portway_frontends 3.0", "portway_backends 2.0",
            #"portway_map_entries{map="pw_lb4_services"} 5.0"#, #"portway_map_capacity{map="pw_lb4_reverse_nat"} 256.0"#,
            "portway_sync_duration_seconds_count 2", "portway_sync_failures_total 2",
            #"portway_programmed_generation{node="node-a"} 2.0"#,
            #"portway_watch_restarts_total{resource="services"} 1"#, #"portway_relists_total{resource="services"} 1"#,
            #"portway_gateway_leader{node="node-a"} 1.0"#,
            #"portway_proxy_requests_total{route="none",code="404"} 1"#, #"portway_proxy_requests_rejected_total{reason="no_route"} 1"#,
        ] {
            #expect(text.contains(line + "\n"), "missing \(line)")
        }
    }

    @Test("portway_route_change_seconds: one observation per event of a swapped change, informer event → swap, in its buckets")
    func routeChangeHistogram() {
        let t = telemetry()
        let events = [
            RouteChangeTrace.Event(kind: "httproutes", name: "demo/a", generation: 2, received: 1000.000),
            RouteChangeTrace.Event(kind: "endpointslices", name: "demo/b-abc", generation: nil, received: 1000.020),
        ]
        // Not swapped yet: nothing observed.
        t.routeChanged(RouteChangeTrace(events: events, stepStarted: 1000.021, published: 1000.022))
        t.routeChanged(RouteChangeTrace(events: events, stepStarted: 1000.021, published: 1000.022, swapped: 1000.0235))
        let text = t.metricsText()
        // 23.5 ms and 3.5 ms: both under 25 ms, one under 5 ms.
        for line in [
            "portway_route_change_seconds_count 2", #"portway_route_change_seconds_bucket{le="0.002"} 0"#,
            #"portway_route_change_seconds_bucket{le="0.005"} 1"#, #"portway_route_change_seconds_bucket{le="0.025"} 2"#,
        ] {
            #expect(text.contains(line + "\n"), "missing \(line) in \(text.split(separator: "\n").filter { $0.contains("route_change") })")
        }
    }

    @Test("the health listener answers /healthz, /readyz (503 with the reasons until ready) and /metrics on a Unix socket and a TCP port")
    func healthServer() async throws {
        let t = telemetry()
        let socket = FileManager.default.temporaryDirectory.appendingPathComponent("pw-health-\(UInt32.random(in: 0...UInt32.max)).sock").path
        let server = HealthServer(telemetry: t, host: "127.0.0.1", port: 0, socketPath: socket)
        try await server.start()
        let port = try #require(server.boundPort)
        #expect(try unixGet(socket, "/healthz").status == 200)
        let notReady = try unixGet(socket, "/readyz")
        #expect(notReady.status == 503 && notReady.body.contains("first full sync"))
        t.mapsWritten(written())
        #expect(try unixGet(socket, "/readyz").status == 200)
        let metrics = try tcpGet(port, "/metrics")
        #expect(metrics.status == 200 && metrics.body.contains("portway_build_info"))
        #expect(try tcpGet(port, "/nope").status == 404)
        await server.close()
        #expect(!FileManager.default.fileExists(atPath: socket))
    }

    @Test("structured log lines: JSON escapes and logfmt quoting, metadata sorted, one line per message")
    func logFormats() {
        let time = Date(timeIntervalSince1970: 1_700_000_000.25)
        let json = StructuredLogHandler.format(
            .json, time: time, level: .warning, label: "portway.agent", message: "a \"quoted\"\nline", fields: ["b": "2", "a": "x y"])
        #expect(json == #"{"time":"2023-11-14T22:13:20.250Z","level":"warning","logger":"portway.agent","msg":"a \"quoted\"\nline","a":"x y","b":"2"}"#)
        let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: String]
        #expect(object?["msg"] == "a \"quoted\"\nline")
        let logfmt = StructuredLogHandler.format(.logfmt, time: time, level: .info, label: "portway.agent", message: "maps sync: 3 frontends", fields: ["key=x": "v"])
        #expect(logfmt == #"time=2023-11-14T22:13:20.250Z level=info logger=portway.agent msg="maps sync: 3 frontends" key_x=v"#)
        let sink = StructuredLogSink.capturing()
        var logger = Logger(label: "t") { StructuredLogHandler(label: $0, format: .json, level: .info, sink: sink) }
        logger[metadataKey: "node"] = "n1"
        logger.debug("hidden")
        logger.info("shown", metadata: ["extra": "1"])
        #expect(sink.lines.count == 1)
        #expect(sink.lines.first?.contains(#""msg":"shown","extra":"1","node":"n1"}"#) == true)
    }
}

/// GET over a Unix socket (HTTP/1.0): status and body.
func unixGet(_ path: String, _ uri: String) throws -> (status: Int, body: String) {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
    let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
    guard rc == 0 else { throw POSIXError(.ECONNREFUSED) }
    return try exchange(fd, uri)
}

/// GET over TCP to 127.0.0.1 (HTTP/1.0): status and body.
func tcpGet(_ port: Int, _ uri: String) throws -> (status: Int, body: String) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = UInt16(port).bigEndian
    addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard rc == 0 else { throw POSIXError(.ECONNREFUSED) }
    return try exchange(fd, uri)
}

private func exchange(_ fd: Int32, _ uri: String) throws -> (status: Int, body: String) {
    let request = Array("GET \(uri) HTTP/1.0\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    var data: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        data += buffer.prefix(n)
    }
    let text = String(decoding: data, as: UTF8.self)
    let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
    let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
    return (status, body)
}
