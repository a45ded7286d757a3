import Foundation
import Datapath
import Testing

@Suite struct ObjectLocatorTests {
    @Test("search order: explicit path, $PORTWAY_BPF_DIR, ./bpf/out, /usr/lib/portway")
    func candidates() {
        #expect(ObjectLocator.candidates(explicit: "/x/y.o", environment: ["PORTWAY_BPF_DIR": "/e"], currentDirectory: "/c")
            == ["/x/y.o"])
        #expect(ObjectLocator.candidates(explicit: nil, environment: ["PORTWAY_BPF_DIR": "/e"], currentDirectory: "/c")
            == ["/e/portway_lb.o", "/c/bpf/out/portway_lb.o", "/usr/lib/portway/portway_lb.o"])
        #expect(ObjectLocator.candidates(explicit: nil, environment: [:], currentDirectory: "/c")
            == ["/c/bpf/out/portway_lb.o", "/usr/lib/portway/portway_lb.o"])
    }

    @Test("a missing object names every place searched")
    func notFound() {
        let error = #expect(throws: DatapathError.self) {
            try ObjectLocator.locate(explicit: "/nonexistent/portway_lb.o")
        }
        #expect(error == .objectNotFound(searched: ["/nonexistent/portway_lb.o"]))
        #expect(error?.description.contains("make bpf") == true)
    }

    @Test("a broken object file is a clear error, not a crash")
    func brokenObject() throws {
        let path = "/tmp/pw-broken-\(UInt32.random(in: 0...UInt32.max)).o"
        try "not an ELF file".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let bpffs = "/sys/fs/bpf/pw-broken-\(UInt32.random(in: 0...UInt32.max))"
        defer { rmdir(bpffs) }
        let error = #expect(throws: DatapathError.self) {
            try Datapath.install(DatapathOptions(devices: [], bpffs: bpffs, objectPath: path))
        }
        switch error {
        case .objectOpenFailed?, .notRoot?, .bpffsNotMounted?: break
        default: Issue.record("unexpected \(String(describing: error))")
        }
    }
}
