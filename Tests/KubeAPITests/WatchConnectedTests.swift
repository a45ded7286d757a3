import Foundation
import KubeAPI
import KubeAPITestSupport
import KubeModels
import Testing

/// "watching again" was logged before the watch connection was made (issue 12): the informer
/// entered `watching` and then failed to connect. Now `watching` means the server answered 200.
@Suite("Informer: watching only once the watch is connected")
struct WatchConnectedTests {
    @Test("refused watches back off without passing through watching; the connected one enters it")
    func refusedWatchesAreNotWatching() async throws {
        let server = try await TestAPIServer.started()
        try server.create("services", object: service("s1"))
        server.inject(.status(503), verb: "watch", resource: "services", count: 3)
        let recorder = SleepRecorder()
        let log = EventLog<Service>()
        let informer = Informer<Service>(
            client: KubeClient(config: server.clusterConfig()), options: fastOptions(recorder),
            onStateChange: { log.record($0) }, handler: { log.record($0) })
        let task = Task { await informer.run() }
        try await eventually("connected after three refusals") {
            server.requests(verb: "watch", resource: "services").count == 4 && server.openWatches == 1
        }
        try await eventually("watching") { log.allStates.last.map { if case .watching = $0 { true } else { false } } ?? false }
        let names = log.allStates.map { state -> String in
            switch state {
            case .watching: "watching"
            case .backingOff: "backingOff"
            default: state.description
            }
        }
        #expect(names == ["idle", "listing", "backingOff", "backingOff", "backingOff", "watching"])
        task.cancel()
        await task.value
        try await server.stop()
    }
}
