import GatewayCore
import KubeModels
import LoadBalancer
import NIOCore
import Testing
@testable import L7Proxy

/// The proxy sends what it builds without NIO's per-message header validators: a configured value
/// that could end a header line is refused when the route tables are built (`FieldSyntax`), and
/// what clients and backends send was parsed by NIO's decoder. These tests go from the Gateway API
/// objects through the builder to the proxy's whole handler stack (embedded channels on both sides).
@Suite struct HeaderInjectionTests {
    static let injected = "v\r\nX-Injected: 1"

    /// A Gateway on port 80, the Service `web` with one ready endpoint, and three HTTPRoutes to it:
    /// `ok.example.com` (a valid RequestHeaderModifier), `request.example.com` and
    /// `response.example.com` (a Request-/ResponseHeaderModifier value holding CR LF and a header).
    static let snapshot: ClusterSnapshot = {
        func route(_ name: String, _ filter: HTTPRouteFilter) -> HTTPRoute {
            HTTPRoute(
                metadata: ObjectMeta(name: name, namespace: "default"),
                spec: HTTPRouteSpec(parentRefs: [ParentReference(name: "gw")], hostnames: ["\(name).example.com"], rules: [
                    HTTPRouteRule(filters: [filter], backendRefs: [HTTPBackendRef(name: "web", port: 8080)])
                ]))
        }
        func note(_ value: String) -> HTTPHeaderFilter { HTTPHeaderFilter(set: [HTTPHeader(name: "x-note", value: value)]) }
        return ClusterSnapshot(
            services: [Service(metadata: ObjectMeta(name: "web", namespace: "default"), spec: ServiceSpec(
                clusterIP: "10.96.0.10", ports: [ServicePort(port: 8080, targetPort: .int(3000))]))],
            endpointSlices: [EndpointSlice(
                metadata: ObjectMeta(name: "web-x", namespace: "default", labels: [EndpointSlice.serviceNameLabel: "web"]),
                addressType: "IPv4", endpoints: [Endpoint(addresses: ["10.1.1.1"], conditions: EndpointConditions(ready: true))],
                ports: [EndpointPort(port: 3000)])],
            gatewayClasses: [GatewayClass(metadata: ObjectMeta(name: "portway"), spec: GatewayClassSpec(controllerName: GatewayOptions.defaultControllerName))],
            gateways: [Gateway(
                metadata: ObjectMeta(name: "gw", namespace: "default"),
                spec: GatewaySpec(gatewayClassName: "portway", listeners: [Listener(name: "http", port: 80, protocol: "HTTP")]))],
            httpRoutes: [
                route("ok", HTTPRouteFilter(type: "RequestHeaderModifier", requestHeaderModifier: note("v"))),
                route("request", HTTPRouteFilter(type: "RequestHeaderModifier", requestHeaderModifier: note(injected))),
                route("response", HTTPRouteFilter(type: "ResponseHeaderModifier", responseHeaderModifier: note(injected))),
            ])
    }()

    /// What the backend and the client received for a GET to `host` (the backend, when one was
    /// asked, answers 200 with `status line` as given).
    func exchange(host: String, statusLine: String = "HTTP/1.1 200 OK") throws -> (backend: String?, client: String) {
        let state = GatewayState.build(Self.snapshot)
        let table = try #require(state.tables.first { $0.port == 80 })
        let harness = try EmbeddedHarness(router: GatewayRouteTableRouter(tables: [8080: table]))
        harness.send("GET / HTTP/1.1\r\nHost: \(host)\r\n\r\n")
        var backend: String?
        if !harness.connector.upstreams.isEmpty {
            backend = harness.upstreamReceived(0)
            harness.upstreamSends(0, "\(statusLine)\r\ncontent-length: 2\r\n\r\nok")
        }
        return (backend, harness.clientReceived())
    }

    static func hasInjectedLine(_ text: String) -> Bool { text.lowercased().contains("\r\nx-injected:") }

    @Test("a valid header edit is applied: the route is accepted and its value reaches the backend")
    func aValidEditIsApplied() throws {
        let (backend, client) = try exchange(host: "ok.example.com")
        #expect(try #require(backend).contains("\r\nx-note: v\r\n"))
        #expect(parseResponses(client).first?.status == 200)
        let conditions = GatewayState.build(Self.snapshot).status.routes[NamespacedName(namespace: "default", name: "ok")]?.first?.conditions ?? []
        #expect(conditions.first.map { "\($0.type)=\($0.status)" } == "Accepted=True")
    }

    @Test("a header modifier value with CR LF never reaches a backend or a client as a header of its own: the route is refused (UnsupportedValue)")
    func aValueWithCRLFIsNeverSent() throws {
        for host in ["request.example.com", "response.example.com"] {
            let (backend, client) = try exchange(host: host)
            #expect(!Self.hasInjectedLine(backend ?? ""), "\(host): the backend got \(String(reflecting: backend ?? ""))")
            #expect(!Self.hasInjectedLine(client), "\(host): the client got \(String(reflecting: client))")
            // Not served at all: no backend was asked, the client got 404.
            #expect(backend == nil, "\(host)")
            #expect(parseResponses(client).first?.status == 404, "\(host)")
        }
        let state = GatewayState.build(Self.snapshot)
        for (route, filter) in [("request", "RequestHeaderModifier"), ("response", "ResponseHeaderModifier")] {
            let accepted = state.status.routes[NamespacedName(namespace: "default", name: route)]?.first?.conditions?.first
            #expect(accepted.map { "\($0.type)=\($0.status)/\($0.reason ?? "")" } == "Accepted=False/UnsupportedValue")
            #expect(accepted?.message?.contains("spec.rules[0].filters[0]: \(filter): the value of header x-note holds a control character") == true,
                    "\(accepted?.message ?? "no message")")
        }
    }

    /// llhttp takes any byte but CR and LF in a reason phrase; the proxy relies on NIO's decoder
    /// keeping only the code (HeaderRewriting's "What is sent unchecked"): this holds it to that.
    @Test("a backend's reason phrase with a control character is not sent on; the status code is")
    func aReasonPhraseWithAControlCharacterIsDropped() throws {
        let (_, client) = try exchange(host: "ok.example.com", statusLine: "HTTP/1.1 299 Bad\u{01}Phrase")
        #expect(client.hasPrefix("HTTP/1.1 299 \r\n"), "\(String(reflecting: client))")
        #expect(parseResponses(client).first?.body == "ok")
    }
}
