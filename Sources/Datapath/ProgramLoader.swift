import CLibBPF
import CPortwayBPF
import Foundation

/// The two tc programs of a loaded datapath object. The file descriptors belong to the object:
/// they are valid until `close()`.
final class LoadedObject {
    private var object: OpaquePointer?
    let ingressFD: Int32
    let egressFD: Int32
    /// The pinned maps the programs use, by name.
    let pinnedMaps: [String: String]

    fileprivate init(object: OpaquePointer, ingressFD: Int32, egressFD: Int32, pinnedMaps: [String: String]) {
        self.object = object
        self.ingressFD = ingressFD
        self.egressFD = egressFD
        self.pinnedMaps = pinnedMaps
    }

    /// Releases the object. Attached programs and pinned maps stay in the kernel.
    func close() {
        if let object { bpf_object__close(object) }
        object = nil
    }

    deinit { close() }
}

/// The layout of a map as the kernel reports it.
struct MapLayout: Equatable {
    var type: UInt32
    var keySize: UInt32
    var valueSize: UInt32
    var maxEntries: UInt32
    var flags: UInt32

    static func ofPinned(at path: String) -> (MapLayout?, Int32) {
        let fd = bpf_obj_get(path)
        guard fd >= 0 else { return (nil, errno) }
        defer { Glibc.close(fd) }
        var l = MapLayout(type: 0, keySize: 0, valueSize: 0, maxEntries: 0, flags: 0)
        let rc = portway_dp_map_info(fd, &l.type, &l.keySize, &l.valueSize, &l.maxEntries, &l.flags)
        return rc == 0 ? (l, 0) : (nil, -rc)
    }
}

/// Opens the datapath object, points every map at its pin under the bpffs directory (reusing
/// maps BPFMaps already created, with their sizes and flags; creating and pinning the others),
/// and loads the programs into the kernel.
enum ProgramLoader {
    static let ingressProgram = "pw_ingress"
    static let egressProgram = "pw_egress"

    /// libbpf's print callback is process-global: loads are serialized.
    private static let lock = NSLock()

    static func load(objectPath: String, bpffs: String, mapSizes: [String: UInt32]) throws -> LoadedObject {
        lock.lock()
        defer { lock.unlock() }
        portway_dp_log_capture_start()
        defer { portway_dp_log_capture_stop() }
        func captured() -> String { String(cString: portway_dp_log_captured()) }

        errno = 0
        guard let object = bpf_object__open_file(objectPath, nil) else {
            throw DatapathError.objectOpenFailed(path: objectPath, errno: errno == 0 ? EINVAL : errno, log: captured())
        }
        var ok = false
        defer { if !ok { bpf_object__close(object) } }

        var pinned: [String: String] = [:]
        var map = bpf_object__next_map(object, nil)
        while let m = map {
            defer { map = bpf_object__next_map(object, m) }
            let name = String(cString: bpf_map__name(m))
            // Internal maps (.rodata, .bss) are never pinned.
            if name.hasPrefix(".") || name.contains(".") { continue }
            let path = (bpffs as NSString).appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: path) {
                let (layout, err) = MapLayout.ofPinned(at: path)
                guard let layout else {
                    throw DatapathError.pinnedMapMismatch(map: name, path: path, detail: "cannot open it: \(errnoText(err))")
                }
                let want = (type: UInt32(bpf_map__type(m).rawValue), key: bpf_map__key_size(m), value: bpf_map__value_size(m))
                if layout.type != want.type || layout.keySize != want.key || layout.valueSize != want.value {
                    throw DatapathError.pinnedMapMismatch(
                        map: name, path: path,
                        detail: "pinned type \(layout.type) key \(layout.keySize)B value \(layout.valueSize)B, "
                            + "expected type \(want.type) key \(want.key)B value \(want.value)B")
                }
                // libbpf reuses a pin only if every attribute matches: adopt the pinned ones.
                bpf_map__set_max_entries(m, layout.maxEntries)
                bpf_map__set_map_flags(m, layout.flags)
            } else if let size = mapSizes[name], size > 0 {
                bpf_map__set_max_entries(m, size)
            }
            let rc = bpf_map__set_pin_path(m, path)
            if rc != 0 { throw DatapathError.io(path: path, errno: -rc, what: "cannot set the pin path") }
            pinned[name] = path
        }

        let rc = bpf_object__load(object)
        if rc != 0 {
            throw DatapathError.loadFailed(path: objectPath, errno: rc < 0 ? -rc : rc, log: captured())
        }
        guard let ingress = bpf_object__find_program_by_name(object, ingressProgram) else {
            throw DatapathError.programMissing(ingressProgram)
        }
        guard let egress = bpf_object__find_program_by_name(object, egressProgram) else {
            throw DatapathError.programMissing(egressProgram)
        }
        ok = true
        return LoadedObject(
            object: object, ingressFD: bpf_program__fd(ingress), egressFD: bpf_program__fd(egress), pinnedMaps: pinned)
    }
}
