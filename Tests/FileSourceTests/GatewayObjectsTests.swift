import KubeModels
import Testing
@testable import FileSource

/// The file source reads the Gateway API objects, Namespaces and Secrets the route tables need.
@Suite struct GatewayObjectsLoaderTests {
    @Test func readsGatewayAPIKindsNamespacesAndSecrets() throws {
        let yaml = """
        apiVersion: gateway.networking.k8s.io/v1
        kind: GatewayClass
        metadata: {name: portway}
        spec: {controllerName: portway.io/gateway-controller}
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: public, namespace: demo, generation: 3}
        spec:
          gatewayClassName: portway
          listeners:
          - name: https
            port: 443
            protocol: HTTPS
            hostname: "*.example.com"
            tls:
              mode: Terminate
              certificateRefs: [{name: wildcard, namespace: certs}]
            allowedRoutes:
              namespaces: {from: Selector, selector: {matchLabels: {team: web}}}
              kinds: [{kind: HTTPRoute}]
        ---
        apiVersion: gateway.networking.k8s.io/v1beta1
        kind: HTTPRoute
        metadata: {name: mail, namespace: demo, creationTimestamp: "2026-11-24T11:13:15Z"}
        spec:
          parentRefs: [{name: public, sectionName: https, port: 443}]
          hostnames: ["mail.example.com"]
          rules:
          - matches: [{path: {type: PathPrefix, value: /inbox}, method: GET, headers: [{name: x-v, value: "2"}]}]
            filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-a, value: b}]}}]
            backendRefs: [{name: web, port: 80, weight: 2}]
        ---
        apiVersion: gateway.networking.k8s.io/v1beta1
        kind: ReferenceGrant
        metadata: {name: allow-demo, namespace: certs}
        spec:
          from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: demo}]
          to: [{group: "", kind: Secret, name: wildcard}]
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: demo, labels: {team: web}}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: wildcard, namespace: certs}
        type: kubernetes.io/tls
        data: {tls.crt: Y2VydA==, tls.key: a2V5}
        """
        let result = try FileSource.load(yaml: yaml, file: "gw.yaml")
        #expect(result.warnings == [])
        #expect(result.ignored == [])
        let snapshot = result.snapshot
        #expect(snapshot.gatewayClasses.map(\.spec.controllerName) == ["portway.io/gateway-controller"])
        let gateway = try #require(snapshot.gateways.first)
        #expect(gateway.metadata.generation == 3)
        let listener = try #require(gateway.spec.listeners.first)
        #expect(listener.tls?.certificateRefs == [SecretObjectReference(name: "wildcard", namespace: "certs")])
        #expect(listener.allowedRoutes?.namespaces?.selector?.matchLabels == ["team": "web"])
        let route = try #require(snapshot.httpRoutes.first)
        #expect(route.metadata.creationTimestamp == "2026-11-24T11:13:15Z")
        #expect(route.spec.parentRefs == [ParentReference(name: "public", sectionName: "https", port: 443)])
        #expect(route.spec.rules?.first?.matches?.first?.headers == [HTTPHeaderMatch(name: "x-v", value: "2")])
        #expect(route.spec.rules?.first?.backendRefs?.first?.weight == 2)
        #expect(snapshot.referenceGrants.first?.spec.to.first?.name == "wildcard")
        #expect(snapshot.namespaces.first?.metadata.labels == ["team": "web"])
        #expect(snapshot.secrets.first?.type == Secret.tlsType)
        #expect(snapshot.secrets.first?.data?["tls.key"] == "a2V5")
    }

    @Test func aDirectoryKeepsEveryGatewayKindOnce() throws {
        try withTemporaryDirectory { dir in
            let objects = """
            apiVersion: gateway.networking.k8s.io/v1
            kind: GatewayClass
            metadata: {name: portway}
            spec: {controllerName: portway.io/gateway-controller}
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: Gateway
            metadata: {name: public, namespace: demo}
            spec: {gatewayClassName: portway, listeners: [{name: http, port: 80, protocol: HTTP}]}
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: r, namespace: demo}
            spec: {parentRefs: [{name: public}]}
            ---
            apiVersion: gateway.networking.k8s.io/v1beta1
            kind: ReferenceGrant
            metadata: {name: g, namespace: demo}
            spec: {from: [], to: []}
            ---
            apiVersion: v1
            kind: Namespace
            metadata: {name: demo}
            ---
            apiVersion: v1
            kind: Secret
            metadata: {name: cert, namespace: demo}
            type: kubernetes.io/tls
            """
            try write(objects, to: "a.yaml", in: dir)
            try write("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: public, namespace: demo}\nspec: {gatewayClassName: other, listeners: []}\n", to: "b.yaml", in: dir)
            let result = try FileSource.load(directory: dir)
            let s = result.snapshot
            #expect([s.gatewayClasses.count, s.gateways.count, s.httpRoutes.count, s.referenceGrants.count, s.namespaces.count, s.secrets.count] == [1, 1, 1, 1, 1, 1])
            #expect(s.gateways.first?.spec.gatewayClassName == "portway")
            #expect(s.objectCount == 6)
            #expect(result.warnings.map(\.message) == ["also defined in \(dir)/a.yaml; this definition is ignored"])
        }
    }

    @Test func aGatewayWithoutListenersIsAWarningNotACrash() throws {
        let yaml = """
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: broken, namespace: demo}
        spec: {gatewayClassName: portway}
        """
        let result = try FileSource.load(yaml: yaml, file: "gw.yaml")
        #expect(result.snapshot.gateways.isEmpty)
        #expect(result.warnings.map(\.description) == ["gw.yaml:4: Gateway demo/broken: spec.listeners: required field is missing; object ignored"])
    }

    @Test func objectsOfOtherGroupsWithGatewayKindNamesAreIgnored() throws {
        let yaml = """
        apiVersion: example.org/v1
        kind: Gateway
        metadata: {name: other, namespace: demo}
        """
        let result = try FileSource.load(yaml: yaml, file: "gw.yaml")
        #expect(result.snapshot.gateways.isEmpty)
        #expect(result.ignored.map(\.kind) == ["Gateway"])
    }
}
