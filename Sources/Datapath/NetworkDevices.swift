import CLibBPF
import CPortwayBPF
import Foundation

/// A network device of the calling thread's namespace, as rtnetlink describes it.
public struct NetworkDevice: Sendable, Hashable {
    public var name: String
    public var ifindex: Int32
    /// IFLA_INFO_KIND ("veth", "bridge", ...; empty for plain devices).
    public var kind: String
    /// The ifindex of the bridge it is a port of, 0 if none.
    public var master: Int32
    /// A veth whose peer lives in another network namespace (a pod's host-side device, or an uplink veth).
    public var peerInOtherNamespace: Bool
    public var up: Bool

    public init(name: String, ifindex: Int32, kind: String, master: Int32, peerInOtherNamespace: Bool, up: Bool) {
        self.name = name
        self.ifindex = ifindex
        self.kind = kind
        self.master = master
        self.peerInOtherNamespace = peerInOtherNamespace
        self.up = up
    }
}

/// Device discovery for the agent: the uplink (the device holding the node's address) and the pods'
/// host-side devices, which come and go with the pods.
public enum NetworkDevices {
    /// Every link of the calling thread's network namespace.
    public static func list() throws -> [NetworkDevice] {
        var buffer = [pw_link_info](repeating: pw_link_info(), count: 4096)
        let n = buffer.withUnsafeMutableBufferPointer { portway_nl_list_links($0.baseAddress, Int32($0.count)) }
        guard n >= 0 else { throw DatapathError.io(path: "rtnetlink", errno: -n, what: "cannot list the network devices of") }
        return buffer.prefix(Int(n)).map { info in
            var info = info
            let name = withUnsafeBytes(of: &info.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            let kind = withUnsafeBytes(of: &info.kind) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            return NetworkDevice(
                name: name, ifindex: info.ifindex, kind: kind, master: Int32(bitPattern: info.master),
                peerInOtherNamespace: info.peer_in_other_netns != 0, up: info.up != 0)
        }
    }

    /// The pods' host-side devices among `devices`: veths whose peer is in another network
    /// namespace (the CNI put it into a pod), named with `prefix` (the CNI's naming, e.g. "veth"
    /// for the bridge plugin, "lxc" for Cilium's; empty: any name), excluding the external devices.
    public static func podDevices(_ devices: [NetworkDevice], prefix: String, excluding external: [String]) -> [String] {
        devices.filter { $0.kind == "veth" && $0.peerInOtherNamespace && $0.name.hasPrefix(prefix) && !external.contains($0.name) }
            .map(\.name).sorted()
    }

    /// The device that holds one of `addresses` (IPv4, dotted quad), or nil.
    public static func deviceHolding(_ addresses: [String]) -> String? {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return nil }
        defer { freeifaddrs(list) }
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let sa = entry.pointee.ifa_addr, sa.pointee.sa_family == sa_family_t(AF_INET) else { continue }
            let text = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { SocketEndpoint($0.pointee).address }
            if addresses.contains(text) { return String(cString: entry.pointee.ifa_name) }
        }
        return nil
    }
}

/// Wakes up when a link of the calling thread's namespace is added, removed or changed.
public final class LinkEvents: @unchecked Sendable {  // one reader at a time
    private let fd: Int32

    public init() throws {
        let fd = portway_nl_link_events_open()
        guard fd >= 0 else { throw DatapathError.io(path: "rtnetlink", errno: -fd, what: "cannot subscribe to link changes of") }
        self.fd = fd
    }

    /// Blocks up to `timeoutMilliseconds`; true when links changed (the caller lists them again).
    public func wait(timeoutMilliseconds: Int32) -> Bool {
        portway_nl_link_events_wait(fd, timeoutMilliseconds) != 0
    }

    deinit { close(fd) }
}

extension Datapath {
    /// Detaches and unpins the tc links under `<bpffs>/links` that the plan of `options` no longer
    /// has (a pod's device that went away: the kernel detached its link with the device, the pin
    /// stayed). Cgroup links are left to `install`. Returns the pin names removed.
    @discardableResult
    public static func pruneLinks(_ options: DatapathOptions) -> [String] {
        let keep = Set(AttachPlan.make(options).entries.map(\.target.pinName))
        let dir = Attacher.linksDirectory(bpffs: options.bpffs)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        var removed: [String] = []
        for name in names.sorted() where !name.hasPrefix("cgroup_") && !keep.contains(name) {
            guard name.hasSuffix("_ingress") || name.hasSuffix("_egress") else { continue }
            let pin = (dir as NSString).appendingPathComponent(name)
            let fd = bpf_obj_get(pin)
            if fd >= 0 {
                _ = bpf_link_detach(fd)
                Glibc.close(fd)
            }
            unlink(pin)
            removed.append(name)
        }
        return removed
    }

    /// What `portway cleanup` removed.
    public struct CleanupReport: Sendable, Equatable {
        public var links: [String] = []
        public var clsactFilters: [String] = []
        public var pins: [String] = []
        public var policyRoute = false
    }

    /// Removes everything Portway put in the calling thread's network namespace and under `bpffs`:
    /// every pinned link (tc and cgroup: the programs detach), Portway's clsact filters on any device
    /// (older kernels), the L7 proxy's policy rule and route, then the pinned maps and the
    /// directory. Traffic to Services stops being served: run it only to uninstall.
    public static func cleanup(bpffs: String) throws -> CleanupReport {
        guard geteuid() == 0 else { throw DatapathError.notRoot }
        var report = CleanupReport()
        let linksDir = Attacher.linksDirectory(bpffs: bpffs)
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: linksDir)) ?? []).sorted() {
            let pin = (linksDir as NSString).appendingPathComponent(name)
            let fd = bpf_obj_get(pin)
            if fd >= 0 {
                _ = bpf_link_detach(fd)
                Glibc.close(fd)
            }
            unlink(pin)
            report.links.append(name)
        }
        rmdir(linksDir)
        for device in (try? NetworkDevices.list()) ?? [] {
            for ingress: Int32 in [1, 0] where portway_dp_tc_query(device.ifindex, ingress) > 0 {
                if portway_dp_tc_detach(device.ifindex, ingress) == 0 { report.clsactFilters.append("\(device.name) \(ingress == 1 ? "ingress" : "egress")") }
            }
        }
        if portway_dp_proxy_route_present() == 1 {
            let rc = portway_dp_proxy_route_remove()
            guard rc == 0 else { throw DatapathError.io(path: "table \(PW_PROXY_ROUTE_TABLE)", errno: -rc, what: "cannot remove the L7 proxy's policy route from") }
            report.policyRoute = true
        }
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: bpffs)) ?? []).sorted() {
            let path = (bpffs as NSString).appendingPathComponent(name)
            if unlink(path) == 0 { report.pins.append(name) }
        }
        rmdir(bpffs)
        return report
    }

    /// Removes the L7 proxy's policy rule and route from the calling thread's network namespace
    /// (tests and tools that installed a datapath in a namespace they keep). Returns whether it was there.
    @discardableResult
    public static func removeProxyRoute() throws -> Bool {
        guard portway_dp_proxy_route_present() == 1 else { return false }
        let rc = portway_dp_proxy_route_remove()
        guard rc == 0 else { throw DatapathError.io(path: "table \(PW_PROXY_ROUTE_TABLE)", errno: -rc, what: "cannot remove the L7 proxy's policy route from") }
        return true
    }
}
