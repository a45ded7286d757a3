import BPFMaps
import CLibBPF
import CPortwayBPF
import Datapath
import Foundation
import Testing

/// The map contract with BPFMaps: whichever side comes first, both end up on the same pinned
/// maps. Loads the programs without attaching them (no devices), so no namespace is needed.
@Suite(.serialized, .enabled(if: LabPrerequisites.ready, "needs root, bpffs and bpf/out/portway_lb.o"))
struct LoaderContractTests {
    private func mapID(_ path: String) -> UInt32? {
        let fd = bpf_obj_get(path)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = bpf_map_info()
        var len = UInt32(MemoryLayout<bpf_map_info>.size)
        return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : nil
    }

    private var object: String { get throws { try Lab.objectPath() } }

    @Test("the loader reuses the maps BPFMaps created, with their sizes")
    func reusesBPFMapsPins() throws {
        try withBPFFS(onHost: "pw-loader-") { dir in
            let sizes = MapSizes(services: 333, backends: 222, reverseNAT: 111, affinity: 64, connectionTracking: 512, snat: 256)
            let maps = try MapSet.openOrCreate(bpffs: dir, sizes: sizes)
            let before = MapKind.allCases.map { mapID("\(dir)/\($0.pinName)") }
            try Datapath.install(DatapathOptions(devices: [], bpffs: dir, objectPath: try object))
            let after = MapKind.allCases.map { mapID("\(dir)/\($0.pinName)") }
            #expect(before == after)
            #expect(!before.contains(nil))
            #expect(maps[.services].maxEntries == 333)
        }
    }

    @Test("BPFMaps reuses the maps the loader created first")
    func loaderFirst() throws {
        try withBPFFS(onHost: "pw-loader-") { dir in
            let sizes = MapSizes(services: 300, backends: 200, reverseNAT: 100, affinity: 64, connectionTracking: 512, snat: 256)
            let byName = Dictionary(uniqueKeysWithValues: MapKind.allCases.map { ($0.pinName, sizes[$0]) })
            try Datapath.install(DatapathOptions(devices: [], bpffs: dir, objectPath: try object, mapSizes: byName))
            let before = MapKind.allCases.map { mapID("\(dir)/\($0.pinName)") }
            #expect(!before.contains(nil))
            let maps = try MapSet.openOrCreate(bpffs: dir, sizes: sizes)
            #expect(MapKind.allCases.map { mapID(maps[$0].path) } == before)
        }
    }

    @Test("a pinned map with another layout is a clear error naming the map")
    func mismatch() throws {
        try withBPFFS(onHost: "pw-loader-") { dir in
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let fd = bpf_map_create(BPF_MAP_TYPE_HASH, "pw_lb4_backends", 4, 8, 16, nil)
            try #require(fd >= 0)
            #expect(bpf_obj_pin(fd, "\(dir)/\(PW_MAP_BACKENDS)") == 0)
            close(fd)
            let error = #expect(throws: DatapathError.self) {
                try Datapath.install(DatapathOptions(devices: [], bpffs: dir, objectPath: try object))
            }
            guard case .pinnedMapMismatch(let map, _, let detail)? = error else {
                Issue.record("expected pinnedMapMismatch, got \(String(describing: error))")
                return
            }
            #expect(map == PW_MAP_BACKENDS)
            #expect(detail.contains("value 8B"))
            #expect(error?.description.contains("rm ") == true)
        }
    }
}
