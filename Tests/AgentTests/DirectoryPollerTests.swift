@testable import Agent
import Foundation
import Logging
import Testing

@Suite("File source polling")
struct DirectoryPollerTests {
    @Test("yields on change only, keeps the last good state on a malformed file, recovers when fixed")
    func malformedFile() throws {
        let dir = try makeTempDirectory("portway-poller")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var poller = DirectoryPoller(directory: dir, logger: Logger(label: "test.poller"))
        #expect(poller.poll()?.services.count == 0, "the empty directory is a (complete) snapshot")
        #expect(poller.poll() == nil, "nothing changed")

        try write(serviceYAML(name: "web", clusterIP: "10.96.0.10", nodePort: 30080), to: dir + "/web.yaml")
        #expect(poller.poll()?.services.map(\.metadata.name) == ["web"])

        // A syntax error anywhere: nothing is yielded (the maps keep the last good state).
        try write(serviceYAML(name: "web", clusterIP: "10.96.0.10", nodePort: 30080) + "garbage: [\n", to: dir + "/web.yaml")
        try write(sliceYAML(service: "web", addresses: ["10.244.1.10"]), to: dir + "/web-slice.yaml")
        #expect(poller.poll() == nil)
        #expect(poller.poll() == nil)

        // Fixed: the snapshot has everything again.
        try write(serviceYAML(name: "web", clusterIP: "10.96.0.10", nodePort: 30081), to: dir + "/web.yaml")
        let polled = poller.poll()
        let snapshot = try #require(polled)
        #expect(snapshot.services.count == 1 && snapshot.endpointSlices.count == 1)
    }

    @Test("a directory that vanishes is a warning, not an empty snapshot")
    func missingDirectory() throws {
        let dir = try makeTempDirectory("portway-poller")
        var poller = DirectoryPoller(directory: dir, logger: Logger(label: "test.poller"))
        try write(serviceYAML(name: "web", clusterIP: "10.96.0.10", nodePort: 30080), to: dir + "/web.yaml")
        #expect(poller.poll()?.services.count == 1)
        try FileManager.default.removeItem(atPath: dir)
        #expect(poller.poll() == nil)
    }
}
