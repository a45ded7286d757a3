import Foundation
import GatewayCore
import KubeModels
import Synchronization
import Testing
@testable import GatewayCore
import LoadBalancer

// Issue 16, items 9 and 10: one bad TLS Secret or a conflicting listener is reported on its own
// listener and never takes the others down or vanishes silently.

private func gateway(_ name: String, listeners: String) -> String {
    """
    ---
    apiVersion: gateway.networking.k8s.io/v1
    kind: Gateway
    metadata: {name: \(name), namespace: \(GW.infra), generation: 2}
    spec:
      gatewayClassName: portway
      listeners:
    \(listeners)

    """
}

private func secret(_ name: String, data: String) -> String {
    "---\napiVersion: v1\nkind: Secret\nmetadata: {name: \(name), namespace: \(GW.infra)}\ntype: kubernetes.io/tls\ndata: \(data)\n"
}

private func route(_ name: String, parent: String, section: String? = nil, hostnames: [String] = []) -> String {
    """
    ---
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {name: \(name), namespace: \(GW.infra)}
    spec:
      parentRefs: [{name: \(parent)\(section.map { ", sectionName: \($0)" } ?? "")}]
      hostnames: [\(hostnames.joined(separator: ", "))]
      rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]

    """
}

private func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

extension GatewayState {
    /// The message of a listener's condition.
    func listenerMessage(_ gateway: String, listener: String, condition: String) -> String? {
        status.gateways[NamespacedName(namespace: GW.infra, name: gateway)]?.listeners?.first { $0.name == listener }?
            .conditions.first { $0.type == condition }?.message
    }

    /// `Type=Status/Reason` of the Gateway's own conditions.
    func gatewayConditions(_ gateway: String) -> [String] {
        (status.gateways[NamespacedName(namespace: GW.infra, name: gateway)]?.conditions ?? []).map { "\($0.type)=\($0.status)/\($0.reason ?? "")" }
    }
}

/// The keys a validator was asked about.
private final class Calls: Sendable {
    let keys = Mutex<[String]>([])
}

