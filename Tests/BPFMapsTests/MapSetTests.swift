import BPFMaps
import CPortwayBPF
import Glibc
import Testing

@Suite("Pinned map set: create, reuse, mismatch", .serialized, .enabled(if: BPFFSFixture.available, "needs root and a bpffs mount (reason printed)"))
struct MapSetTests {
    @Test("creates the six maps in a new directory on bpffs, and reuses them")
    func createAndReuse() throws {
        try withBPFFS { fs in
            let first = try fs.maps()
            for kind in MapKind.allCases {
                var st = stat()
                #expect(stat(fs.directory + "/" + kind.pinName, &st) == 0, "pin of \(kind.pinName)")
                #expect(first[kind].maxEntries == BPFFSFixture.smallSizes[kind])
            }
            try first.backends.update(UInt32(7), pw_lb4_backend())
            // A second open finds the same map object through the pin.
            let second = try fs.maps()
            #expect(try second.backends.lookup(UInt32(7), as: pw_lb4_backend.self) != nil)
            #expect(try second.backends.keys(UInt32.self) == [7])
            let existing = try MapSet.openExisting(bpffs: fs.directory)
            #expect(try existing.backends.keys(UInt32.self) == [7])
        }
    }

    @Test("a pinned map of another size is refused, naming the map, the sizes and the flag")
    func sizeMismatch() throws {
        try withBPFFS { fs in
            _ = try fs.maps()
            var sizes = BPFFSFixture.smallSizes
            sizes[.backends] = 2048
            #expect {
                _ = try fs.maps(sizes)
            } throws: { error in
                guard let e = error as? BPFMapError, case .mismatch(let map, _, let differences, let flag) = e else { return false }
                let text = e.description
                return map == "pw_lb4_backends" && differences == ["max_entries 1024 (pinned) vs 2048 (wanted)"]
                    && flag == "--backend-map-size" && text.contains("--backend-map-size") && text.contains("rm \(fs.directory)/pw_lb4_backends")
            }
            // Read-only opening accepts any size.
            #expect(try MapSet.openExisting(bpffs: fs.directory).backends.maxEntries == 1024)
        }
    }

    @Test("a pinned map of another layout is refused, saying it must be deleted")
    func layoutMismatch() throws {
        try withBPFFS { fs in
            try BPFFS.prepare(fs.directory)
            // A reverse-NAT map with a wrong value size, pinned by "an older build".
            let fd = portway_map_create(portway_map_type_hash(), "pw_lb4_reverse_nat", 2, 16, 1024)
            #expect(fd >= 0)
            #expect(portway_obj_pin(fd, fs.directory + "/pw_lb4_reverse_nat") == 0)
            close(fd)
            #expect {
                _ = try fs.maps()
            } throws: { error in
                guard let e = error as? BPFMapError, case .mismatch(let map, _, let differences, let flag) = e else { return false }
                return map == "pw_lb4_reverse_nat" && differences == ["value size 16 (pinned) vs 8 (wanted)"] && flag == nil
                    && e.description.contains("incompatible")
            }
        }
    }

    @Test("LRU maps are LRU, hash maps are hash", arguments: MapKind.allCases)
    func mapTypes(kind: MapKind) throws {
        try withBPFFS { fs in
            let maps = try fs.maps()
            let fd = portway_obj_get(maps[kind].path)
            #expect(fd >= 0)
            defer { close(fd) }
            var type: UInt32 = 0, key: UInt32 = 0, value: UInt32 = 0, entries: UInt32 = 0, flags: UInt32 = 0
            #expect(portway_map_info(fd, &type, &key, &value, &entries, &flags) == 0)
            #expect(type == (kind.isLRU ? portway_map_type_lru_hash() : portway_map_type_hash()))
            #expect(flags == 0)
        }
    }

    @Test("reading maps that were never pinned says so")
    func notPinned() throws {
        try withBPFFS { fs in
            #expect(throws: BPFMapError.noPinDirectory(path: fs.directory)) {
                _ = try MapSet.openExisting(bpffs: fs.directory)
            }
            var st = stat()
            #expect(stat(fs.directory, &st) != 0, "reading creates nothing")
            try BPFFS.prepare(fs.directory)
            #expect {
                _ = try MapSet.openExisting(bpffs: fs.directory)
            } throws: { error in
                guard let e = error as? BPFMapError, case .notPinned(let map, _) = e else { return false }
                return map == "pw_lb4_services"
            }
        }
    }
}

@Suite("bpffs directory checks")
struct BPFFSCheckTests {
    @Test("a directory that is not on bpffs is refused with the mount command")
    func notBPFFS() throws {
        var template = Array("/tmp/portway-notbpffs-XXXXXX".utf8CString)
        let dir = String(cString: try #require(mkdtemp(&template)))
        defer { rmdir(dir) }
        for path in [dir, dir + "/portway"] {
            #expect {
                _ = try MapSet.openOrCreate(bpffs: path, sizes: BPFFSFixture.smallSizes)
            } throws: { error in
                guard let e = error as? BPFMapError, case .notBPFFS = e else { return false }
                return e.description.contains("mount -t bpf bpf /sys/fs/bpf")
            }
        }
        var st = stat()
        #expect(stat(dir + "/portway", &st) != 0, "nothing is created outside bpffs")
    }
}
