import Agent
import FileSource
import Foundation
import KubeAPI
import KubeAPITestSupport
import KubeModels
import LoadBalancer
import Testing

/// TLS Secrets in the cluster source, against a real kube-apiserver with the upstream Gateway API
/// CRDs. Skipped, saying why, without KUBEBUILDER_ASSETS or ../shared/gateway-api-crds.
@Suite(
    "envtest: TLS Secrets in the source", .serialized,
    .enabled(if: EnvtestControlPlane.availableOrPrintSkip(), "needs KUBEBUILDER_ASSETS with kube-apiserver and etcd"),
    .enabled(if: SharedFixtures.gatewayCRDs, "needs ../shared/gateway-api-crds"))
struct ClusterListEnvtestTests {
    static func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

    @Test("the cluster source watches TLS Secrets only: in the first snapshot and as changes; an Opaque Secret never arrives")
    func tlsSecretsFlowThroughTheSource() async throws {
        let plane = try await EnvtestControlPlane.start(crdDirectory: crdDirectory)
        defer { plane.stop() }
        let admin = KubeClient(config: plane.clusterConfig())
        _ = try await admin.create(Namespace(metadata: ObjectMeta(name: "demo")))
        let cert = ["tls.crt": Self.base64("cert"), "tls.key": Self.base64("key")]
        _ = try await admin.create(Secret(metadata: ObjectMeta(name: "first-tls", namespace: "demo"), type: Secret.tlsType, data: cert))
        _ = try await admin.create(Secret(metadata: ObjectMeta(name: "first-opaque", namespace: "demo"), type: "Opaque", data: ["k": Self.base64("v")]))

        let source = KubeClusterSource(client: admin, scope: WatchScope(nodeName: "node-a", watchNode: false), informerOptions: fastOptions(SleepRecorder()))
        var events = FoldedEvents(source)
        let first = try #require(await events.next())
        #expect(events.lastWasSnapshot)
        #expect(first.secrets.map(\.metadata.name) == ["first-tls"])
        #expect(first.secrets.first?.data?["tls.crt"] == Self.base64("cert"))

        // An Opaque Secret, then a TLS one: only the TLS one arrives, as a change of its key.
        _ = try await admin.create(Secret(metadata: ObjectMeta(name: "later-opaque", namespace: "demo"), type: "Opaque", data: ["k": Self.base64("v")]))
        _ = try await admin.create(Secret(metadata: ObjectMeta(name: "later-tls", namespace: "demo"), type: Secret.tlsType, data: cert))
        var seen: [ClusterChange] = []
        var state = first
        while !state.secrets.contains(where: { $0.metadata.name == "later-tls" }) {
            state = try #require(await events.next())
            seen += events.lastChanges
        }
        #expect(state.secrets.map(\.metadata.name) == ["first-tls", "later-tls"])
        let secretKeys = seen.compactMap { change -> String? in
            if case .secrets(let key, _) = change { return key.description }
            return nil
        }
        #expect(secretKeys == ["demo/later-tls"], "no change for the Opaque Secret: \(seen)")

        // Its deletion arrives too.
        try await admin.delete(Secret.self, name: "first-tls", namespace: "demo")
        while state.secrets.contains(where: { $0.metadata.name == "first-tls" }) { state = try #require(await events.next()) }
        #expect(state.secrets.map(\.metadata.name) == ["later-tls"])
    }
}
