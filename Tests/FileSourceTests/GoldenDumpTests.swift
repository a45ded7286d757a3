import BPFMaps
import FileSource
import Foundation
import LoadBalancer
import Testing
import Views

/// The directories of YAML the project ships, through `portway translate` and the map writer, kept
/// as data files in Tests/FileSourceTests/Golden (as Cilium's testdata): the translate JSON and the
/// `portway bpf lb list -o json` of the maps a fresh writer makes from it. A change of the
/// translator, the Gateway marks, the proxy port plan, the writer's IDs and slots or either
/// rendering shows up as a diff of these files. `PORTWAY_UPDATE_GOLDEN=1` rewrites them (then
/// review `git diff Tests/FileSourceTests/Golden`); see docs/TESTING.md.
@Suite("Golden dumps: translate and bpf lb list of the shipped examples")
struct GoldenDumpTests {
    /// (golden name, directory, node name): examples/ is `make demo`'s cluster (its Node object
    /// gives the node address); docs/examples/gateway-traps has LoadBalancers in front of Gateways.
    static let cases: [(String, String, String)] = [
        ("examples", packageRoot + "/examples", "demo-node"),
        ("gateway-traps", packageRoot + "/docs/examples/gateway-traps", "node-a"),
    ]

    static func translate(_ directory: String, node: String) throws -> TranslateOutput {
        try Command.translate(TranslateRequest(directory: directory, nodeName: node))
    }

    @Test("translate JSON and the writer's bpf lb list JSON (in-memory maps) match the golden files", arguments: cases)
    func dumps(name: String, directory: String, node: String) throws {
        let output = try Self.translate(directory, node: node)
        #expect(output.state.entries.count > 0, "\(directory) translated to nothing")
        Golden.check(output.stdout, "\(name).translate.json")
        Golden.check(try mapDump(output.state), "\(name).lb.json")
    }

    /// The same maps on real pins, read back by the library and by the `portway` binary: the very
    /// document the in-memory maps gave (no golden is written here; the test above owns the files).
    @Test("the pinned maps list the same JSON, in process and through portway bpf lb list -o json", .enabled(if: BPFFSFixture.available, "needs root and a bpffs mount (reason printed)"), arguments: cases)
    func pinnedMapsListTheSame(name: String, directory: String, node: String) async throws {
        guard !Golden.updating else { return }
        let expected = try #require(try? String(contentsOfFile: Golden.path("\(name).lb.json"), encoding: .utf8), "Golden/\(name).lb.json is missing")
        let fs = try BPFFSFixture.make()
        defer { fs.cleanup() }
        let state = try Self.translate(directory, node: node).state
        let writer = try MapWriter(maps: try fs.maps())
        #expect(writer.sync(state).failures.isEmpty)
        let pinned = mapDump(try ProgrammedState.read(from: try MapSet.openExisting(bpffs: fs.directory)))
        Golden.expect(pinned, equals: expected, "the pinned maps differ from Golden/\(name).lb.json")
        guard let binary = portwayBinary else {
            print("skipped the portway bpf lb list half: the portway binary was not found next to the tests (set PORTWAY_BIN)")
            return
        }
        let listed = try await onDedicatedThread { try run([binary, "bpf", "lb", "list", "-o", "json", "--bpffs", fs.directory]) }
        Golden.expect(listed, equals: expected, "portway bpf lb list -o json differs from Golden/\(name).lb.json")
    }
}
