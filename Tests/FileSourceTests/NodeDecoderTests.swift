import KubeModels
import Testing
import Yams
@testable import FileSource

/// The YAML node decoder behind the loader: core-schema scalars, quoting, nulls and error paths.
@Suite struct NodeDecoderTests {
    private func decode<T: Decodable>(_ type: T.Type, _ yaml: String) throws -> T {
        try NodeDecoder.decode(type, from: try #require(try Yams.compose(yaml: yaml)))
    }

    @Test(arguments: [
        ("{name: a, port: 80}", ServicePort(name: "a", port: 80)),
        ("{port: 0x50, nodePort: 0o77}", ServicePort(port: 80, nodePort: 63)),
        ("{port: +81, targetPort: \"8080\"}", ServicePort(port: 81, targetPort: .string("8080"))),
        ("{port: 82, targetPort: 8080}", ServicePort(port: 82, targetPort: .int(8080))),
        ("{port: 83, targetPort: 'http', name: 84}", ServicePort(name: "84", port: 83, targetPort: .string("http"))),
        ("{port: 85, nodePort: null, protocol: ~, name: }", ServicePort(port: 85)),
        ("{port: -1, appProtocol: \"null\"}", ServicePort(port: -1, appProtocol: "null")),
        ("{port: 86, port: 87}", ServicePort(port: 87)),
    ])
    func scalars(_ yaml: String, _ expected: ServicePort) throws {
        #expect(try decode(ServicePort.self, yaml) == expected)
    }

    @Test(arguments: [
        ("{ready: true, serving: False, terminating: TRUE}", EndpointConditions(ready: true, serving: false, terminating: true)),
        ("{ready: ~}", EndpointConditions()),
    ])
    func booleans(_ yaml: String, _ expected: EndpointConditions) throws {
        #expect(try decode(EndpointConditions.self, yaml) == expected)
    }

    @Test(arguments: [
        ("{ready: yes}", "ready"), ("{ready: \"true\"}", "ready"), ("{port: \"80\"}", "port"), ("{port: 80.0}", "port"),
        ("{port: 99999999999999999999}", "port"), ("{port: 0x}", "port"), ("{port: [80]}", "port"),
    ])
    func mismatchesNameTheField(_ yaml: String, _ field: String) throws {
        let error = try #require(throws: DecodingError.self) {
            if field == "ready" { _ = try decode(EndpointConditions.self, yaml) } else { _ = try decode(ServicePort.self, yaml) }
        }
        guard case .typeMismatch(_, let context) = error else { Issue.record("\(error)"); return }
        #expect(context.codingPath.map(\.stringValue) == [field])
    }

    @Test func missingAndNullRequiredFields() throws {
        #expect {
            _ = try decode(ServicePort.self, "{name: a}")
        } throws: { error in
            guard case .keyNotFound(let key, _)? = error as? DecodingError else { return false }
            return key.stringValue == "port"
        }
        #expect(throws: DecodingError.self) { _ = try decode(ServicePort.self, "{port: null}") }
    }

    @Test func nestedPathsAndCollections() throws {
        let meta = try decode(ObjectMeta.self, "{name: n, generation: 7, labels: {a: b, c: \"1\"}}")
        #expect(meta.generation == 7)
        #expect(meta.labels == ["a": "b", "c": "1"])
        let error = try #require(throws: DecodingError.self) {
            _ = try decode(EndpointSlice.self, "{metadata: {name: s}, addressType: IPv4, endpoints: [{addresses: [a]}, {addresses: {}}]}")
        }
        guard case .typeMismatch(_, let context) = error else { Issue.record("\(error)"); return }
        #expect(DocumentLoader.fieldPath(context.codingPath) == "endpoints[1].addresses")
    }
}
