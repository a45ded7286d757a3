@testable import Agent
import BPFMaps
import KubeAPI
import KubeAPITestSupport
import KubeModels
import LoadBalancer
import Logging
import Runtime
import ServiceLifecycle
import Testing

/// What an operator reads when the maps are too small: a few lines per pass, not one per frontend.
@Suite("Agent log volume: a map too small for the cluster")
struct LogVolumeTests {
    @Test("2,000 Services into a 100-entry services map over several passes: one summary line per pass naming the flag, one error line, repeats held back")
    func tooSmallMapLogsAFewLinesPerPass() async throws {
        let capture = LogCapture()
        let options = AgentOptions(
            nodeName: "node-a", nodeAddresses: [IPAddress("192.0.2.10")!], resyncInterval: nil,
            retry: BackoffPolicy.retries(initial: .milliseconds(5), cap: .milliseconds(20)))
        let sizes = MapSizes(services: 100, backends: 10_000, reverseNAT: 10_000, affinity: 64, connectionTracking: 64, snat: 64)
        let writer = try MapWriter(maps: LoadBalancerMaps.inMemory(sizes: sizes))
        let output = MapWriterOutput(writer: writer, executor: BlockingExecutor(label: "test.log-volume"))
        let pipeline = AgentPipeline(options: options, logger: capture.logger("portway.agent", level: .info))
        let source = ManualSource()
        let group = ServiceGroup(configuration: .init(
            services: pipeline.services(source: source, outputs: [output]).map { .init(service: $0) }, logger: Logger(label: "test.group")))
        let task = Task { try await group.run() }

        // Each ClusterIP Service with one endpoint takes 2 service entries: 50 of them fit.
        var services: [KubeModels.Service] = []
        var slices: [EndpointSlice] = []
        for i in 0..<2000 {
            services.append(service("s\(i)", clusterIP: "10.96.\(i / 250).\(i % 250 + 1)"))
            slices.append(slice("s\(i)-1", service: "s\(i)", addresses: ["10.244.\(i / 250).\(i % 250 + 1)"]))
        }
        source.events.push(.snapshot(ClusterSnapshot(services: services, endpointSlices: slices)))

        func passes() -> [LogCapture.Line] {
            capture.all.filter { $0.level == .info && ($0.message.hasPrefix("maps sync:") || $0.message.hasPrefix("maps retry of")) }
        }
        // A liveness bound: the passes run on the test process's shared concurrency pool, which the
        // full parallel run keeps busy with CPU-bound model tests for tens of seconds on 2 cores.
        try await eventually("five passes (the first sync and retries)", timeout: .seconds(180)) { passes().count >= 5 }
        await group.triggerGracefulShutdown()
        try await task.value

        let all = capture.lines(atLeast: .info)
        let passCount = passes().count
        let problems = capture.lines(atLeast: .warning)
        #expect(writer.failedFrontends.count == 1950)
        // One summary line per pass, one error line for the cause, nothing per frontend.
        #expect(all.count <= passCount + 3, "\(all.count) lines for \(passCount) passes:\n\(all.prefix(20).map(\.description).joined(separator: "\n"))")
        #expect(problems.count == 1, "the same cause on every pass is logged once: \(problems.prefix(5))")
        let error = try #require(problems.first)
        #expect(error.level == .error)
        #expect(error.message.contains("1,950 failed"), "\(error)")
        #expect(error.message.contains("raise --service-map-size"), "\(error)")
        #expect(error.message.contains("and 1,947 more"), "names the first few only: \(error)")
        #expect(passes().allSatisfy { $0.message.contains("raise --service-map-size") }, "every pass's summary names the flag: \(passes().prefix(3))")
    }

    @Test("the repeat limiter lets one line of a cause through per interval and counts the rest")
    func repeatLimiter() {
        var limiter = RepeatLimiter(interval: .seconds(60))
        let start = ContinuousClock.now
        #expect(limiter.admit("a", now: start) == 0)
        #expect(limiter.admit("a", now: start + .seconds(1)) == nil)
        #expect(limiter.admit("b", now: start + .seconds(1)) == 0, "another cause is not held back")
        #expect(limiter.admit("a", now: start + .seconds(59)) == nil)
        #expect(limiter.admit("a", now: start + .seconds(61)) == 2, "let through again, with the count held back")
        #expect(limiter.admit("a", now: start + .seconds(62)) == nil)
    }
}
