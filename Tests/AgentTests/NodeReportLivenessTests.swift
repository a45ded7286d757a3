import Foundation
import GatewayCore
import KubeModels
import Testing
@testable import Agent

/// Which nodes should serve a Gateway (issue 19): every Node the leader knows whose report Lease
/// changed within its lifetime, on the leader's own clock.
@Suite struct NodeReportLivenessTests {
    let start = ContinuousClock.now

    func observed(_ generation: Int64, seenAgo: Duration, lifetime: Duration = .seconds(180), readable: Bool = true) -> ObservedReport {
        ObservedReport(
            report: readable ? NodeProgramReport(gateways: ["e2e/web": GatewayProgram(generation: generation)]) : nil, version: "1",
            seenAt: start - seenAgo, lifetime: lifetime)
    }

    @Test func staleUnknownAndUnreadableReportsAreLeftOut() {
        let reports = [
            "node-a": observed(1, seenAgo: .seconds(10)),
            "node-b": observed(1, seenAgo: .seconds(181)),  // stale: not renewed within its lifetime
            "node-c": observed(1, seenAgo: .seconds(1)),  // no such Node
            "node-d": observed(1, seenAgo: .seconds(1), readable: false),
        ]
        let nodes = ["node-a", "node-b", "node-d"].map { Node(metadata: ObjectMeta(name: $0)) }
        #expect(GatewayLeaderController.live(reports, nodes: nodes, now: start).keys.sorted() == ["node-a"])
        // The Node list not in yet: the live reports alone.
        #expect(GatewayLeaderController.live(reports, nodes: nil, now: start).keys.sorted() == ["node-a", "node-c"])
        // Not listed yet: none (the leader waits for the list before a pass).
        #expect(GatewayLeaderController.live(nil, nodes: nodes, now: start).isEmpty)
        // node-a goes stale 170 s later.
        #expect(GatewayLeaderController.live(reports, nodes: nodes, now: start + .seconds(170)).isEmpty)
    }

    /// A report first seen in a leader's term is aged by its renewTime (a node dead before the
    /// term is not live for a whole lifetime), within 0…lifetime whatever the clocks say.
    @Test func aReportFirstSeenIsAgedByItsRenewTime() throws {
        let now = try #require(GatewayLeaderController.date(rfc3339: "2026-12-06T10:00:30Z"))
        let lifetime = Duration.seconds(40)
        #expect(GatewayLeaderController.age(renewTime: "2026-12-06T10:00:20.500000Z", wallNow: now, atMost: lifetime) == .milliseconds(9500))
        #expect(GatewayLeaderController.age(renewTime: "2026-12-06T09:00:00.000000Z", wallNow: now, atMost: lifetime) == lifetime)
        #expect(GatewayLeaderController.age(renewTime: "2026-12-06T10:01:00.000000Z", wallNow: now, atMost: lifetime) == .zero, "a clock ahead")
        #expect(GatewayLeaderController.age(renewTime: nil, wallNow: now, atMost: lifetime) == .zero)
        #expect(GatewayLeaderController.age(renewTime: "garbage", wallNow: now, atMost: lifetime) == .zero)
    }

    @Test func theReportRoundTripsThroughTheLeaseAnnotation() throws {
        let report = NodeProgramReport(gateways: [
            "e2e/web": GatewayProgram(generation: 3, failures: ["https": "certificate not loaded: x"]), "a/b": GatewayProgram(generation: 1),
        ])
        #expect(report.json == #"{"gateways":{"a/b":{"generation":1},"e2e/web":{"failures":{"https":"certificate not loaded: x"},"generation":3}}}"#)
        let lease = Lease(metadata: ObjectMeta(name: "portway-node-n", annotations: [NodeProgramReport.annotation: report.json]))
        #expect(NodeProgramReport(lease: lease) == report)
        #expect(NodeProgramReport(lease: Lease(metadata: ObjectMeta(name: "other"))) == nil)
        #expect(NodeProgramReport(json: "not json") == nil)
    }

    /// The annotation stays small: 1,000 routes (named like `route-0042`, generation 12, in one
    /// namespace) with a Gateway take ~16 KB of the 256 KB an object's annotations may hold.
    @Test func aThousandRoutesStaySmall() throws {
        var routes: [String: Int64] = [:]
        for i in 0..<1000 { routes[String(format: "route-%04d", i)] = 12 }
        let report = NodeProgramReport(gateways: ["shop/web": GatewayProgram(generation: 3)], routes: ["shop": routes])
        let size = report.json.utf8.count
        print("1,000 routes: \(size) bytes")
        #expect(size < 17_000, "\(size) bytes")
        #expect(report.json.hasPrefix(#"{"gateways":{"shop/web":{"generation":3}},"routes":{"shop":{"route-0000":12,"route-0001":12,"#), "\(report.json.prefix(120))")
        #expect(NodeProgramReport(json: report.json) == report)
    }
}

