import CLibBPF
import CPortwayBPF
import Foundation

/// A minimal writer of the pinned maps for the datapath tests (BPFMaps owns the real writer;
/// these tests need to set exact slots, counts and flags). Writes in make-before-break order.
struct TestMaps {
    let bpffs: String

    struct MapError: Error, CustomStringConvertible {
        var description: String
    }

    private func withMap<T>(_ name: String, _ body: (Int32) throws -> T) throws -> T {
        let path = (bpffs as NSString).appendingPathComponent(name)
        let fd = bpf_obj_get(path)
        guard fd >= 0 else { throw MapError(description: "cannot open \(path): errno \(errno)") }
        defer { close(fd) }
        return try body(fd)
    }

    private func update<K, V>(_ name: String, _ key: K, _ value: V) throws {
        try withMap(name) { fd in
            let rc = withUnsafePointer(to: key) { k in
                withUnsafePointer(to: value) { v in bpf_map_update_elem(fd, k, v, 0) }
            }
            guard rc == 0 else { throw MapError(description: "update \(name): errno \(errno)") }
        }
    }

    private func delete<K>(_ name: String, _ key: K) throws {
        try withMap(name) { fd in
            _ = withUnsafePointer(to: key) { bpf_map_delete_elem(fd, $0) }
        }
    }

    private func lookup<K, V>(_ name: String, _ key: K, _ empty: V) throws -> V? {
        try withMap(name) { fd in
            var v = empty
            let rc = withUnsafePointer(to: key) { k in withUnsafeMutablePointer(to: &v) { bpf_map_lookup_elem(fd, k, $0) } }
            return rc == 0 ? v : nil
        }
    }

    static func ip(_ s: String) -> UInt32 {
        var a = in_addr()
        precondition(inet_pton(AF_INET, s, &a) == 1, "bad IPv4 \(s)")
        return a.s_addr
    }

    func setBackend(id: UInt32, address: String, port: UInt16, proto: UInt8, state: UInt8 = UInt8(PW_BACKEND_ACTIVE)) throws {
        var b = pw_lb4_backend()
        b.address = Self.ip(address)
        b.port = port.bigEndian
        b.proto = proto
        b.state = state
        try update(PW_MAP_BACKENDS, id, b)
    }

    func deleteBackend(id: UInt32) throws { try delete(PW_MAP_BACKENDS, id) }

    private func key(_ address: String, _ port: UInt16, _ proto: UInt8, slot: UInt16) -> pw_lb4_key {
        var k = pw_lb4_key()
        k.address = Self.ip(address)
        k.dport = port.bigEndian
        k.backend_slot = slot
        k.proto = proto
        k.scope = UInt8(PW_SCOPE_EXTERNAL)
        return k
    }

    /// Programs a frontend: slots 1..active+terminating, reverse NAT, then the master; stale
    /// slots are removed after the master shrank.
    func setService(
        address: String, port: UInt16, proto: UInt8, flags: Int32, flags2: Int32 = 0, revNat: UInt16,
        active: [UInt32], terminating: [UInt32] = [], affinityTimeout: UInt32 = 0
    ) throws {
        let old = try lookup(PW_MAP_SERVICES, key(address, port, proto, slot: 0), pw_lb4_service())
        let slots = active + terminating
        for (i, id) in slots.enumerated() {
            var v = pw_lb4_service()
            v.backend_id = id
            try update(PW_MAP_SERVICES, key(address, port, proto, slot: UInt16(i + 1)), v)
        }
        var rn = pw_lb4_reverse_nat()
        rn.address = Self.ip(address)
        rn.port = port.bigEndian
        try update(PW_MAP_REVNAT, revNat.bigEndian, rn)
        var m = pw_lb4_service()
        m.affinity_timeout = affinityTimeout
        m.count = UInt16(active.count)
        m.qcount = UInt16(terminating.count)
        m.rev_nat_index = revNat.bigEndian
        m.flags = UInt8(flags)
        m.flags2 = UInt8(flags2)
        try update(PW_MAP_SERVICES, key(address, port, proto, slot: 0), m)
        if let old {
            let oldSlots = Int(old.count) + Int(old.qcount)
            if oldSlots > slots.count {
                for s in (slots.count + 1)...oldSlots {
                    try delete(PW_MAP_SERVICES, key(address, port, proto, slot: UInt16(s)))
                }
            }
        }
    }

    /// The master entry (slot 0) of a frontend, if programmed.
    func master(address: String, port: UInt16, proto: UInt8) throws -> pw_lb4_service? {
        try lookup(PW_MAP_SERVICES, key(address, port, proto, slot: 0), pw_lb4_service())
    }

    /// Number of entries in a map (for assertions on CT/SNAT state).
    func count(_ name: String, keySize: Int) throws -> Int {
        try withMap(name) { fd in
            var n = 0
            var key = [UInt8](repeating: 0, count: keySize)
            var next = [UInt8](repeating: 0, count: keySize)
            var rc = bpf_map_get_next_key(fd, nil, &next)
            while rc == 0 {
                n += 1
                key = next
                rc = bpf_map_get_next_key(fd, &key, &next)
            }
            return n
        }
    }
}