@Suite struct GatewayListenerIsolationTests {
    /// Five HTTPS listeners on 443, one good Secret and four bad ones (the conformance suite's
    /// "Hello world", no key, a key where the certificate belongs, a truncated paste): each bad
    /// listener is InvalidCertificateRef naming its Secret and what is wrong, left out of the
    /// table; the good one is served.
    @Test func aBadSecretTakesOnlyItsOwnListenerOut() throws {
        let yaml = gateway("tls", listeners: """
          - {name: good, port: 443, protocol: HTTPS, hostname: a.example.com, tls: {certificateRefs: [{name: good}]}}
          - {name: garbage, port: 443, protocol: HTTPS, hostname: b.example.com, tls: {certificateRefs: [{name: garbage}]}}
          - {name: nokey, port: 443, protocol: HTTPS, hostname: c.example.com, tls: {certificateRefs: [{name: nokey}]}}
          - {name: swapped, port: 443, protocol: HTTPS, hostname: d.example.com, tls: {certificateRefs: [{name: swapped}]}}
          - {name: truncated, port: 443, protocol: HTTPS, hostname: e.example.com, tls: {certificateRefs: [{name: truncated}]}}
        """) + secret("good", data: GW.tlsData())
            + secret("garbage", data: "{tls.crt: SGVsbG8gd29ybGQK, tls.key: SGVsbG8gd29ybGQK}")
            + secret("nokey", data: "{tls.crt: \(base64(GW.pem("CERTIFICATE")))}")
            + secret("swapped", data: GW.tlsData(certificate: GW.pem("PRIVATE KEY"), key: GW.pem("CERTIFICATE")))
            + secret("truncated", data: GW.tlsData(certificate: String(GW.pem("CERTIFICATE").dropLast(26))))
            + route("r", parent: "tls")
        let state = try GW.build(yaml)
        #expect(state.listenerConditions("tls", listener: "good") == [
            "Accepted=True/Accepted", "Conflicted=False/NoConflicts", "ResolvedRefs=True/ResolvedRefs", "Programmed=True/Programmed", "attachedRoutes=1",
        ])
        let problems = [
            "garbage": "Secret gateway-conformance-infra/garbage: tls.crt holds no PEM block (expected -----BEGIN CERTIFICATE-----)",
            "nokey": "Secret gateway-conformance-infra/nokey: tls.key is missing or empty",
            "swapped": "Secret gateway-conformance-infra/swapped: tls.crt holds no CERTIFICATE block (found PRIVATE KEY)",
            "truncated": "Secret gateway-conformance-infra/truncated: tls.crt: the CERTIFICATE block of line 1 has no END line (truncated?)",
        ]
        for (listener, message) in problems {
            // The route still counts as attached (the spec: attachment does not depend on the listener's status).
            #expect(state.listenerConditions("tls", listener: listener) == [
                "Accepted=True/Accepted", "Conflicted=False/NoConflicts", "ResolvedRefs=False/InvalidCertificateRef", "Programmed=False/Invalid", "attachedRoutes=1",
            ], "\(listener)")
            #expect(state.listenerMessage("tls", listener: listener, condition: "ResolvedRefs") == message)
            #expect(state.listenerMessage("tls", listener: listener, condition: "Programmed") == "not served: \(message)")
        }
        // Only the good listener is in the port's table (and so in its SNI table), with only its Secret.
        #expect(state.tables.map { "\($0.port): \($0.listeners.map(\.name))" } == ["443: [\"good\"]"])
        #expect(Array(state.certificates.keys) == [NamespacedName(namespace: GW.infra, name: "good")])
        #expect(state.route("tls", port: 443, host: "a.example.com") == "r/0 → infra-backend-v1")
        #expect(state.route("tls", port: 443, host: "b.example.com") == "404")
        #expect(state.routeConditions("r") == ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"])
        #expect(state.gatewayConditions("tls") == ["Accepted=True/Accepted", "Programmed=False/AddressNotAssigned"])
    }

    /// The builder asks the injected validator (the agent's and the CLI's parse with NIOSSL), once
    /// per Secret however many listeners share it, and reports its answer with the Secret's name.
    @Test func theInjectedValidatorDecides() throws {
        let calls = Calls()
        let options = GatewayOptions(certificateValidator: { material in
            let key = String(decoding: material.privateKey, as: UTF8.self)
            calls.keys.withLock { $0.append(key) }
            return key == GW.pem("PRIVATE KEY", tag: 9) ? "tls.key does not belong to the first certificate of tls.crt" : nil
        })
        let yaml = gateway("tls", listeners: """
          - {name: a, port: 443, protocol: HTTPS, hostname: a.example.com, tls: {certificateRefs: [{name: good}]}}
          - {name: a2, port: 443, protocol: HTTPS, hostname: a2.example.com, tls: {certificateRefs: [{name: good}]}}
          - {name: b, port: 443, protocol: HTTPS, hostname: b.example.com, tls: {certificateRefs: [{name: mismatched}]}}
        """) + secret("good", data: GW.tlsData()) + secret("mismatched", data: GW.tlsData(key: GW.pem("PRIVATE KEY", tag: 9)))
        let state = try GW.build(yaml, options: options)
        #expect(calls.keys.withLock { $0.count } == 2, "one check per Secret")
        #expect(state.listenerConditions("tls", listener: "b")[2] == "ResolvedRefs=False/InvalidCertificateRef")
        #expect(state.listenerMessage("tls", listener: "b", condition: "ResolvedRefs") == "Secret gateway-conformance-infra/mismatched: tls.key does not belong to the first certificate of tls.crt")
        #expect(state.tables.first?.listeners.map(\.name) == ["a2", "a"])
        #expect(state.unservedListeners.map(\.description) == [
            "listener b (port 443, b.example.com) not served: ResolvedRefs=False InvalidCertificateRef: Secret gateway-conformance-infra/mismatched: tls.key does not belong to the first certificate of tls.crt",
        ])
    }

    /// Conflicting listeners get Conflicted=True with the spec's reasons, Accepted False (the
    /// conformance suite's reason Invalid) and Programmed False, each message naming the others; the
    /// Gateway is Accepted with ListenersNotValid while one listener is valid, not accepted when none is.
    @Test func conflictedListenersAreReportedNotDropped() throws {
        let yaml = gateway("clash", listeners: """
          - {name: a, port: 80, protocol: HTTP}
          - {name: b, port: 80, protocol: HTTP}
          - {name: www, port: 8080, protocol: HTTP, hostname: www.example.com}
          - {name: api, port: 8080, protocol: HTTP, hostname: api.example.com}
          - {name: api2, port: 8080, protocol: HTTP, hostname: API.example.com}
          - {name: plain, port: 9000, protocol: HTTP, hostname: x.example.com}
          - {name: tls, port: 9000, protocol: HTTPS, hostname: y.example.com, tls: {certificateRefs: [{name: cert}]}}
        """) + secret("cert", data: GW.tlsData())
            + gateway("dead", listeners: """
          - {name: one, port: 80, protocol: HTTP}
          - {name: two, port: 80, protocol: HTTP}
        """)
            + route("any", parent: "clash") + route("only-a", parent: "clash", section: "a") + route("dead-route", parent: "dead")
        let state = try GW.build(yaml)
        #expect(state.listenerConditions("clash", listener: "a") == [
            "Accepted=False/Invalid", "Conflicted=True/HostnameConflict", "ResolvedRefs=True/ResolvedRefs", "Programmed=False/Invalid", "attachedRoutes=2",
        ])
        #expect(state.listenerMessage("clash", listener: "b", condition: "Conflicted") == "listeners a, b on port 80 have no hostname (each would take every host); none of them is served")
        #expect(state.listenerConditions("clash", listener: "api2")[1] == "Conflicted=True/HostnameConflict")
        #expect(state.listenerMessage("clash", listener: "api", condition: "Conflicted") == "listeners api, api2 on port 8080 have the same hostname api.example.com; none of them is served")
        #expect(state.listenerConditions("clash", listener: "tls")[0...1] == ["Accepted=False/Invalid", "Conflicted=True/ProtocolConflict"])
        #expect(state.listenerMessage("clash", listener: "plain", condition: "Accepted") == "port 9000 has listeners of different protocols: HTTP (plain) and HTTPS (tls); none of them is served")
        #expect(state.listenerConditions("clash", listener: "www") == [
            "Accepted=True/Accepted", "Conflicted=False/NoConflicts", "ResolvedRefs=True/ResolvedRefs", "Programmed=True/Programmed", "attachedRoutes=1",
        ])
        #expect(state.gatewayConditions("clash") == ["Accepted=True/ListenersNotValid", "Programmed=False/AddressNotAssigned"])
        #expect(state.status.gateways[NamespacedName(namespace: GW.infra, name: "clash")]?.conditions?.first?.message
            == "listeners not valid: a (HostnameConflict), b (HostnameConflict), api (HostnameConflict), api2 (HostnameConflict), plain (ProtocolConflict), tls (ProtocolConflict); accepted: www")
        #expect(state.gatewayConditions("dead") == ["Accepted=False/ListenersNotValid", "Programmed=False/Invalid"])
        // Only www is served; a conflicted listener's Secret is not handed to the proxy.
        #expect(state.tables.map { "\($0.gateway.name):\($0.port): \($0.listeners.map(\.name))" } == ["clash:8080: [\"www\"]"])
        #expect(state.certificates.isEmpty)
        // A route served through an accepted listener is accepted; one whose listeners are all conflicted is not.
        #expect(state.routeConditions("any") == ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"])
        #expect(state.routeConditions("only-a") == ["Accepted=False/NoReadyListeners", "ResolvedRefs=True/ResolvedRefs"])
        #expect(state.routeConditions("dead-route") == ["Accepted=False/NoReadyListeners", "ResolvedRefs=True/ResolvedRefs"])
    }

    /// What the proxy does not serve, as the log and `portway routes` say it: each unserved
    /// listener, and each fronted Gateway port with no table (nothing listens: connections reset).
    @Test func unservedListenersAndDeadPortsAreWarnings() throws {
        let state = try GW.build(gateway("clash", listeners: """
          - {name: a, port: 80, protocol: HTTP}
          - {name: b, port: 80, protocol: HTTP}
          - {name: www, port: 8080, protocol: HTTP, hostname: www.example.com}
          - {name: udp, port: 53, protocol: UDP}
        """))
        let clash = NamespacedName(namespace: GW.infra, name: "clash")
        #expect(state.unservedListeners.map { "\($0.port) \($0.name) \($0.condition) \($0.reason)" } == [
            "53 udp Accepted UnsupportedProtocol", "80 a Conflicted HostnameConflict", "80 b Conflicted HostnameConflict",
        ])
        var fronted: [ProxyPortKey: UInt16?] = [ProxyPortKey(gateway: clash, port: 80): 10000, ProxyPortKey(gateway: clash, port: 8080): 10001]
        fronted[ProxyPortKey(gateway: clash, port: 9090)] = .some(nil)  // fronted, but no proxy port was allocated
        #expect(state.servingWarnings(frontedPorts: fronted).map(\.description) == [
            "Gateway gateway-conformance-infra/clash: listener udp (port 53, any host) not served: Accepted=False UnsupportedProtocol: protocol UDP on port 53 is not supported (HTTP and HTTPS are)",
            "Gateway gateway-conformance-infra/clash: listener a (port 80, any host) not served: Conflicted=True HostnameConflict: listeners a, b on port 80 have no hostname (each would take every host); none of them is served",
            "Gateway gateway-conformance-infra/clash: listener b (port 80, any host) not served: Conflicted=True HostnameConflict: listeners a, b on port 80 have no hostname (each would take every host); none of them is served",
            "Gateway gateway-conformance-infra/clash: port 80: no listener on port 80 is served (a, b); its Service's frontends go to proxy port 10000, where nothing listens: connections are reset",
            "Gateway gateway-conformance-infra/clash: port 9090: the Gateway has no listener on port 9090; its Service's frontends go to the proxy, where nothing listens: connections are reset",
        ])
        #expect(state.unservedListeners.first?.takes(host: "anything.example") == true)
    }
}

