import Foundation
import KubeModels
import Testing
@testable import LoadBalancer
import Views

@Suite struct JSONValueTests {
    @Test(arguments: [
        (JSONValue.null, "null"), (.bool(true), "true"), (.bool(false), "false"), (.int(-42), "-42"),
        (.string("plain"), "\"plain\""), (.string("a\"b\\c/d"), "\"a\\\"b\\\\c/d\""),
        (.string("line\nfeed\ttab\r\u{08}\u{0C}"), "\"line\\nfeed\\ttab\\r\\b\\f\""),
        (.string("\u{01}\u{1F}"), "\"\\u0001\\u001f\""), (.string("é→😀"), "\"é→😀\""),
        (.array([]), "[]"), (.object([:]), "{}"),
        (.array([.int(1), .null, .string("x")]), "[1,null,\"x\"]"),
        (.object(["b": .int(1), "a": .array([.bool(true)])]), "{\"b\":1,\"a\":[true]}"),
        (.integer(UInt16(8080)), "8080"), (.integer(Optional<UInt32>.none), "null"),
    ])
    func compact(_ value: JSONValue, _ expected: String) {
        #expect(value.rendered(pretty: false) == expected)
    }

    @Test func prettyIndentsTwoSpaces() {
        let value = JSONValue.object(["a": .array([.int(1), .object(["b": .null])]), "c": .array([]), "d": .object([:])])
        #expect(value.rendered() == """
        {
          "a": [
            1,
            {
              "b": null
            }
          ],
          "c": [],
          "d": {}
        }
        """)
    }

    @Test func escapedStringsParseBackToTheSameText() throws {
        let texts = ["q\"uote", "back\\slash", "\u{00}\u{07}\u{1B}", "mixé\n\u{2028}", ""]
        let rendered = JSONValue.array(texts.map { .string($0) }).rendered(pretty: false)
        let parsed = try JSONSerialization.jsonObject(with: Data(rendered.utf8)) as? [String]
        #expect(parsed == texts)
    }

    @Test func objectMembersKeepOrderAndCanBeEdited() {
        var o: JSONObject = ["frontend": .int(1), "type": .int(2), "backends": .int(3)]
        o["type"] = .string("x")
        o["extra"] = .bool(true)
        o.insert("serviceID", .int(7), before: "frontend")
        o.insert("revNatID", .int(8), before: "missing")
        o["backends"] = nil
        #expect(o.members.map(\.key) == ["serviceID", "frontend", "type", "extra", "revNatID"])
        #expect(o["type"] == .string("x"))
        #expect(o["backends"] == nil)
    }
}

/// A small state with every JSON field used: NodePort with Local, affinity, terminating backend, an L7LB entry.
private func sampleState() -> DesiredL4State {
    let ref = ServiceReference(namespace: "demo", name: "web", port: 80, portName: "http")
    let backends = [
        Backend(address: IPAddress("10.244.1.10")!, port: 8080, proto: .tcp, state: .active, nodeName: "node-a"),
        Backend(address: IPAddress("10.244.2.12")!, port: 8080, proto: .tcp, state: .terminating, nodeName: "node-b"),
    ]
    return DesiredL4State(
        entries: [
            FrontendEntry(
                frontend: Frontend(address: IPAddress("192.0.2.10")!, port: 30080, proto: .tcp), type: .nodePort,
                flags: [.nodePort, .local, .sessionAffinity], affinityTimeoutSeconds: 60, service: ref, backends: backends
            ),
            FrontendEntry(
                frontend: Frontend(address: IPAddress("10.96.0.10")!, port: 53, proto: .udp), type: .clusterIP,
                flags: [.clusterIP, .nonRoutable], service: ServiceReference(namespace: "kube-system", name: "kube-dns", port: 53, portName: "dns"),
                backends: [Backend(address: IPAddress("10.244.0.141")!, port: 53, proto: .udp)]
            ),
            FrontendEntry(
                frontend: Frontend(address: .v4(.any), port: 30510, proto: .tcp), type: .nodePort,
                flags: [.nodePort, .nonRoutable, .l7LoadBalancer], l7ProxyPort: 10285,
                service: ServiceReference(namespace: "demo", name: "gw", port: 80), backends: []
            ),
        ],
        warnings: [TranslationWarning(object: "Service demo/bad", field: "spec.ports[0].port", message: "port 0 is \"out\" of range")]
    )
}

@Suite struct StateRenderingTests {
    @Test func translateJSONGolden() {
        let expected = """
        {"services":[\
        {"frontend":{"address":"0.0.0.0","port":30510,"protocol":"TCP","scope":"external"},"type":"NodePort",\
        "flags":["NodePort","non-routable","l7-load-balancer"],"l7ProxyPort":10285,"affinityTimeoutSeconds":null,\
        "service":{"namespace":"demo","name":"gw","port":80},"backends":[]},\
        {"frontend":{"address":"10.96.0.10","port":53,"protocol":"UDP","scope":"external"},"type":"ClusterIP",\
        "flags":["ClusterIP","non-routable"],"l7ProxyPort":null,"affinityTimeoutSeconds":null,\
        "service":{"namespace":"kube-system","name":"kube-dns","port":53},\
        "backends":[{"address":"10.244.0.141","port":53,"protocol":"UDP","state":"active"}]},\
        {"frontend":{"address":"192.0.2.10","port":30080,"protocol":"TCP","scope":"external"},"type":"NodePort",\
        "flags":["NodePort","Local","sessionAffinity"],"l7ProxyPort":null,"affinityTimeoutSeconds":60,\
        "service":{"namespace":"demo","name":"web","port":80},\
        "backends":[{"address":"10.244.1.10","port":8080,"protocol":"TCP","state":"active"},\
        {"address":"10.244.2.12","port":8080,"protocol":"TCP","state":"terminating"}]}],\
        "warnings":[{"object":"Service demo/bad","field":"spec.ports[0].port","message":"port 0 is \\"out\\" of range"}]}
        """
        #expect(JSONValue.object(json(for: sampleState())).rendered(pretty: false) == expected)
    }

    @Test func prettyJSONIsValidAndMatchesCompact() throws {
        let object = JSONValue.object(json(for: sampleState()))
        let pretty = try JSONSerialization.jsonObject(with: Data(object.rendered().utf8)) as? NSDictionary
        let compact = try JSONSerialization.jsonObject(with: Data(object.rendered(pretty: false).utf8)) as? NSDictionary
        #expect(pretty != nil)
        #expect(pretty == compact)
        #expect(object.rendered().hasPrefix("{\n  \"services\": [\n    {\n      \"frontend\": {\n        \"address\": \"0.0.0.0\","))
    }

    @Test func emptyState() {
        #expect(JSONValue.object(json(for: DesiredL4State(entries: []))).rendered(pretty: false) == #"{"services":[],"warnings":[]}"#)
    }

    @Test func entryRendererTakesPerBackendExtras() {
        let entry = sampleState().entries[2]
        var object = json(for: entry) { index, backend in
            var o = json(for: backend)
            o["slot"] = .int(index + 1)
            return o
        }
        object.insert("serviceID", .int(12), before: "frontend")
        let text = JSONValue.object(object).rendered(pretty: false)
        #expect(text.hasPrefix(#"{"serviceID":12,"frontend":"#))
        #expect(text.contains(#""state":"active","slot":1}"#))
        #expect(text.contains(#""state":"terminating","slot":2}"#))
    }

    @Test func tableGolden() {
        #expect(renderLBTable(sampleState()) == """
        SERVICE ADDRESS           BACKEND ADDRESS (REVNAT_ID) (SLOT)
        0.0.0.0:30510/TCP (0)     0.0.0.0:0 (-) (0) [NodePort, non-routable, l7-load-balancer] (L7LB Proxy Port: 10285)
        10.96.0.10:53/UDP (0)     0.0.0.0:0 (-) (0) [ClusterIP, non-routable]
        10.96.0.10:53/UDP (1)     10.244.0.141:53/UDP (-) (1)
        192.0.2.10:30080/TCP (0)  0.0.0.0:0 (-) (0) [NodePort, Local, sessionAffinity]
        192.0.2.10:30080/TCP (1)  10.244.1.10:8080/TCP (-) (1)
        192.0.2.10:30080/TCP (2)  10.244.2.12:8080/TCP (-) (2) [terminating]

        """)
    }

    @Test func tableWithIDsFromAMapReader() {
        let state = sampleState()
        let rows = [
            LBTableRow(entry: state.entries[1], revNatID: 3, slots: [1]),
            LBTableRow(entry: state.entries[2], revNatID: 735, slots: [4, 7]),
            LBTableRow(entry: state.entries[0], revNatID: 736),
        ]
        #expect(renderLBTable(rows) == """
        SERVICE ADDRESS           BACKEND ADDRESS (REVNAT_ID) (SLOT)
        10.96.0.10:53/UDP (0)     0.0.0.0:0 (3) (0) [ClusterIP, non-routable]
        10.96.0.10:53/UDP (1)     10.244.0.141:53/UDP (3) (1)
        192.0.2.10:30080/TCP (0)  0.0.0.0:0 (735) (0) [NodePort, Local, sessionAffinity]
        192.0.2.10:30080/TCP (4)  10.244.1.10:8080/TCP (735) (4)
        192.0.2.10:30080/TCP (7)  10.244.2.12:8080/TCP (735) (7) [terminating]
        0.0.0.0:30510/TCP (0)     0.0.0.0:0 (736) (0) [NodePort, non-routable, l7-load-balancer] (L7LB Proxy Port: 10285)

        """)
    }

    @Test func emptyTableIsTheHeader() {
        #expect(renderLBTable(DesiredL4State(entries: [])) == "SERVICE ADDRESS  BACKEND ADDRESS (REVNAT_ID) (SLOT)\n")
    }
}
