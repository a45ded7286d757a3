import Foundation
import KubeModels
import LoadBalancer
import Testing
@testable import GatewayCore

/// GatewayFrontendClientCertificateValidation on the builder: each upstream test's Gateway (v1.6.1,
/// conformance/tests/gateway-*client*certificate-validation*.yaml), its listeners' conditions and
/// the validation each port's table carries for the proxy.
@Suite struct FrontendValidationTests {
    static let ca = GW.pem("CERTIFICATE", tag: 7)
    static let perPortCA = GW.pem("CERTIFICATE", tag: 8)

    /// A ConfigMap holding `data` (a flow mapping).
    static func configMap(_ name: String, namespace: String = GW.infra, data: String) -> String {
        """
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: \(name), namespace: \(namespace), labels: {a: b}, annotations: {big: "\(String(repeating: "x", count: 64))"}}
        data: \(data)

        """
    }

    static func caConfigMap(_ name: String, namespace: String = GW.infra, pem: String = ca) -> String {
        configMap(name, namespace: namespace, data: "{ca.crt: \(String(reflecting: pem)), other: ignored}")
    }

    static let certificate = """
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: tls-validity-checks-certificate, namespace: \(GW.infra)}
        type: kubernetes.io/tls
        data: \(GW.tlsData())

        """

    static func https(_ name: String, port: Int, hostname: String? = nil) -> String {
        "  - {name: \(name), port: \(port), protocol: HTTPS\(hostname.map { ", hostname: \($0)" } ?? ""), allowedRoutes: {namespaces: {from: Same}}, tls: {certificateRefs: [{name: tls-validity-checks-certificate}]}}\n"
    }

    static func gateway(_ name: String, frontend: String, listeners: String) -> String {
        """
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: \(name), namespace: \(GW.infra)}
        spec:
          gatewayClassName: portway
          tls:
            frontend:
        \(frontend.split(separator: "\n").map { "      \($0)" }.joined(separator: "\n"))
          listeners:

        """ + listeners
    }

    static func ref(_ name: String, kind: String = "ConfigMap", namespace: String? = nil) -> String {
        "{kind: \(kind), group: \"\", name: \(name)\(namespace.map { ", namespace: \($0)" } ?? "")}"
    }

