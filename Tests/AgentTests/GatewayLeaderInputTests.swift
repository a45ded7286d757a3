import Foundation
import GatewayCore
import KubeModels
import LoadBalancer
import PortwayTestSupport
import Testing
@testable import Agent

/// The leader indexes the cluster without its endpoints (`GatewayLeaderController.leaderInput`,
/// issue 20's memory): what it writes, status and the Gateways' Services, must not depend on them.
@Suite struct GatewayLeaderInputTests {
    /// Gateway `web` with routes to a Service with endpoints, one without, a missing Service and a
    /// missing port; a ListenerSet on 8080; every backend's EndpointSlice.
    func snapshot() -> ClusterSnapshot {
        var snapshot = ClusterSnapshot()
        snapshot.gatewayClasses = [GatewayObjects.gatewayClass]
        snapshot.gateways = [GatewayObjects.gateway("web")]
        snapshot.services = [
            GatewayObjects.gatewayService("web", clusterIP: "10.96.9.1", nodePort: 30880),
            service("ready", clusterIP: "10.96.9.2"),
            service("empty", clusterIP: "10.96.9.3"),
        ]
        snapshot.endpointSlices = [slice("ready-1", service: "ready", addresses: ["10.1.0.1", "10.1.0.2"])]
        snapshot.endpoints = [Endpoints(metadata: ObjectMeta(name: "ready", namespace: "demo"), subsets: [EndpointSubset(addresses: [EndpointAddress(ip: "10.1.0.1")])])]
        snapshot.httpRoutes = [
            GatewayObjects.route("to-ready", host: "ready.example", service: "ready"),
            GatewayObjects.route("to-empty", host: "empty.example", service: "empty"),
            GatewayObjects.route("to-missing", host: "missing.example", service: "missing"),
            HTTPRoute(
                metadata: ObjectMeta(name: "to-wrong-port", namespace: "demo", generation: 1),
                spec: HTTPRouteSpec(
                    parentRefs: [ParentReference(name: "web")], hostnames: ["port.example"],
                    rules: [HTTPRouteRule(backendRefs: [HTTPBackendRef(name: "ready", port: 81)])])),
        ]
        return snapshot
    }

    @Test("the leader's plan without endpoints writes the same status, Services and ListenerSet ports as the full plan")
    func statusDoesNotDependOnEndpoints() {
        let full = snapshot()
        let lean = GatewayLeaderController.leaderInput(full)
        #expect(lean.endpointSlices.isEmpty && lean.endpoints.isEmpty)
        #expect(lean.services == full.services && lean.httpRoutes == full.httpRoutes && lean.gateways == full.gateways)
        let options = GatewayOptions.node()
        let withEndpoints = GatewayPlan(index: ClusterIndex(full), options: options).state
        let without = GatewayPlan(index: ClusterIndex(lean), options: options).state
        // The inputs do differ where endpoints matter: the route tables the nodes serve.
        #expect(endpoints(withEndpoints, host: "ready.example") == ["10.1.0.1", "10.1.0.2"])
        #expect(endpoints(without, host: "ready.example") == [])
        // What the leader writes does not.
        #expect(!withEndpoints.status.routes.isEmpty)
        #expect(withEndpoints.status == without.status)
        #expect(withEndpoints.ownedGateways == without.ownedGateways)
        for gateway in withEndpoints.ownedGateways {
            #expect(withEndpoints.listenerSetPorts(gateway: gateway) == without.listenerSetPorts(gateway: gateway))
        }
    }

