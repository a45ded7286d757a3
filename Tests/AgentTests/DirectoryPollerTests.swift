@testable import Agent
import Foundation
import Logging
import Testing

@Suite("File source polling")
struct DirectoryPollerTests {
    @Test("yields on change only; a malformed file keeps its last good content while other files' changes apply")
    func malformedFile() throws {
        let dir = try makeTempDirectory("portway-poller")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var poller = DirectoryPoller(directory: dir, logger: Logger(label: "test.poller"))
        try write(serviceYAML(name: "web", clusterIP: "10.96.0.10", nodePort: 30080), to: dir + "/web.yaml")
        #expect(poller.poll()?.services.map(\.metadata.name) == ["web"])
        #expect(poller.poll() == nil, "nothing changed")

        // A syntax error in web.yaml: its last good content stays, the new slice file is applied.
        try write(serviceYAML(name: "web", clusterIP: "10.96.0.10", nodePort: 30081) + "garbage: [\n", to: dir + "/web.yaml")
        try write(sliceYAML(service: "web", addresses: ["10.244.1.10"]), to: dir + "/web-slice.yaml")
        let polledWithslice = poller.poll()
        let withSlice = try #require(polledWithslice)
        #expect(withSlice.services.first?.spec.ports?.first?.nodePort == 30080)
        #expect(withSlice.endpointSlices.count == 1)
        #expect(poller.poll() == nil)

        // Fixed: the new content is used.
        try write(serviceYAML(name: "web", clusterIP: "10.96.0.10", nodePort: 30081), to: dir + "/web.yaml")
        let polledFixed = poller.poll()
        let fixed = try #require(polledFixed)
        #expect(fixed.services.first?.spec.ports?.first?.nodePort == 30081)
        #expect(fixed.endpointSlices.count == 1)
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

    /// Defect 2 of issue 12: an empty directory at start was a full sync that emptied the maps.
    @Test("an empty directory at start is not synced; objects arriving are; removing them all is applied (and warned)")
    func emptyDirectory() throws {
        let dir = try makeTempDirectory("portway-poller")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var poller = DirectoryPoller(directory: dir, logger: Logger(label: "test.poller"))
        #expect(poller.poll() == nil, "an empty directory at start prunes nothing")
        try write("# nothing yet\n", to: dir + "/empty.yaml")
        #expect(poller.poll() == nil, "a file without objects is still nothing")
        try write(serviceYAML(name: "web", clusterIP: "10.96.0.10", nodePort: 30080), to: dir + "/web.yaml")
        #expect(poller.poll()?.services.count == 1)
        try FileManager.default.removeItem(atPath: dir + "/web.yaml")
        let polledEmptied = poller.poll()
        let emptied = try #require(polledEmptied, "once the directory has held objects, removing them all is applied")
        #expect(emptied.services.isEmpty && emptied.endpointSlices.isEmpty)
    }

    /// Defect 3 of issue 12: a badly typed object was dropped and its Service pruned; a file
    /// truncated to 0 bytes dropped every backend.
    @Test("a badly typed object or a truncated file keeps the file's last good content")
    func badObjectKeepsLastGood() throws {
        let dir = try makeTempDirectory("portway-poller")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var poller = DirectoryPoller(directory: dir, logger: Logger(label: "test.poller"))
        try write(serviceYAML(name: "web", clusterIP: "10.96.0.10", nodePort: 30080), to: dir + "/web.yaml")
        try write(sliceYAML(service: "web", addresses: ["10.244.1.10", "10.244.1.11"]), to: dir + "/slice.yaml")
        let polledFirst = poller.poll()
        let first = try #require(polledFirst)
        #expect(first.services.count == 1 && first.endpointSlices.first?.endpoints?.count == 2)

        try write(serviceYAML(name: "web", clusterIP: "10.96.0.10", nodePort: 30080).replacingOccurrences(of: "port: 80", with: "port: \"80\""), to: dir + "/web.yaml")
        #expect(poller.poll() == nil, "the Service is kept as it was: nothing changes")
        try write("", to: dir + "/slice.yaml")
        #expect(poller.poll() == nil, "the truncated slice file keeps its backends")

        try write(sliceYAML(service: "web", addresses: ["10.244.1.12"]), to: dir + "/slice.yaml")
        let polledNext = poller.poll()
        let next = try #require(polledNext)
        #expect(next.services.map(\.metadata.name) == ["web"], "still the last good Service")
        #expect(next.endpointSlices.first?.endpoints?.count == 1)
    }

    @Test("at start, a file that does not load holds the first sync back")
    func startWaitsForEveryFile() throws {
        let dir = try makeTempDirectory("portway-poller")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var poller = DirectoryPoller(directory: dir, logger: Logger(label: "test.poller"))
        try write(serviceYAML(name: "web", clusterIP: "10.96.0.10", nodePort: 30080), to: dir + "/web.yaml")
        try write(serviceYAML(name: "api", clusterIP: "10.96.0.11", nodePort: 30081).replacingOccurrences(of: "port: 80", with: "port: \"80\""), to: dir + "/api.yaml")
        #expect(poller.poll() == nil)
        try write(serviceYAML(name: "api", clusterIP: "10.96.0.11", nodePort: 30081), to: dir + "/api.yaml")
        #expect(poller.poll()?.services.count == 2)
    }
}