    /// GatewayInvalidFrontendClientCertificateValidation: the default's valid CA serves `https`;
    /// per port, a missing ConfigMap, a Service and a ConfigMap of another namespace without a
    /// ReferenceGrant each make their listener ResolvedRefs False with the spec's reason,
    /// Accepted False/NoValidCACertificate and Programmed False, and keep it out of the tables.
    @Test func invalidReferencesPerPortAreRefusedListenerByListener() throws {
        let frontend = """
            default:
              validation:
                caCertificateRefs: [\(Self.ref("tls-validity-checks-ca-certificate"))]
            perPort:
            - {port: 7443, tls: {validation: {caCertificateRefs: [\(Self.ref("non-exisitng-cm"))]}}}
            - {port: 8443, tls: {validation: {caCertificateRefs: [\(Self.ref("infra-backend-v2", kind: "Service"))]}}}
            - {port: 6443, tls: {validation: {caCertificateRefs: [\(Self.ref("web-backend-cm", namespace: GW.web))]}}}
            """
        let listeners = Self.https("https", port: 443) + Self.https("https-unresolved", port: 7443, hostname: "first-example.org")
            + Self.https("https-invalid-kind", port: 8443, hostname: "second-example.org") + Self.https("https-grant-missing", port: 6443, hostname: "fourth-example.org")
        let yaml = Self.gateway("gateway-with-invalid-client-cert-validation", frontend: frontend, listeners: listeners) + Self.certificate
            + Self.caConfigMap("tls-validity-checks-ca-certificate") + Self.caConfigMap("web-backend-cm", namespace: GW.web)
        let state = try GW.build(yaml)
        let gw = "gateway-with-invalid-client-cert-validation"
        #expect(state.listenerConditions(gw, listener: "https") == [
            "Accepted=True/Accepted", "Conflicted=False/NoConflicts", "ResolvedRefs=True/ResolvedRefs", "Programmed=True/Programmed", "attachedRoutes=0",
        ])
        for (listener, reason) in [("https-unresolved", "InvalidCACertificateRef"), ("https-invalid-kind", "InvalidCACertificateKind"), ("https-grant-missing", "RefNotPermitted")] {
            #expect(state.listenerConditions(gw, listener: listener) == [
                "Accepted=False/NoValidCACertificate", "Conflicted=False/NoConflicts", "ResolvedRefs=False/\(reason)", "Programmed=False/Invalid", "attachedRoutes=0",
            ], "\(listener)")
        }
        let key = NamespacedName(namespace: GW.infra, name: gw)
        #expect(state.tables.filter { $0.gateway == key }.map(\.port) == [443])
        let validation = try #require(state.table(gateway: key, port: 443)?.clientValidation)
        #expect(validation.mode == .allowValidOnly)
        #expect(validation.caCertificateRefs == [NamespacedName(namespace: GW.infra, name: "tls-validity-checks-ca-certificate")])
        #expect(validation.caCertificates == Array(Self.ca.utf8))
        #expect(state.unservedListeners.filter { $0.gateway == key }.map { "\($0.name) \($0.condition) \($0.reason)" } == [
            "https-grant-missing Accepted NoValidCACertificate", "https-unresolved Accepted NoValidCACertificate", "https-invalid-kind Accepted NoValidCACertificate",
        ])
        #expect(state.status.gateways[key]?.conditions?.map { "\($0.type)=\($0.status)/\($0.reason ?? "")" }.first == "Accepted=True/ListenersNotValid")

        // A ReferenceGrant from Gateways of the infra namespace to the ConfigMap permits it.
        let grant = """
            ---
            apiVersion: gateway.networking.k8s.io/v1beta1
            kind: ReferenceGrant
            metadata: {name: ca, namespace: \(GW.web)}
            spec:
              from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: \(GW.infra)}]
              to: [{group: "", kind: ConfigMap, name: web-backend-cm}]

            """
        let granted = try GW.build(yaml + grant)
        #expect(granted.listenerConditions(gw, listener: "https-grant-missing")[0...3] == [
            "Accepted=True/Accepted", "Conflicted=False/NoConflicts", "ResolvedRefs=True/ResolvedRefs", "Programmed=True/Programmed",
        ])
        #expect(granted.table(gateway: key, port: 6443)?.clientValidation?.caCertificateRefs == [NamespacedName(namespace: GW.web, name: "web-backend-cm")])
    }

    /// GatewayFrontendInvalidDefaultClientCertificateValidation: an invalid default refuses the
    /// HTTPS listener only; the HTTP listener (a perPort entry for its port changes nothing: only
    /// HTTPS listeners validate clients) is served.
    @Test func anInvalidDefaultOnlyAffectsHTTPSListeners() throws {
        let frontend = """
            default:
              validation:
                caCertificateRefs: [\(Self.ref("does-not-exist"))]
            perPort:
            - {port: 80, tls: {validation: {caCertificateRefs: [\(Self.ref("tls-validity-checks-per-port-ca-certificate"))]}}}
            """
        let listeners = Self.https("https", port: 443) + "  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Same}}}\n"
        let state = try GW.build(Self.gateway("invalid-default-client-validation-config", frontend: frontend, listeners: listeners) + Self.certificate
            + Self.caConfigMap("tls-validity-checks-per-port-ca-certificate"))
        let gw = "invalid-default-client-validation-config"
        #expect(state.listenerConditions(gw, listener: "http")[0...3] == ["Accepted=True/Accepted", "Conflicted=False/NoConflicts", "ResolvedRefs=True/ResolvedRefs", "Programmed=True/Programmed"])
        #expect(state.listenerConditions(gw, listener: "https")[0...3] == [
            "Accepted=False/NoValidCACertificate", "Conflicted=False/NoConflicts", "ResolvedRefs=False/InvalidCACertificateRef", "Programmed=False/Invalid",
        ])
        let key = NamespacedName(namespace: GW.infra, name: gw)
        #expect(state.tables.filter { $0.gateway == key }.map { "\($0.port) \($0.clientValidation == nil)" } == ["80 true"])
    }

    /// GatewayFrontendClientCertificateValidation and its InsecureFallback: each port its own CA
    /// (the perPort entry replaces the default), the mode carried to the proxy, and the Gateway's
    /// InsecureFrontendValidationMode condition while a validation allows the fallback.
    @Test func perPortReplacesTheDefaultAndTheFallbackIsAGatewayCondition() throws {
        func frontend(_ mode: String?) -> String {
            let m = mode.map { "mode: \($0), " } ?? ""
            return """
                default:
                  validation: {\(m)caCertificateRefs: [\(Self.ref("tls-validity-checks-ca-certificate"))]}
                perPort:
                - {port: 8443, tls: {validation: {\(m)caCertificateRefs: [\(Self.ref("tls-validity-checks-per-port-ca-certificate"))]}}}
                - {port: 9443, tls: {}}
                """
        }
        let listeners = Self.https("https", port: 443) + Self.https("https-with-hostname", port: 8443, hostname: "second-example.org") + Self.https("plain", port: 9443)
        let objects = Self.certificate + Self.caConfigMap("tls-validity-checks-ca-certificate")
            + Self.caConfigMap("tls-validity-checks-per-port-ca-certificate", pem: Self.perPortCA)
        let key = NamespacedName(namespace: GW.infra, name: "client-validation")
        for mode in [nil, "AllowValidOnly", "AllowInsecureFallback"] {
            let state = try GW.build(Self.gateway("client-validation", frontend: frontend(mode), listeners: listeners) + objects)
            let expectedMode: FrontendValidation.Mode = mode == "AllowInsecureFallback" ? .allowInsecureFallback : .allowValidOnly
            #expect(state.table(gateway: key, port: 443)?.clientValidation == FrontendValidation(
                mode: expectedMode, caCertificateRefs: [NamespacedName(namespace: GW.infra, name: "tls-validity-checks-ca-certificate")], caCertificates: Array(Self.ca.utf8)))
            #expect(state.table(gateway: key, port: 8443)?.clientValidation?.caCertificates == Array(Self.perPortCA.utf8))
            #expect(state.table(gateway: key, port: 8443)?.clientValidation?.mode == expectedMode)
            #expect(state.table(gateway: key, port: 9443) != nil && state.table(gateway: key, port: 9443)?.clientValidation == nil, "a perPort entry without validation turns the default off there")
            let insecure = state.status.gateways[key]?.conditions?.filter { $0.type == "InsecureFrontendValidationMode" }.map { "\($0.status)/\($0.reason ?? "")" }
            #expect(insecure == (mode == "AllowInsecureFallback" ? ["True/ConfigurationChanged"] : []), "mode \(mode ?? "default")")
            for listener in ["https", "https-with-hostname", "plain"] {
                #expect(state.listenerConditions("client-validation", listener: listener)[0...3] == [
                    "Accepted=True/Accepted", "Conflicted=False/NoConflicts", "ResolvedRefs=True/ResolvedRefs", "Programmed=True/Programmed",
                ])
            }
        }
    }

    /// One bad reference among good ones: ResolvedRefs False with its reason, but the listener is
    /// accepted and served with the CA certificates that resolved. A `ca.crt` that is not PEM
    /// certificates, or a ConfigMap without `ca.crt`, is InvalidCACertificateRef; the injected
    /// validator decides what is usable.
    @Test func partlyValidReferencesServeWithTheGoodOnesAndBadContentIsInvalidCACertificateRef() throws {
        let frontend = """
            default:
              validation:
                caCertificateRefs: [\(Self.ref("missing")), \(Self.ref("good"))]
            perPort:
            - {port: 8443, tls: {validation: {caCertificateRefs: [\(Self.ref("garbage")), \(Self.ref("no-ca"))]}}}
            - {port: 9443, tls: {validation: {caCertificateRefs: [\(Self.ref("refused"))]}}}
            """
        let listeners = Self.https("a", port: 443) + Self.https("b", port: 8443) + Self.https("c", port: 9443)
        let yaml = Self.gateway("partly", frontend: frontend, listeners: listeners) + Self.certificate + Self.caConfigMap("good")
            + Self.caConfigMap("garbage", pem: "Hello world") + Self.configMap("no-ca", data: "{other: x}") + Self.caConfigMap("refused", pem: Self.perPortCA)
        let options = GatewayOptions(caCertificateValidator: { pem in pem == Array(Self.perPortCA.utf8) ? "refused by the test" : FrontendValidation.structuralProblem(pem) })
        let state = try GW.build(yaml, options: options)
        #expect(state.listenerConditions("partly", listener: "a")[0...3] == [
            "Accepted=True/Accepted", "Conflicted=False/NoConflicts", "ResolvedRefs=False/InvalidCACertificateRef", "Programmed=True/Programmed",
        ])
        let key = NamespacedName(namespace: GW.infra, name: "partly")
        #expect(state.table(gateway: key, port: 443)?.clientValidation?.caCertificateRefs == [NamespacedName(namespace: GW.infra, name: "good")])
        #expect(state.listenerConditions("partly", listener: "b")[0...2] == [
            "Accepted=False/NoValidCACertificate", "Conflicted=False/NoConflicts", "ResolvedRefs=False/InvalidCACertificateRef",
        ])
        let messages = state.status.gateways[key]?.listeners?.reduce(into: [String: String]()) { out, l in
            out[l.name] = l.conditions.first { $0.type == "ResolvedRefs" }?.message
        }
        #expect(messages?["a"] == "ConfigMap \(GW.infra)/missing does not exist")
        #expect(messages?["b"]?.hasPrefix("ConfigMap \(GW.infra)/garbage: ca.crt holds no PEM block") == true, "\(messages?["b"] ?? "")")
        #expect(messages?["c"] == "ConfigMap \(GW.infra)/refused: ca.crt refused by the test")
        #expect(state.table(gateway: key, port: 8443) == nil && state.table(gateway: key, port: 9443) == nil)
    }

    /// A ListenerSet's HTTPS listener on a port of the Gateway takes the Gateway's validation for
    /// that port (one proxy port per Gateway port); with no valid CA certificate it is refused too.
    @Test func listenerSetListenersTakeTheirGatewaysValidation() throws {
        let frontend = """
            default:
              validation:
                caCertificateRefs: [\(Self.ref("tls-validity-checks-ca-certificate"))]
            perPort:
            - {port: 9443, tls: {validation: {caCertificateRefs: [\(Self.ref("missing"))]}}}
            """
        let gateway = Self.gateway("with-sets", frontend: frontend, listeners: Self.https("https", port: 443, hostname: "gw.example.org"))
            .replacingOccurrences(of: "  listeners:\n", with: "  allowedListeners: {namespaces: {from: Same}}\n  listeners:\n")
        let set = """
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: ListenerSet
            metadata: {name: extra, namespace: \(GW.infra)}
            spec:
              parentRef: {name: with-sets}
              listeners:
            \(Self.https("set-https", port: 443, hostname: "set.example.org"))\(Self.https("set-refused", port: 9443, hostname: "refused.example.org"))
            """
        let state = try GW.build(gateway + set + Self.certificate + Self.caConfigMap("tls-validity-checks-ca-certificate"))
        let key = NamespacedName(namespace: GW.infra, name: "with-sets")
        let table = try #require(state.table(gateway: key, port: 443))
        #expect(table.listeners.map(\.name).sorted() == ["https", "set-https"])
        #expect(table.clientValidation?.caCertificateRefs == [NamespacedName(namespace: GW.infra, name: "tls-validity-checks-ca-certificate")])
        #expect(state.table(gateway: key, port: 9443) == nil)
        let refused = state.status.listenerSets[NamespacedName(namespace: GW.infra, name: "extra")]?.listeners?.first { $0.name == "set-refused" }
        #expect(refused?.conditions.map { "\($0.type)=\($0.status)/\($0.reason ?? "")" }.filter { !$0.hasPrefix("Conflicted") } == [
            "Accepted=False/NoValidCACertificate", "ResolvedRefs=False/InvalidCACertificateRef", "Programmed=False/Invalid",
        ])
    }

    /// A ConfigMap change touches the Gateways whose frontend validation names it (default or per
    /// port; the namespace defaults to the Gateway's), a deletion too; the model keeps only `ca.crt`.
    @Test func configMapChangesTouchTheGatewaysNamingThemAndOnlyCACrtIsKept() throws {
        func gateway(_ name: String, namespace: String, defaultRef: ObjectReference? = nil, perPort: ObjectReference? = nil) -> Gateway {
            Gateway(
                metadata: ObjectMeta(name: name, namespace: namespace),
                spec: GatewaySpec(gatewayClassName: "portway", listeners: [], tls: GatewayWideTLSConfig(frontend: FrontendTLSConfig(
                    default: defaultRef.map { FrontendTLSSettings(validation: FrontendTLSValidation(caCertificateRefs: [$0])) },
                    perPort: perPort.map { [FrontendTLSPortConfig(port: 443, tls: FrontendTLSSettings(validation: FrontendTLSValidation(caCertificateRefs: [$0])))] }))))
        }
        var index = ClusterIndex(ClusterSnapshot(gateways: [
            gateway("local", namespace: "demo", defaultRef: ObjectReference(kind: "ConfigMap", name: "ca")),
            gateway("remote", namespace: "infra", perPort: ObjectReference(kind: "ConfigMap", name: "ca", namespace: "demo")),
            gateway("other", namespace: "infra", defaultRef: ObjectReference(kind: "ConfigMap", name: "ca")),
            gateway("secret", namespace: "demo", defaultRef: ObjectReference(kind: "Secret", name: "ca")),
        ]))
        let configMap = ConfigMap(metadata: ObjectMeta(name: "ca", namespace: "demo"), data: ["ca.crt": Self.ca])
        let key = ObjectKey(namespace: "demo", name: "ca")
        let touched = index.apply(.configMaps(key, [configMap]))
        #expect(touched.gateways == [ObjectKey(namespace: "demo", name: "local"), ObjectKey(namespace: "infra", name: "remote")])
        #expect(index.snapshot.configMaps == [configMap])
        #expect(index.apply(.configMaps(key, [])).gateways == touched.gateways, "a deletion touches them too")
        #expect(ClusterIndex.changes(from: ClusterSnapshot(), to: ClusterSnapshot(configMaps: [configMap])) == [.configMaps(key, [configMap])])
        #expect(ResourceRegistry.configMaps.selectors(WatchScope(nodeName: "n")) == ListSelectors())
        #expect(ResourceRegistry.configMaps.selectors(WatchScope(nodeName: "n", watchGateways: false)) == nil)
        #expect(ResourceRegistry.configMaps.forbiddenIsNone && !ResourceRegistry.configMaps.optional)

        // Decoding (as the informer and the file source do) keeps the name and ca.crt only.
        let json = #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ca","namespace":"demo","resourceVersion":"7","labels":{"a":"b"},"annotations":{"x":"y"}},"data":{"ca.crt":"PEM","big":"zzzz"}}"#
        let decoded = try JSONDecoder().decode(ConfigMap.self, from: Data(json.utf8))
        #expect(decoded == ConfigMap(metadata: ObjectMeta(name: "ca", namespace: "demo", resourceVersion: "7"), data: ["ca.crt": "PEM"]))
        let without = try JSONDecoder().decode(ConfigMap.self, from: Data(#"{"metadata":{"name":"x"},"data":{"other":"1"}}"#.utf8))
        #expect(without.data == [:] && without.caCertificate == nil)
        let files = try GW.load(Self.caConfigMap("from-file"))
        #expect(files.configMaps.map { "\($0.metadata.name) \($0.data?.keys.sorted() ?? []) \($0.metadata.labels == nil)" } == ["from-file [\"ca.crt\"] true"])
    }
}
