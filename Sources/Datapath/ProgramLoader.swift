import CLibBPF
import CPortwayBPF
import Foundation
import Synchronization

/// A loaded datapath object: its programs' file descriptors by name. The descriptors belong to
/// the object: they are valid until `close()`.
final class LoadedObject {
    private var object: OpaquePointer?
    /// The programs the plan asked for, by name.
    let programFDs: [String: Int32]
    /// The pinned maps the programs use, by name.
    let pinnedMaps: [String: String]

    fileprivate init(object: OpaquePointer, programFDs: [String: Int32], pinnedMaps: [String: String]) {
        self.object = object
        self.programFDs = programFDs
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
    /// libbpf's print callback is process-global: loads are serialized.
    private static let lock = Mutex(())

    static func load(
        object source: DatapathObject, bpffs: String, mapSizes: [String: UInt32], programs: [String], config: pw_dp_config,
        skip: [String] = []
    ) throws -> LoadedObject {
        // libbpf's log callback is process-wide: one load at a time captures its own messages.
        try lock.withLock { _ in
            try loadLocked(object: source, bpffs: bpffs, mapSizes: mapSizes, programs: programs, config: config, skip: skip)
        }
    }

    private static func loadLocked(
        object source: DatapathObject, bpffs: String, mapSizes: [String: UInt32], programs: [String], config: pw_dp_config,
        skip: [String]
    ) throws -> LoadedObject {
        let objectPath = source.description
        portway_dp_log_capture_start()
        defer { portway_dp_log_capture_stop() }
        func captured() -> String { String(cString: portway_dp_log_captured()) }

        errno = 0
        let opened: OpaquePointer?
        switch source {
        case .file(let path):
            opened = bpf_object__open_file(path, nil)
        case .embedded:
            let bytes = DatapathObject.embeddedBytes
            var opts = bpf_object_open_opts()
            opts.sz = MemoryLayout<bpf_object_open_opts>.size
            opened = "portway_lb".withCString { name in
                opts.object_name = name
                return bpf_object__open_mem(bytes.baseAddress, bytes.count, &opts)
            }
        }
        guard let object = opened else {
            throw DatapathError.objectOpenFailed(path: objectPath, errno: errno == 0 ? EINVAL : errno, log: captured())
        }
        var ok = false
        defer { if !ok { bpf_object__close(object) } }

        var pinned: [String: String] = [:]
        var map = bpf_object__next_map(object, nil)
        while let m = map {
            defer { map = bpf_object__next_map(object, m) }
            let name = String(cString: bpf_map__name(m))
            // Internal maps (.rodata, .bss) are never pinned. The one `const volatile` variable,
            // the datapath's configuration, lives in .rodata: set it before load.
            if name.hasSuffix(".rodata") {
                var value = config
                let rc = withUnsafeBytes(of: &value) { bpf_map__set_initial_value(m, $0.baseAddress, $0.count) }
                if rc != 0 {
                    throw DatapathError.loadFailed(
                        path: objectPath, errno: -rc, log: "the object's .rodata is not one struct pw_dp_config (\(bpf_map__value_size(m)) bytes)")
                }
                continue
            }
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

        // Programs this kernel cannot load (and the plan does not use) stay out of the load.
        for name in skip {
            if let program = bpf_object__find_program_by_name(object, name) { bpf_program__set_autoload(program, false) }
        }
        let rc = bpf_object__load(object)
        if rc != 0 {
            throw DatapathError.loadFailed(path: objectPath, errno: rc < 0 ? -rc : rc, log: captured())
        }
        var fds: [String: Int32] = [:]
        for name in programs {
            guard let program = bpf_object__find_program_by_name(object, name) else { throw DatapathError.programMissing(name) }
            fds[name] = bpf_program__fd(program)
        }
        ok = true
        return LoadedObject(object: object, programFDs: fds, pinnedMaps: pinned)
    }
}
