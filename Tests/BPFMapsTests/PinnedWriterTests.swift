import BPFMaps
import CLibBPF
import CPortwayBPF
import Foundation
import LoadBalancer
import Testing

@Suite("Map writer on real pins: capacity, drift repair, the writer lock, messages", .serialized, .enabled(if: BPFFSFixture.available, "needs root and a bpffs mount (reason printed)"))
struct PinnedWriterTests {
    @Test("10k Services x 10 endpoints into a 65,536-entry services map: whole Services fit, the rest fail at once, one line names the shortfall")
    func capacityOnPins() throws {
        try withBPFFS { fs in
            let sizes = MapSizes([.services: 65_536, .backends: 131_072, .reverseNAT: 65_536, .affinity: 256, .connectionTracking: 256, .snat: 256])
            let maps = try fs.maps(sizes)
            let writer = try MapWriter(maps: maps)
            let entries = (0..<10_000).map { i in
                entry("10.96.\(i / 256).\(i % 256)", 80, type: .clusterIP, flags: [.clusterIP], name: "svc-\(i)",
                      backends: (0..<10).map { backend("10.\(128 + $0).\(i / 256).\(i % 256)") })
            }
            let summary = writer.sync(DesiredL4State(entries: entries))
            print("capacity: \(summary)")
            #expect(summary.shortfall == "pw_lb4_services needs 110,000 entries, has 65,536: raise --service-map-size")
            // 65,536 / 11 entries per Service = 5,957 Services.
            #expect(summary.added == 5_957 && summary.failures.count == 10_000 - 5_957)
            #expect(summary.failures.allSatisfy { $0.frontend != nil })
            let listing = try LogicalListing(LoadBalancerMaps(maps))
            #expect(listing.frontends.count == 5_957 && listing.problems.isEmpty)
            #expect(summary[.services].deletes == 0, "nothing written was taken back")
        }
    }

