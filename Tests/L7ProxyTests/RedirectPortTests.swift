import GatewayCore
import KubeModels
import LoadBalancer
import NIOCore
import Testing
@testable import L7Proxy

/// Issue 19: a RequestRedirect without port answered with the port the connection arrived on,
/// which through a Gateway's NodePort is the node port (`Location: http://host:30600/...`). The
/// spec: without port and scheme, the Gateway listener's port (80 omitted); with a scheme, that
/// scheme's well-known port. The table is built by the Gateway builder (it knows the listener)
/// and the request is served by the proxy's handler stack on a connection whose local address is
/// a NodePort, as the transparent redirect hands it over.
@Suite struct RedirectPortTests {
    /// Portway's class, a Gateway with HTTP listeners on 80 and 8080, and one HTTPRoute whose rules
    /// redirect to example.org (the conformance suite's RedirectPortAndScheme cases).
    static let snapshot: ClusterSnapshot = {
        func redirect(_ path: String, scheme: String? = nil, port: Int? = nil, statusCode: Int? = nil) -> HTTPRouteRule {
            HTTPRouteRule(
                matches: [HTTPRouteMatch(path: HTTPPathMatch(type: "PathPrefix", value: path))],
                filters: [HTTPRouteFilter(type: "RequestRedirect", requestRedirect: HTTPRequestRedirectFilter(
                    scheme: scheme, hostname: "example.org", port: port, statusCode: statusCode))])
        }
        return ClusterSnapshot(
            gatewayClasses: [GatewayClass(metadata: ObjectMeta(name: "portway"), spec: GatewayClassSpec(controllerName: GatewayOptions.defaultControllerName))],
            gateways: [Gateway(
                metadata: ObjectMeta(name: "gw", namespace: "default"),
                spec: GatewaySpec(gatewayClassName: "portway", listeners: [
                    Listener(name: "http", port: 80, protocol: "HTTP"), Listener(name: "http-8080", port: 8080, protocol: "HTTP"),
                ]))],
            httpRoutes: [HTTPRoute(
                metadata: ObjectMeta(name: "redirects", namespace: "default"),
                spec: HTTPRouteSpec(parentRefs: [ParentReference(name: "gw")], rules: [
                    redirect("/scheme-nil-and-port-nil"),
                    redirect("/scheme-nil-and-port-8080", port: 8080),
                    redirect("/scheme-https-and-port-nil", scheme: "https"),
                    redirect("/scheme-http-and-port-nil", scheme: "http"),
                    redirect("/status-303", statusCode: 303),
                    redirect("/status-307", statusCode: 307),
                    redirect("/status-308", statusCode: 308),
                ]))])
    }()

    /// Status and Location of a GET to `path` through the listener on `listenerPort`, on a
    /// connection that arrived at node port 30600.
    func redirect(_ path: String, listenerPort: Int) throws -> String {
        let state = GatewayState.build(Self.snapshot)
        let table = try #require(state.tables.first { $0.port == listenerPort })
        // The harness's proxy port is 8080: its table is the listener port's.
        let harness = try EmbeddedHarness(router: GatewayRouteTableRouter(tables: [8080: table]))
        harness.client.localAddress = try SocketAddress(ipAddress: "192.168.50.2", port: 30600)
        harness.send("GET \(path)?q=1 HTTP/1.1\r\nHost: gw.example.com:30600\r\n\r\n")
        let response = try #require(parseResponses(harness.clientReceived()).first)
        return "\(response.status) \(response.header("location") ?? "-")"
    }

    @Test("a redirect without port names the Gateway listener's port (80 omitted), never the NodePort the connection came through")
    func listenerPortNotNodePort() throws {
        #expect(try redirect("/scheme-nil-and-port-nil", listenerPort: 80) == "302 http://example.org/scheme-nil-and-port-nil?q=1")
        #expect(try redirect("/scheme-nil-and-port-nil", listenerPort: 8080) == "302 http://example.org:8080/scheme-nil-and-port-nil?q=1")
        #expect(try redirect("/scheme-nil-and-port-8080", listenerPort: 80) == "302 http://example.org:8080/scheme-nil-and-port-8080?q=1")
        #expect(try redirect("/scheme-https-and-port-nil", listenerPort: 80) == "302 https://example.org/scheme-https-and-port-nil?q=1")
        #expect(try redirect("/scheme-http-and-port-nil", listenerPort: 8080) == "302 http://example.org/scheme-http-and-port-nil?q=1")
    }

    @Test("303, 307 and 308 redirects answer with their code")
    func redirectStatusCodes() throws {
        for code in [303, 307, 308] {
            #expect(try redirect("/status-\(code)", listenerPort: 80) == "\(code) http://example.org/status-\(code)?q=1")
        }
    }
}
