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

    // MARK: routes and ListenerSets (issue 19: Accepted for a route generation, Programmed of a ListenerSet)

    let cart = NamespacedName(namespace: "shop", name: "cart")

    func routeReport(_ generation: Int64?) -> NodeProgramReport {
        NodeProgramReport(gateways: [:], routes: generation.map { ["shop": ["cart": $0]] })
    }

    func parents(accepted: String = "True", reason: String = "Accepted") -> [RouteParentStatus] {
        [
            RouteParentStatus(
                parentRef: ParentReference(name: "web"), controllerName: "portway.io/gateway-controller",
                conditions: [
                    Condition(type: "Accepted", status: accepted, reason: reason, message: "accepted by the build", observedGeneration: 5),
                    Condition(type: "ResolvedRefs", status: "True", reason: "ResolvedRefs", message: "all references resolved", observedGeneration: 5),
                ])
        ]
    }

    /// A node that does not serve the route's generation yet keeps the parent's Accepted False,
    /// reason Pending (the spec's RouteReasonPending), naming the node; ResolvedRefs is the build's.
    @Test func aRouteGenerationANodeLacksIsPendingAndNamed() throws {
        let reports = ["node-a": routeReport(5), "node-b": routeReport(4), "node-c": routeReport(nil)]
        let out = NodeProgramReport.applying(reports, toRoute: parents(), route: cart, generation: 5)
        let accepted = try #require(out.first?.conditions?.first)
        #expect(accepted.type == "Accepted" && accepted.status == "False" && accepted.reason == "Pending" && accepted.observedGeneration == 5)
        #expect(accepted.message == "1 of 3 nodes serve generation 5; node-b: at generation 4, not 5; node-c: has not programmed this route")
        #expect(out.first?.conditions?.last == parents().first?.conditions?.last, "ResolvedRefs untouched")
        // Every node at the generation (or newer): the build's entries as they are (no node count:
        // a node joining rewrites no route).
        #expect(NodeProgramReport.applying(["node-a": routeReport(5), "node-b": routeReport(6)], toRoute: parents(), route: cart, generation: 5) == parents())
        // The build's own Accepted False (NotAllowedByListeners…) comes first; no reports: unchanged.
        let refused = parents(accepted: "False", reason: "NotAllowedByListeners")
        #expect(NodeProgramReport.applying(reports, toRoute: refused, route: cart, generation: 5) == refused)
        #expect(NodeProgramReport.applying([:], toRoute: parents(), route: cart, generation: 5) == parents())
    }

    /// A ListenerSet's Programmed follows the nodes as a Gateway's: its own listeners' failures, its generation.
    @Test func aListenerSetIsProgrammedFromTheNodes() throws {
        let set = NamespacedName(namespace: "e2e", name: "extra")
        func setReport(_ generation: Int64, failures: [String: String]? = nil) -> NodeProgramReport {
            NodeProgramReport(gateways: ["e2e/web": GatewayProgram(generation: 9)], listenerSets: ["e2e/extra": GatewayProgram(generation: generation, failures: failures)])
        }
        let status = ListenerSetStatus(conditions: [
            Condition(type: "Accepted", status: "True", reason: "Accepted", observedGeneration: 3),
            Condition(type: "Programmed", status: "True", reason: "Programmed", observedGeneration: 3),
        ])
        let failed = NodeProgramReport.applying(
            ["node-a": setReport(3), "node-b": setReport(3, failures: ["https-extra": "certificate not loaded: bad"])], to: status, listenerSet: set, generation: 3)
        #expect(failed.conditions?.last?.status == "False")
        #expect(failed.conditions?.last?.reason == "Invalid")
        #expect(failed.conditions?.last?.message == "1 of 2 nodes serve generation 3; node-b: listener https-extra: certificate not loaded: bad")
        let lagging = NodeProgramReport.applying(["node-a": setReport(2), "node-b": NodeProgramReport()], to: status, listenerSet: set, generation: 3)
        #expect(lagging.conditions?.last?.reason == "Pending")
        #expect(lagging.conditions?.last?.message == "0 of 2 nodes serve generation 3; node-a: at generation 2, not 3; node-b: has not programmed this ListenerSet")
        let served = NodeProgramReport.applying(["node-a": setReport(3)], to: status, listenerSet: set, generation: 3)
        #expect(served.conditions?.last?.status == "True")
        #expect(served.conditions?.first == status.conditions?.first, "Accepted untouched")
    }

    /// What a node waits for (its map writer has not written a port's redirect yet) is lag, named.
    @Test func aPendingPortIsLagNotFailure() throws {
        let waiting = NodeProgramReport(gateways: ["e2e/web": GatewayProgram(generation: 4, pending: ["port 80": "redirect not in the maps yet"])])
        let verdict = try #require(NodeProgramReport.programmed(gateway: web, generation: 4, reports: ["node-a": report(4), "node-b": waiting]))
        #expect(verdict.reason == "Pending")
        #expect(verdict.message == "1 of 2 nodes serve generation 4; node-b: port 80: redirect not in the maps yet")
    }

    /// The draft: every route reaching an owned Gateway (directly or through a ListenerSet) at its
    /// generation, each ListenerSet of an owned Gateway at its generation; routes of other
    /// Gateways left out.
    @Test func theDraftCarriesRoutesAndListenerSets() throws {
        let yaml = """
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: Gateway
            metadata: {name: web, namespace: \(GW.infra), generation: 2}
            spec:
              gatewayClassName: portway
              allowedListeners: {namespaces: {from: Same}}
              listeners:
              - {name: http, port: 80, protocol: HTTP}
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: ListenerSet
            metadata: {name: extra, namespace: \(GW.infra), generation: 3}
            spec:
              parentRef: {name: web}
              listeners:
              - {name: alt, port: 8080, protocol: HTTP}
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: direct, namespace: \(GW.app), generation: 4}
            spec:
              parentRefs: [{name: web, namespace: \(GW.infra)}]
              rules: [{backendRefs: [{name: infra-backend-v1, namespace: \(GW.infra), port: 8080}]}]
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: through-set, namespace: \(GW.infra), generation: 6}
            spec:
              parentRefs: [{kind: ListenerSet, name: extra}]
              rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: elsewhere, namespace: \(GW.infra), generation: 1}
            spec:
              parentRefs: [{name: not-portways}]

            """
        let snapshot = try GW.load(yaml)
        let draft = NodeProgramReport.draft(state: GatewayState.build(snapshot), index: ClusterIndex(snapshot))
        #expect(draft.gateways == ["\(GW.infra)/web": GatewayProgram(generation: 2)])
        #expect(draft.listenerSets == ["\(GW.infra)/extra": GatewayProgram(generation: 3)])
        #expect(draft.routes == [GW.app: ["direct": 4], GW.infra: ["through-set": 6]])
    }

    /// A listener refused for NoValidCACertificate (or any config error every node sees alike) is
    /// the build's status, not a node's failure: the draft names no failure for it.
    @Test func aConfigErrorIsNoNodeFailure() throws {
        let yaml = """
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: Gateway
            metadata: {name: mtls, namespace: \(GW.infra), generation: 1}
            spec:
              gatewayClassName: portway
              tls:
                frontend:
                  default:
                    validation:
                      caCertificateRefs: [{kind: ConfigMap, group: "", name: missing-ca}]
              listeners:
              - {name: http, port: 80, protocol: HTTP}
              - {name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: cert}]}}
            ---
            apiVersion: v1
            kind: Secret
            metadata: {name: cert, namespace: \(GW.infra)}
            type: kubernetes.io/tls
            data: \(GW.tlsData())

            """
        let snapshot = try GW.load(yaml)
        let state = GatewayState.build(snapshot)
        #expect(state.unservedListeners.map(\.reason) == ["NoValidCACertificate"], "the build refuses it")
        let draft = NodeProgramReport.draft(state: state, index: ClusterIndex(snapshot))
        #expect(draft.gateways["\(GW.infra)/mtls"] == GatewayProgram(generation: 1))
    }

    /// A Gateway that is not accepted (InvalidParameters, UnsupportedAddress) is not programmed:
    /// no table for the proxy, its listeners and itself Programmed False (the spec). It was
    /// served before (issue 19).
    @Test(arguments: [
        ("InvalidParameters", "  infrastructure: {parametersRef: {group: example.com, kind: Params, name: p}}\n"),
        ("UnsupportedAddress", "  addresses: [{type: IPAddress, value: 10.9.9.9}]\n"),
    ])
    func anUnacceptedGatewayIsNotServed(reason: String, field: String) throws {
        let state = try GW.build("""
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: Gateway
            metadata: {name: refused, namespace: \(GW.infra), generation: 1}
            spec:
              gatewayClassName: portway
            \(field)  listeners:
              - {name: http, port: 80, protocol: HTTP}

            """)
        let key = NamespacedName(namespace: GW.infra, name: "refused")
        #expect(state.tables.filter { $0.gateway == key }.isEmpty, "no table: the proxy does not serve it")
        let status = try #require(state.status.gateways[key])
        #expect(status.conditions?.map { "\($0.type)=\($0.status)/\($0.reason ?? "")" } == ["Accepted=False/\(reason)", "Programmed=False/Invalid"])
        #expect(status.conditions?.last?.message == "not served: the Gateway is not accepted (\(reason))")
        let listener = try #require(status.listeners?.first?.conditions.first { $0.type == "Programmed" })
        #expect(listener.status == "False" && listener.message == "not served: the Gateway is not accepted (\(reason))")
        #expect(state.unservedListeners.map(\.reason) == ["Invalid"])
    }
}

