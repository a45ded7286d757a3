import Foundation
import Datapath
import Testing

@Suite struct ObjectLocatorTests {
    @Test("the object: --bpf-object, else $PORTWAY_BPF_DIR, else the embedded one; never a search of cwd or /usr/lib")
    func choice() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pw-locator-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for file in [dir + "/x.o", dir + "/portway_lb.o"] {
            #expect(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        }
        #expect(try ObjectLocator.locate(explicit: dir + "/x.o", environment: ["PORTWAY_BPF_DIR": dir]) == .file(dir + "/x.o"))
        #expect(try ObjectLocator.locate(explicit: nil, environment: ["PORTWAY_BPF_DIR": dir]) == .file(dir + "/portway_lb.o"))
        // Nothing else: no ./bpf/out, no /usr/lib/portway (the locator takes no directory to search).
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

@Suite struct NetworkDeviceTests {
    private func device(_ name: String, kind: String = "veth", peerElsewhere: Bool = true) -> NetworkDevice {
        NetworkDevice(name: name, ifindex: 1, kind: kind, master: 0, peerInOtherNamespace: peerElsewhere, up: true)
    }

    @Test("pod devices: veths whose peer is in another namespace, with the CNI's prefix, never an external device")
    func podDevices() {
        let all = [
            device("veth1234"), device("vethabcd"), device("knode0"), device("veth-local", peerElsewhere: false),
            device("kbr0", kind: "bridge", peerElsewhere: false), device("eth0", kind: ""), device("lxc99"),
        ]
        #expect(NetworkDevices.podDevices(all, prefix: "veth", excluding: ["knode0"]) == ["veth1234", "vethabcd"])
        #expect(NetworkDevices.podDevices(all, prefix: "", excluding: ["knode0"]) == ["lxc99", "veth1234", "vethabcd"])
        #expect(NetworkDevices.podDevices(all, prefix: "", excluding: []).contains("knode0"))
    }

    @Test("the loopback device holds 127.0.0.1; an address nobody holds has no device")
    func deviceHolding() {
        #expect(NetworkDevices.deviceHolding(["192.0.2.250", "127.0.0.1"]) == "lo")
        #expect(NetworkDevices.deviceHolding(["192.0.2.250"]) == nil)
    }

    @Test("--cgroup-path: a directory with the cgroup2 mount below it (a hybrid host's unified) resolves to that mount")
    func cgroupResolve() {
        let mounts = """
            tmpfs /host/cgroup tmpfs rw 0 0
            cgroup /host/cgroup/cpu cgroup rw,cpu 0 0
            cgroup2 /host/cgroup/unified cgroup2 rw 0 0
            cgroup2 /other cgroup2 rw 0 0
            """
        #expect(CgroupV2.resolve("/host/cgroup", mounts: mounts) == "/host/cgroup/unified")
        #expect(CgroupV2.resolve("/host/cgroup/", mounts: mounts) == "/host/cgroup/unified")
        #expect(CgroupV2.resolve("/nowhere", mounts: mounts) == "/nowhere")
    }
}