@Suite struct TLSMaterialStructureTests {
    @Test(arguments: [
        (GW.pem("CERTIFICATE"), GW.pem("PRIVATE KEY"), nil),
        (GW.pem("CERTIFICATE") + GW.pem("CERTIFICATE", tag: 1), GW.pem("EC PRIVATE KEY"), nil),  // a chain; a SEC 1 key
        ("subject=CN = x\n" + GW.pem("CERTIFICATE").replacingOccurrences(of: "\n", with: "\r\n"), GW.pem("RSA PRIVATE KEY"), nil),  // text around, CRLF
        ("Hello world\n", GW.pem("PRIVATE KEY"), "tls.crt holds no PEM block (expected -----BEGIN CERTIFICATE-----)"),
        (GW.pem("CERTIFICATE"), "Hello world\n", "tls.key holds no PEM block (expected -----BEGIN PRIVATE KEY-----)"),
        (GW.pem("PRIVATE KEY"), GW.pem("PRIVATE KEY"), "tls.crt holds no CERTIFICATE block (found PRIVATE KEY)"),
        (GW.pem("CERTIFICATE"), GW.pem("CERTIFICATE"), "tls.key holds no PRIVATE KEY block (found CERTIFICATE)"),
        ("-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n", GW.pem("PRIVATE KEY"), "tls.crt: the CERTIFICATE block of line 1 is not base64"),
        ("-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n", GW.pem("PRIVATE KEY"), "tls.crt: the CERTIFICATE block of line 1 does not hold DER (no ASN.1 SEQUENCE)"),
        ("-----BEGIN CERTIFICATE-----\nMAEA\n-----END CERTIFICATE----\n", GW.pem("PRIVATE KEY"), "tls.crt: line 3: -----END CERTIFICATE---- does not close -----BEGIN CERTIFICATE----- of line 1"),
        ("-----BEGIN CERTIFICATE-----\nMAEA\n" + GW.pem("CERTIFICATE"), GW.pem("PRIVATE KEY"), "tls.crt: line 3: a BEGIN line inside the CERTIFICATE block of line 1 (no END line)"),
        (GW.pem("CERTIFICATE"), GW.pem("ENCRYPTED PRIVATE KEY"), "tls.key holds an encrypted private key (a Secret's key must not need a passphrase)"),
        (GW.pem("CERTIFICATE"), "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nMAEA\n-----END RSA PRIVATE KEY-----\n",
         "tls.key holds an encrypted private key (a Secret's key must not need a passphrase)"),
    ] as [(String, String, String?)])
    func structure(certificate: String, key: String, problem: String?) {
        #expect(TLSMaterial(certificateChain: Array(certificate.utf8), privateKey: Array(key.utf8)).structuralProblem == problem)
    }

    @Test func binaryIsNotPEM() {
        let der: [UInt8] = [0x30, 0x82, 0x01, 0xFF, 0xFE]
        #expect(TLSMaterial(certificateChain: der, privateKey: Array(GW.pem("PRIVATE KEY").utf8)).structuralProblem == "tls.crt: not text (binary data: DER instead of PEM?)")
    }
}
