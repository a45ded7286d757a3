import Foundation
import GatewayCore
import LoadBalancer
import Logging
import Runtime
import Synchronization
import Testing
@testable import Agent

/// The map writer's half of a node's report (issue 19): a Gateway port counts as served only once
/// the L7LB redirect to its proxy port is written; a failed write is a failure naming the cause.
@Suite struct NodeReportRedirectsTests {
    static let web = NamespacedName(namespace: "e2e", name: "web")
    static let extra = NamespacedName(namespace: "e2e", name: "extra")

    static func tables() -> [UInt16: PortRouteTable] {
        var alt = ListenerRouteTable(name: "alt", hostname: nil, protocol: .http, rules: [])
        alt.listenerSet = extra
        return [
            10000: PortRouteTable(gateway: web, port: 80, listeners: [ListenerRouteTable(name: "http", hostname: nil, protocol: .http, rules: [])]),
            10001: PortRouteTable(gateway: web, port: 8080, listeners: [alt]),
        ]
    }

    static let draft = NodeProgramReport(gateways: ["e2e/web": GatewayProgram(generation: 2)], listenerSets: ["e2e/extra": GatewayProgram(generation: 1)])

    @Test func aPortWithoutItsRedirectIsPendingAndAFailedOneFails() {
        // Nothing written yet: both ports pending, the ListenerSet's too.
        let none = L7ProxyOutput.report(Self.draft, tables: Self.tables(), redirects: RedirectsWritten())
        #expect(none.gateways["e2e/web"]?.pending == [
            "port 80": "the redirect to proxy port 10000 is not in the maps yet", "port 8080": "the redirect to proxy port 10001 is not in the maps yet",
        ])
        #expect(none.listenerSets?["e2e/extra"]?.pending == ["port 8080": "the redirect to proxy port 10001 is not in the maps yet"])
        #expect(NodeProgramReport.programmed(gateway: Self.web, generation: 2, reports: ["node-a": none])?.reason == "Pending")
        // Port 80 written, 8080 failed (a full map): the set's listener fails, the Gateway's port is served.
        let mixed = L7ProxyOutput.report(
            Self.draft, tables: Self.tables(), redirects: RedirectsWritten(written: [10000: 3], failed: [10001: "10.96.0.9:8080/TCP: map full"]))
        #expect(mixed.gateways["e2e/web"] == GatewayProgram(generation: 2))
        #expect(mixed.listenerSets?["e2e/extra"]?.failures == ["alt": "redirect to proxy port 10001 not written to the maps: 10.96.0.9:8080/TCP: map full"])
        let verdict = NodeProgramReport.programmed(Self.extra, kind: .listenerSet, generation: 1, reports: ["node-a": mixed])
        #expect(verdict?.reason == "Invalid")
        #expect(verdict?.message == "0 of 1 nodes serve generation 1; node-a: listener alt: redirect to proxy port 10001 not written to the maps: 10.96.0.9:8080/TCP: map full")
        // Both written: the draft as it is.
        #expect(L7ProxyOutput.report(Self.draft, tables: Self.tables(), redirects: RedirectsWritten(written: [10000: 1, 10001: 2])) == Self.draft)
    }

    /// The runner tells what of the redirects it sent is written: a frontend the output fails is
    /// named with its cause until a retry writes it; a plain frontend does not count.
    @Test func theRunnerReportsTheRedirectsWritten() async throws {
        let output = MemoryOutput()
        let l7 = Frontend(address: IPAddress("10.96.0.9")!, port: 80, proto: .tcp)
        let plain = Frontend(address: IPAddress("10.96.0.10")!, port: 80, proto: .tcp)
        output.state.withLock { $0.failuresLeft[l7] = 1 }
        let told = Mutex<[RedirectsWritten]>([])
        let runner = OutputRunner(
            output: output, policy: .retries(initial: .milliseconds(10), cap: .milliseconds(50)), logger: Logger(label: "test.runner"),
            onRedirects: { redirects in told.withLock { $0.append(redirects) } })
        let task = Task { await runner.run() }
        defer { task.cancel() }
        let service = ServiceReference(namespace: "e2e", name: "portway-gw-web", port: 80)
        let redirect = FrontendEntry(frontend: l7, type: .clusterIP, flags: [.l7LoadBalancer], l7ProxyPort: 10000, service: service, backends: [])
        let other = FrontendEntry(frontend: plain, type: .clusterIP, flags: [], service: service, backends: [])
        runner.send(.changes([l7: redirect, plain: other]))
        try await eventually("the failed redirect reported") { told.withLock { $0.contains { $0.failed[10000] != nil } } }
        #expect(told.withLock { $0.first { $0.failed[10000] != nil } } == RedirectsWritten(failed: [10000: "10.96.0.9:80/TCP: not written"]))
        // The retry writes it.
        try await eventually("the redirect written after the retry") { told.withLock { $0.last } == RedirectsWritten(written: [10000: 1]) }
        // Removed: nothing to count.
        let removal: FrontendChanges = [l7: FrontendEntry?.none]
        runner.send(.changes(removal))
        try await eventually("the removed redirect no longer counted") { told.withLock { $0.last } == RedirectsWritten() }
    }
}