    @Test("an entry deleted from a pinned map by hand is back after repair, and the summary names it")
    func repairOnPins() throws {
        try withBPFFS { fs in
            let maps = try fs.maps()
            let writer = try MapWriter(maps: maps)
            let web = entry("10.0.0.1", 30080, backends: [backend("10.1.0.1"), backend("10.1.0.2")])
            let desired = state(web)
            _ = writer.sync(desired)
            let before = try ProgrammedState.read(from: maps)
            let key = try #require(ServiceMapKey(web.frontend))
            #expect(try maps.services.delete(key.cKey(slot: 2)))
            let id = try #require(writer.backendID(for: backend("10.1.0.1")))
            #expect(try maps.backends.delete(id))
            let summary = writer.repair(desired)
            #expect(summary.repaired == [
                "pw_lb4_services 10.0.0.1:30080/TCP #2: deleted outside the agent",
                "pw_lb4_backends #\(id): deleted outside the agent",
            ])
            #expect(summary.failures.isEmpty && summary.writes == 2)
            #expect(try ProgrammedState.read(from: maps) == before, "same entries under the same IDs")
            #expect(writer.repair(desired).repaired.isEmpty)
        }
    }

    @Test("a second process cannot take the pin directory while a writer holds it; the message names its PID")
    func writerLock() throws {
        try withBPFFS { fs in
            // The pins exist (made by a writer that is gone again).
            do { _ = try fs.maps() }
            let holder = Process()
            holder.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
            // -o: only flock itself holds the lock, not its child; the child (cat) ends when we close its stdin.
            holder.arguments = ["-o", "-x", fs.directory, "cat"]
            let stdin = Pipe()
            holder.standardInput = stdin
            guard FileManager.default.isExecutableFile(atPath: "/usr/bin/flock") else {
                print("writerLock: /usr/bin/flock (util-linux) is missing; skipped")
                return
            }
            try holder.run()
            var released = false
            func release() {
                guard !released else { return }
                released = true
                try? stdin.fileHandleForWriting.close()
                holder.waitUntilExit()
            }
            defer { release() }
            // Wait until the child holds the lock (it blocks while we hold it in a probe).
            var refused: BPFMapError?
            for _ in 0..<250 {
                do {
                    _ = try fs.maps()
                    usleep(20_000)
                } catch {
                    refused = error as? BPFMapError
                    break
                }
            }
            let error = try #require(refused)
            #expect(error == .locked(directory: fs.directory, holderPID: holder.processIdentifier))
            #expect(error.description.contains("locked by process \(holder.processIdentifier)"))
            #expect(error.description.contains("another --bpffs"))
            // Reading takes no lock.
            #expect(try MapSet.openExisting(bpffs: fs.directory).holdsWriterLock == false)
            release()
            #expect(try fs.maps().holdsWriterLock)
        }
    }

    @Test("opens in one process share the lock; it is released when the last map set goes")
    func lockSharedInProcess() throws {
        try withBPFFS { fs in
            func othersCanLock() throws -> Bool {
                let probe = Process()
                probe.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
                probe.arguments = ["-n", "-x", fs.directory, "true"]
                try probe.run()
                probe.waitUntilExit()
                return probe.terminationStatus == 0
            }
            guard FileManager.default.isExecutableFile(atPath: "/usr/bin/flock") else {
                print("lockSharedInProcess: /usr/bin/flock (util-linux) is missing; skipped")
                return
            }
            var first: MapSet? = try fs.maps()
            var second: MapSet? = try fs.maps()
            #expect(first?.holdsWriterLock == true && second?.holdsWriterLock == true)
            #expect(try !othersCanLock())
            first = nil
            #expect(try !othersCanLock(), "the second map set still holds it")
            second = nil
            #expect(try othersCanLock())
            _ = (first, second)
        }
    }

    @Test("a directory or a program pinned under a map's name is named as such")
    func wrongObjectsUnderMapNames() throws {
        try withBPFFS { fs in
            try BPFFS.prepare(fs.directory)
            #expect(mkdir(fs.directory + "/pw_lb4_services", 0o700) == 0)
            #expect(throws: BPFMapError.notAPinnedMap(path: fs.directory + "/pw_lb4_services", found: "a directory")) { _ = try fs.maps() }
            #expect(BPFMapError.notAPinnedMap(path: "/x/pw_lb4_services", found: "a directory").description
                .hasPrefix("/x/pw_lb4_services is a directory, not a pinned map"))
            #expect(rmdir(fs.directory + "/pw_lb4_services") == 0)

            // "r0 = 0; exit": the smallest program the verifier accepts.
            var insns = [bpf_insn(), bpf_insn()]
            insns[0].code = 0xb7
            insns[1].code = 0x95
            let fd = bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, "pw_test", "GPL", &insns, 2, nil)
            try #require(fd >= 0, "bpf_prog_load: \(fd)")
            defer { close(fd) }
            let path = fs.directory + "/pw_lb4_backends"
            #expect(portway_obj_pin(fd, path) == 0)
            #expect(throws: BPFMapError.notAPinnedMap(path: path, found: "a BPF program")) { _ = try fs.maps() }
            #expect(BPFMapError.notAPinnedMap(path: path, found: "a BPF program").description.hasPrefix("a BPF program, not a map, is pinned at \(path)"))
            #expect(throws: BPFMapError.notAPinnedMap(path: path, found: "a BPF program")) { _ = try MapSet.openExisting(bpffs: fs.directory) }
        }
    }
}

@Suite("Pin directory flags")
struct PinDirectoryFlagTests {
    @Test("--bpffs \"\" says the flag is empty")
    func emptyBPFFS() {
        #expect(throws: BPFMapError.emptyPath(flag: "--bpffs")) { _ = try MapSet.openOrCreate(bpffs: "") }
        #expect(throws: BPFMapError.emptyPath(flag: "--bpffs")) { _ = try MapSet.openExisting(bpffs: "") }
        #expect(BPFMapError.emptyPath(flag: "--bpffs").description == "--bpffs is empty: give a directory on a bpffs mount (default /sys/fs/bpf/portway)")
    }

    @Test("map sizes are driven by MapKind: every kind has a default and a flag")
    func sizesByKind() {
        let sizes = MapSizes([.services: 7])
        #expect(sizes[.services] == 7 && sizes[.backends] == MapKind.backends.defaultSize)
        #expect(Set(MapKind.allCases.map(\.sizeFlag)).count == MapKind.allCases.count)
        #expect(MapSizes.defaults[.services] == 262_144)
        #expect(MapSizes(services: 7) == sizes)
    }
}
