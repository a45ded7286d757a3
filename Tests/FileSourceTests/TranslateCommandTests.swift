import Foundation
import LoadBalancer
import Testing
@testable import FileSource
import Views

/// `portway translate` as the executable runs it (`FileSource.translate`), on the recorded objects.
@Suite struct TranslateCommandTests {
    private func recordedObjects() throws -> String {
        try #require(
            FileManager.default.fileExists(atPath: tracesDirectory + "/objs.yaml"),
            "the recorded objects must be at \(tracesDirectory)/objs.yaml (../shared beside the package)"
        )
        return tracesDirectory
    }

    @Test(.enabled(if: recordedObjectsPresent, "needs ../shared/k8s-api-traces/objs.yaml")) func recordedObjectsGiveTheNodePortFrontends() throws {
        let output = try Command.translate(TranslateRequest(directory: try recordedObjects(), nodeName: "node-a", nodeIPs: ["192.0.2.10"]))
        #expect(output.stderr == "")
        #expect(output.state.warnings == [])
        Golden.check(output.stdout, "recorded-objects.translate.json")
    }

    @Test(.enabled(if: recordedObjectsPresent, "needs ../shared/k8s-api-traces/objs.yaml")) func recordedObjectsAsATable() throws {
        let output = try Command.translate(TranslateRequest(
            directory: try recordedObjects(), nodeName: "node-a", nodeIPs: ["192.0.2.10"], format: .table
        ))
        #expect(output.stdout == """
        SERVICE ADDRESS           BACKEND ADDRESS (REVNAT_ID) (SLOT)
        0.0.0.0:30080/TCP (0)     0.0.0.0:0 (-) (0) [NodePort, non-routable]
        0.0.0.0:30080/TCP (1)     10.244.1.10:8080/TCP (-) (1)
        0.0.0.0:30080/TCP (2)     10.244.2.11:8080/TCP (-) (2)
        0.0.0.0:30080/TCP (3)     10.244.2.12:8080/TCP (-) (3) [terminating]
        192.0.2.10:30080/TCP (0)  0.0.0.0:0 (-) (0) [NodePort]
        192.0.2.10:30080/TCP (1)  10.244.1.10:8080/TCP (-) (1)
        192.0.2.10:30080/TCP (2)  10.244.2.11:8080/TCP (-) (2)
        192.0.2.10:30080/TCP (3)  10.244.2.12:8080/TCP (-) (3) [terminating]

        """)
        #expect(output.stderr == "")
    }

    @Test(.enabled(if: recordedObjectsPresent, "needs ../shared/k8s-api-traces/objs.yaml")) func recordedObjectsWithTheEndpointsSource() throws {
        let output = try Command.translate(TranslateRequest(
            directory: try recordedObjects(), nodeName: "node-a", nodeIPs: ["192.0.2.10", "192.0.2.11"], endpointsSource: .endpoints
        ))
        #expect(output.state.entries.map(\.frontend.description) == ["0.0.0.0:30080/TCP", "192.0.2.10:30080/TCP", "192.0.2.11:30080/TCP"])
        for entry in output.state.entries {
            #expect(entry.backends.map { "\($0.address):\($0.port) \($0.state.rawValue)" } == ["10.244.1.10:8080 active", "10.244.2.11:8080 active"])
        }
    }

    @Test func warningsGoToJSONOrStandardError() throws {
        try withTemporaryDirectory { dir in
            try write("""
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: demo}
            spec: {clusterIP: 10.96.0.10, ports: [{name: a, port: 70000}, {name: b, port: 80}]}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: broken, namespace: demo}
            spec: {ports: "none"}
            """, to: "svc.yaml", in: dir)
            let json = try Command.translate(TranslateRequest(directory: dir, nodeName: "node-a"))
            #expect(json.stderr == "")
            #expect(json.stdout.contains(#""warnings": ["#))
            let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
            let warnings = parsed?["warnings"] as? [[String: String]]
            #expect(warnings == [
                ["object": "Service demo/broken", "field": "spec.ports", "message": "\(dir)/svc.yaml:9: expected a list, found \"none\"; object ignored"],
                ["object": "Service demo/web", "field": "spec.ports[0].port", "message": "port 70000 is out of range 1-65535; port ignored"],
            ])
            #expect((parsed?["services"] as? [Any])?.count == 1)

            let table = try Command.translate(TranslateRequest(directory: dir, nodeName: "node-a", format: .table))
            #expect(table.stderr == """
            warning: Service demo/broken: spec.ports: \(dir)/svc.yaml:9: expected a list, found "none"; object ignored
            warning: Service demo/web: spec.ports[0].port: port 70000 is out of range 1-65535; port ignored

            """)
            #expect(table.stdout.hasPrefix("SERVICE ADDRESS"))
        }
    }

    @Test func nodeAddressesComeFromTheNodeObjectWithoutNodeIP() throws {
        try withTemporaryDirectory { dir in
            try write("""
            apiVersion: v1
            kind: Node
            metadata: {name: node-a}
            status: {addresses: [{type: Hostname, address: node-a}, {type: InternalIP, address: 192.0.2.10}, {type: ExternalIP, address: 203.0.113.1}]}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: demo}
            spec: {type: NodePort, ports: [{port: 80, nodePort: 30080}]}
            """, to: "objs.yaml", in: dir)
            let output = try Command.translate(TranslateRequest(directory: dir, nodeName: "node-a"))
            #expect(output.state.entries.map(\.frontend.description) == ["0.0.0.0:30080/TCP", "192.0.2.10:30080/TCP", "203.0.113.1:30080/TCP"])
            let explicit = try Command.translate(TranslateRequest(directory: dir, nodeName: "node-a", nodeIPs: ["198.51.100.1"]))
            #expect(explicit.state.entries.map(\.frontend.description) == ["0.0.0.0:30080/TCP", "198.51.100.1:30080/TCP"])
        }
    }

    @Test(arguments: ["192.0.2.300", "node-a", "", "192.0.2.10/24"])
    func malformedNodeIPIsAnError(_ ip: String) throws {
        #expect(throws: TranslateError.invalidNodeIP(ip)) {
            try Command.translate(TranslateRequest(directory: tracesDirectory, nodeName: "node-a", nodeIPs: ["192.0.2.10", ip]))
        }
    }

    @Test func unreadableDirectoryIsAnError() {
        #expect(throws: TranslateError.load(.unreadableDirectory(path: "/nonexistent/portway", reason: "no such directory"))) {
            try Command.translate(TranslateRequest(directory: "/nonexistent/portway", nodeName: "node-a"))
        }
        #expect(TranslateError.invalidNodeIP("x").description == "--node-ip \"x\" is not an IP address")
    }
}
