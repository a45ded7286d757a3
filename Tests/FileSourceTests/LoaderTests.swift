import Foundation
import KubeModels
import Testing
@testable import FileSource
import Views

@Suite struct YAMLLoaderTests {
    @Test func multiDocumentFileWithListAndIgnoredKinds() throws {
        let yaml = """
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: demo}
        spec:
          type: NodePort
          clusterIPs: [10.96.0.10]
          ports:
          - {name: http, port: 80, targetPort: http-alt, nodePort: 30080}
          - {name: raw, port: 81, targetPort: "8081", protocol: UDP}
        ---
        # an empty document follows
        ---
        apiVersion: v1
        kind: List
        items:
        - apiVersion: discovery.k8s.io/v1
          kind: EndpointSlice
          metadata:
            name: web-1
            namespace: demo
            labels: {kubernetes.io/service-name: web}
          addressType: IPv4
          ports: [{name: http, port: 8080}]
          endpoints:
          - addresses: [10.244.1.10]
            conditions: {ready: true}
            nodeName: node-a
        - apiVersion: v1
          kind: ConfigMap
          metadata: {name: settings, namespace: demo}
          data: {a: b}
        - apiVersion: v1
          kind: Node
          metadata: {name: node-a}
          status:
            addresses: [{type: InternalIP, address: 192.0.2.10}, {type: Hostname, address: node-a}]
        ---
        apiVersion: v1
        kind: ServiceList
        items:
        - apiVersion: v1
          kind: Service
          metadata: {name: api, namespace: demo}
          spec: {clusterIP: 10.96.0.11, ports: [{port: 443}]}
        ---
        apiVersion: v1
        kind: Endpoints
        metadata: {name: web, namespace: demo}
        subsets:
        - addresses: [{ip: 10.244.1.10, nodeName: node-a}]
          ports: [{name: http, port: 8080}]
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: public, namespace: demo}
        ---
        apiVersion: example.org/v1
        kind: Service
        metadata: {name: not-core}
        """
        let result = try FileSource.load(yaml: yaml, file: "objs.yaml")
        #expect(result.warnings == [])
        #expect(result.snapshot.services.map(\.metadata.name) == ["web", "api"])
        let web = try #require(result.snapshot.services.first)
        #expect(web.spec.type == "NodePort")
        #expect(web.spec.clusterIPs == ["10.96.0.10"])
        #expect(web.spec.ports?.map(\.targetPort) == [.string("http-alt"), .string("8081")])
        #expect(web.spec.ports?.map(\.nodePort) == [30080, nil])
        #expect(web.spec.ports?.map(\.protocol) == [nil, "UDP"])
        let slice = try #require(result.snapshot.endpointSlices.first)
        #expect(slice.metadata.labels?[EndpointSlice.serviceNameLabel] == "web")
        #expect(slice.endpoints?.first?.conditions?.ready == true)
        #expect(slice.endpoints?.first?.nodeName == "node-a")
        #expect(result.snapshot.endpoints.first?.subsets?.first?.addresses?.first?.ip == "10.244.1.10")
        #expect(result.snapshot.nodes.first?.status?.addresses?.first?.address == "192.0.2.10")
        // ConfigMaps are read (client CA certificates), keeping only `ca.crt`.
        #expect(result.snapshot.configMaps.map { "\($0.metadata.name) \($0.data ?? ["-": "-"])" } == ["settings [:]"])
        #expect(result.ignored.map { "\($0.apiVersion) \($0.kind) \($0.name) line \($0.line ?? 0)" } == [
            "apps/v1 Deployment public line 53",
            "example.org/v1 Service not-core line 57",
        ])
    }

    @Test(arguments: [
        ("kind: Service\nmetadata:\n  name: web\n\tspec: {}\n", 4),
        ("a: 1\n---\nkind: Service\nmetadata: {name: [web}\n", 4),
        ("kind: Service\nspec:\n  ports:\n  - port: 80\n   name: x\n", 5),
        ("kind: \"Service\nmetadata: {}\n", 3),
    ])
    func syntaxErrorNamesFileAndLine(_ yaml: String, _ line: Int) {
        #expect {
            _ = try FileSource.load(yaml: yaml, file: "dir/bad.yaml")
        } throws: { error in
            guard case .syntax(let file, let reported, _, let problem)? = error as? FileSourceError else { return false }
            return file == "dir/bad.yaml" && reported == line && !problem.isEmpty
        }
    }

    @Test func byteOrderMarkAndBadListsAreHandled() throws {
        let result = try FileSource.load(yaml: "\u{FEFF}apiVersion: v1\nkind: Node\nmetadata: {name: bom}\n---\nkind: List\nitems: {a: b}\n", file: "l.yaml")
        #expect(result.snapshot.nodes.map(\.metadata.name) == ["bom"])
        #expect(result.warnings.map(\.description) == ["l.yaml:6: List: items: not a list; ignored"])
    }

    @Test func syntaxErrorDescription() throws {
        let error = FileSourceError.syntax(file: "m/a.yaml", line: 3, column: 7, problem: "found character that cannot start any token")
        #expect(error.description == "YAML syntax error in m/a.yaml:3:7: found character that cannot start any token")
    }

    @Test func decodeErrorsBecomeWarningsAndLoadingGoesOn() throws {
        let yaml = """
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: demo}
        spec:
          ports:
          - {name: http, port: 80}
          - name: bad
            port: eighty
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: web-1, namespace: demo}
        endpoints: []
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: node-a}
        status: {addresses: [{type: InternalIP, address: [1, 2]}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: ok}
        spec: {sessionAffinity: [ClientIP]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: fine, namespace: demo}
        spec: {ports: [{port: 80}]}
        ---
        just a scalar
        ---
        apiVersion: v1
        metadata: {name: kindless}
        """
        let result = try FileSource.load(yaml: yaml, file: "objs.yaml")
        #expect(result.snapshot.services.map(\.metadata.name) == ["fine"])
        #expect(result.snapshot.endpointSlices.isEmpty)
        #expect(result.snapshot.nodes.isEmpty)
        #expect(result.warnings.map { "\($0.location) \($0.object) \($0.field)" } == [
            "objs.yaml:8 Service demo/web spec.ports[1].port",
            "objs.yaml:10 EndpointSlice demo/web-1 addressType",
            "objs.yaml:18 Node node-a status.addresses[0].address",
            "objs.yaml:23 Service default/ok spec.sessionAffinity",
            "objs.yaml:30 document ",
            "objs.yaml:32 document kind",
        ])
        #expect(result.warnings[0].message == "expected a number, found \"eighty\"; object ignored")
        #expect(result.warnings[1].message == "required field is missing; object ignored")
        #expect(result.warnings[2].message == "expected a single value, found a list; object ignored")
        #expect(result.warnings[0].description == "objs.yaml:8: Service demo/web: spec.ports[1].port: expected a number, found \"eighty\"; object ignored")
        #expect(result.warnings[0].translationWarning.description
            == "Service demo/web: spec.ports[1].port: objs.yaml:8: expected a number, found \"eighty\"; object ignored")
    }

    @Test func directoryIsReadRecursivelyInPathOrder() throws {
        try withTemporaryDirectory { dir in
            let svc = { (name: String) in "apiVersion: v1\nkind: Service\nmetadata: {name: \(name), namespace: demo}\nspec: {ports: [{port: 80}]}\n" }
            try write(svc("c"), to: "b/c.yml", in: dir)
            try write(svc("a"), to: "a.yaml", in: dir)
            try write(svc("b"), to: "b/a.YAML", in: dir)
            try write(svc("z"), to: "a.json", in: dir)
            try write(svc("hidden"), to: ".hidden.yaml", in: dir)
            try write(svc("hidden2"), to: "..data/x.yaml", in: dir)
            try write("kind: Service\nmetadata: {name: broken}\nspec: {ports: [{port: x}]}\n", to: "d/broken.yaml", in: dir)
            let result = try FileSource.load(directory: dir)
            #expect(result.snapshot.services.map(\.metadata.name) == ["a", "b", "c"])
            #expect(result.warnings.map(\.file) == ["\(dir)/d/broken.yaml"])
            #expect(result.warnings.first?.line == 3)
        }
    }

    @Test func unreadableDirectoriesAreErrors() throws {
        try withTemporaryDirectory { dir in
            try write("kind: Service\n", to: "file.yaml", in: dir)
            #expect(throws: FileSourceError.unreadableDirectory(path: "\(dir)/missing", reason: "no such directory")) {
                try FileSource.load(directory: "\(dir)/missing")
            }
            #expect(throws: FileSourceError.unreadableDirectory(path: "\(dir)/file.yaml", reason: "not a directory")) {
                try FileSource.load(directory: "\(dir)/file.yaml")
            }
        }
    }

    @Test func loadFileAndMissingFile() throws {
        try withTemporaryDirectory { dir in
            try write("apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n", to: "n.yaml", in: dir)
            #expect(try FileSource.load(file: "\(dir)/n.yaml").snapshot.nodes.map(\.metadata.name) == ["n1"])
            #expect {
                try FileSource.load(file: "\(dir)/none.yaml")
            } throws: { error in
                guard case .unreadableFile(let path, _)? = error as? FileSourceError else { return false }
                return path == "\(dir)/none.yaml"
            }
        }
    }

    @Test func fingerprintChangesWithTheFiles() throws {
        try withTemporaryDirectory { dir in
            try write("kind: Service\n", to: "a.yaml", in: dir)
            let first = try FileSource.fingerprint(directory: dir)
            #expect(first.files.map(\.path) == ["\(dir)/a.yaml"])
            #expect(try FileSource.fingerprint(directory: dir) == first)
            try write("kind: Service\nmetadata: {name: longer}\n", to: "a.yaml", in: dir)
            let second = try FileSource.fingerprint(directory: dir)
            #expect(second != first)
            try write("kind: Node\n", to: "sub/b.yml", in: dir)
            #expect(try FileSource.fingerprint(directory: dir).files.map(\.path) == ["\(dir)/a.yaml", "\(dir)/sub/b.yml"])
        }
    }

    @Test func addingAKindIsOneTableEntry() {
        #expect(Set(FileSource.kinds.keys) == [
            "Service", "EndpointSlice", "Endpoints", "Node", "Namespace", "Secret", "GatewayClass", "Gateway", "HTTPRoute", "ReferenceGrant", "ListenerSet",
            "ConfigMap", "BackendTLSPolicy",
        ])
        #expect(FileSource.kinds["HTTPRoute"]?.matches(apiVersion: "gateway.networking.k8s.io/v1beta1") == true)
        #expect(FileSource.kinds["EndpointSlice"]?.matches(apiVersion: "discovery.k8s.io/v1") == true)
        #expect(FileSource.kinds["EndpointSlice"]?.matches(apiVersion: "v1") == false)
        #expect(FileSource.kinds["Service"]?.matches(apiVersion: "v1") == true)
    }
}