    @Test("the leader's changes: every kind but EndpointSlices and Endpoints")
    func changesKept() {
        let key = ObjectKey(namespace: "demo", name: "x")
        #expect(!GatewayLeaderController.isLeaderInput(.endpointSlices(key, [])))
        #expect(!GatewayLeaderController.isLeaderInput(.endpoints(key, [])))
        let kept: [ClusterChange] = [
            .services(key, []), .nodes("n", []), .gatewayClasses("c", []), .gateways(key, []), .httpRoutes(key, []),
            .referenceGrants(key, []), .namespaces("n", []), .secrets(key, []), .listenerSets(key, []),
            .configMaps(key, []), .backendTLSPolicies(key, []),
        ]
        for change in kept { #expect(GatewayLeaderController.isLeaderInput(change), "\(change)") }
    }
}

/// The models held once per object (`SharedFields`: Service, EndpointSlice, Endpoints) keep value
/// semantics: a copy written to leaves every other copy as it was; equality and hashing are by
/// value; JSON in and out is the API's.
@Suite struct SharedModelFieldsTests {
    @Test("a written copy of a Service, an EndpointSlice or an Endpoints leaves the original as it was")
    func copiesAreIndependent() {
        let original = service("web", clusterIP: "10.96.0.1")
        var copy = original
        #expect(copy == original && copy.hashValue == original.hashValue)
        copy.metadata.labels = ["a": "b"]
        copy.spec.ports?[0].port = 81
        copy.status = ServiceStatus(loadBalancer: LoadBalancerStatus(ingress: [LoadBalancerIngress(ip: "192.0.2.1")]))
        #expect(original.metadata.labels == nil && original.spec.ports?[0].port == 80 && original.status == nil)
        #expect(copy.metadata.labels == ["a": "b"] && copy.spec.ports?[0].port == 81 && copy.status != nil)
        #expect(copy != original)
        // Equal by value, not by identity: two Services built alike.
        #expect(service("web", clusterIP: "10.96.0.1") == original)
        #expect(Set([original, service("web", clusterIP: "10.96.0.1")]).count == 1)

        let originalSlice = slice("web-1", service: "web", addresses: ["10.1.0.1"])
        var sliceCopy = originalSlice
        sliceCopy.endpoints?.append(ep("10.1.0.2"))
        sliceCopy.addressType = "IPv6"
        sliceCopy.ports = nil
        #expect(originalSlice.endpoints?.count == 1 && originalSlice.addressType == "IPv4" && originalSlice.ports != nil)
        #expect(sliceCopy.endpoints?.count == 2 && sliceCopy != originalSlice)

        let originalEndpoints = Endpoints(metadata: ObjectMeta(name: "web", namespace: "demo"))
        var endpointsCopy = originalEndpoints
        endpointsCopy.subsets = [EndpointSubset(addresses: [EndpointAddress(ip: "10.1.0.1")])]
        #expect(originalEndpoints.subsets == nil && endpointsCopy != originalEndpoints)
    }

    @Test("JSON: the same fields in and out as the API has them")
    func jsonRoundTrip() throws {
        let json = #"{"metadata":{"name":"web","namespace":"demo"},"spec":{"clusterIP":"10.96.0.1","ports":[{"port":80}]}}"#
        let decoded = try JSONDecoder().decode(KubeModels.Service.self, from: Data(json.utf8))
        #expect(decoded.metadata.name == "web" && decoded.spec.clusterIP == "10.96.0.1" && decoded.status == nil)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        #expect(String(decoding: try encoder.encode(decoded), as: UTF8.self) == json)
        #expect(throws: (any Error).self) { try JSONDecoder().decode(KubeModels.Service.self, from: Data(#"{"metadata":{"name":"web"}}"#.utf8)) }

        // Common labels are held as shared literals (`ObjectMeta.intern`): the same keys and values.
        let sliceJSON = #"{"addressType":"IPv4","endpoints":[{"addresses":["10.1.0.1"]}],"metadata":{"labels":{"endpointslice.kubernetes.io/managed-by":"endpointslice-controller.k8s.io","kubernetes.io/service-name":"web","x":"y"},"name":"web-1"}}"#
        let decodedSlice = try JSONDecoder().decode(EndpointSlice.self, from: Data(sliceJSON.utf8))
        #expect(decodedSlice.endpoints?.first?.firstAddress == "10.1.0.1" && decodedSlice.ports == nil)
        #expect(decodedSlice.metadata.labels == [
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io", EndpointSlice.serviceNameLabel: "web", "x": "y",
        ])
        #expect(String(decoding: try encoder.encode(decodedSlice), as: UTF8.self) == sliceJSON)

        let endpointsJSON = #"{"metadata":{"name":"web"},"subsets":[{"addresses":[{"ip":"10.1.0.1"}]}]}"#
        let decodedEndpoints = try JSONDecoder().decode(Endpoints.self, from: Data(endpointsJSON.utf8))
        #expect(String(decoding: try encoder.encode(decodedEndpoints), as: UTF8.self) == endpointsJSON)
    }
}
