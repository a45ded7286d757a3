import Foundation
import Datapath
import Testing

@Suite struct ObjectLocatorTests {
    @Test("the object: --bpf-object, else $PORTWAY_BPF_DIR, else the embedded one; never a search of cwd or /usr/lib")
    func choice() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pw-locator-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dir + "/bpf/out", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for file in [dir + "/x.o", dir + "/portway_lb.o", dir + "/bpf/out/portway_lb.o"] {
            FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        }
        #expect(try ObjectLocator.locate(explicit: dir + "/x.o", environment: ["PORTWAY_BPF_DIR": dir]) == .file(dir + "/x.o"))
        #expect(try ObjectLocator.locate(explicit: nil, environment: ["PORTWAY_BPF_DIR": dir]) == .file(dir + "/portway_lb.o"))
        // A ./bpf/out/portway_lb.o in the working directory is not looked at.
        let previous = FileManager.default.currentDirectoryPath
        FileManager.default.changeCurrentDirectoryPath(dir)
        defer { FileManager.default.changeCurrentDirectoryPath(previous) }
        if DatapathObject.embeddedBytes.count > 0 {
            #expect(try ObjectLocator.locate(explicit: nil, environment: [:]) == .embedded)
        } else {
            let error = #expect(throws: DatapathError.self) { try ObjectLocator.locate(explicit: nil, environment: [:]) }
            #expect(error == .objectNotFound(searched: []))
            #expect(error?.description.contains("make build") == true)
        }
    }

    @Test("the embedded object is the one make bpf compiled (when the build embedded one)")
    func embeddedIsELF() throws {
        let bytes = DatapathObject.embeddedBytes
        guard bytes.count > 0 else {
            print("⚠️ embeddedIsELF skipped: this build embeds no datapath object (plain swift build; make build embeds it)")
            return
        }
        #expect(Array(bytes.prefix(4)) == [0x7f, 0x45, 0x4c, 0x46])  // ELF
        #expect(bytes[18] == 247)  // e_machine EM_BPF
    }

    @Test("a missing object names the file looked for")
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
