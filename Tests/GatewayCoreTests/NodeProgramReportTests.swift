import KubeModels
import LoadBalancer
import Testing
@testable import GatewayCore

/// The leader's aggregation of the nodes' reports (pure): reports + generation → Programmed.
@Suite struct NodeProgramReportTests {
    let web = NamespacedName(namespace: "e2e", name: "web")

    func report(_ generation: Int64, failures: [String: String]? = nil) -> NodeProgramReport {
        NodeProgramReport(gateways: ["e2e/web": GatewayProgram(generation: generation, failures: failures)])
    }

    func status(programmed: String = "True", reason: String = "Programmed") -> GatewayStatus {
        GatewayStatus(conditions: [
            Condition(type: "Accepted", status: "True", reason: "Accepted", observedGeneration: 4),
            Condition(type: "Programmed", status: programmed, reason: reason, message: "from the build", observedGeneration: 4),
        ])
    }

    @Test func noReportsSayNothing() {
        #expect(NodeProgramReport.programmed(gateway: web, generation: 4, reports: [:]) == nil)
        #expect(NodeProgramReport.applying([:], to: status(), gateway: web, generation: 4) == status())
    }

    @Test func everyNodeAtTheGenerationIsProgrammed() throws {
        let verdict = try #require(NodeProgramReport.programmed(
            gateway: web, generation: 4, reports: ["node-a": report(4), "node-b": report(4), "node-c": report(5)]))
        #expect(verdict == ProgrammedVerdict(programmed: true, reason: "Programmed", message: "generation 4 served by all 3 nodes"))
    }

    @Test func aLaggingNodeIsPendingAndNamed() throws {
        let verdict = try #require(NodeProgramReport.programmed(
            gateway: web, generation: 4, reports: ["node-a": report(4), "node-b": report(3), "node-c": NodeProgramReport()]))
        #expect(verdict.programmed == false)
        #expect(verdict.reason == "Pending")
        #expect(verdict.message == "1 of 3 nodes serve generation 4; node-b: at generation 3, not 4; node-c: has not programmed this Gateway")
    }

    @Test func aFailedListenerIsInvalidAndNamedFirst() throws {
        let reports = [
            "node-a": report(4), "node-b": report(4, failures: ["https": "certificate not loaded: bad key"]),
            "node-c": report(2),
        ]
        let verdict = try #require(NodeProgramReport.programmed(gateway: web, generation: 4, reports: reports))
        #expect(verdict.reason == "Invalid")
        #expect(verdict.message == "1 of 3 nodes serve generation 4; node-b: listener https: certificate not loaded: bad key; node-c: at generation 2, not 4")
        // A failure reported for an older generation is lag, not failure: the node has not tried this one.
        let old = try #require(NodeProgramReport.programmed(gateway: web, generation: 5, reports: ["node-b": report(4, failures: ["https": "x"])]))
        #expect(old.reason == "Pending")
    }

    @Test func manyNodesAreCounted() throws {
        var reports: [String: NodeProgramReport] = [:]
        for i in 0..<12 { reports["node-\(i < 10 ? "0" : "")\(i)"] = report(1) }
        let verdict = try #require(NodeProgramReport.programmed(gateway: web, generation: 2, reports: reports))
        #expect(verdict.message.hasPrefix("0 of 12 nodes serve generation 2; node-00: at generation 1, not 2;"))
        #expect(verdict.message.hasSuffix("node-07: at generation 1, not 2; and 4 more nodes"))
    }

    @Test func onlyATrueProgrammedIsOverruled() {
        let lagging = ["node-a": report(3)]
        let applied = NodeProgramReport.applying(lagging, to: status(), gateway: web, generation: 4)
        let programmed = applied.conditions?.first { $0.type == "Programmed" }
        #expect(programmed?.status == "False")
        #expect(programmed?.reason == "Pending")
        #expect(programmed?.observedGeneration == 4)
        #expect(applied.conditions?.first == status().conditions?.first, "Accepted untouched")
        // The build's own False (no listener, no address) comes first.
        let noAddress = status(programmed: "False", reason: "AddressNotAssigned")
        #expect(NodeProgramReport.applying(lagging, to: noAddress, gateway: web, generation: 4) == noAddress)
        // True stays True, with the nodes counted.
        let served = NodeProgramReport.applying(["node-a": report(4)], to: status(), gateway: web, generation: 4)
        #expect(served.conditions?.last?.status == "True")
        #expect(served.conditions?.last?.message == "generation 4 served by the 1 node")
    }

    @Test func theDraftNamesListenersWithARefusedCertificate() throws {
        let yaml = """
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: Gateway
            metadata: {name: tls, namespace: \(GW.infra), generation: 7}
            spec:
              gatewayClassName: portway
              listeners:
              - {name: http, port: 80, protocol: HTTP}
              - {name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: broken}]}}
            ---
            apiVersion: v1
            kind: Secret
            metadata: {name: broken, namespace: \(GW.infra)}
            type: kubernetes.io/tls
            data: \(GW.tlsData(certificate: "not a certificate"))

            """
        let snapshot = try GW.load(yaml)
        let state = GatewayState.build(snapshot)
        let draft = NodeProgramReport.draft(state: state, index: ClusterIndex(snapshot))
        let program = try #require(draft.gateways["\(GW.infra)/tls"])
        #expect(program.generation == 7)
        #expect(program.failures?.keys.sorted() == ["https"])
        #expect(program.failures?["https"]?.hasPrefix("certificate not loaded: Secret \(GW.infra)/broken: tls.crt") == true, "\(program)")
    }
}
