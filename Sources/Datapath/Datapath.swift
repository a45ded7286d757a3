import CLibBPF
import CPortwayBPF
import Foundation

/// What to load and where to attach it.
public struct DatapathOptions: Sendable {
    /// External devices of the node (`--device`, repeatable), in the caller's network namespace.
    public var devices: [String]
    /// Pod-facing devices (`--pod-device`): traffic entering from them may reach ClusterIPs
    /// through the tc path (when socket-LB is off) and L7LB frontends through the proxy redirect.
    public var podDevices: [String]
    /// The cgroup v2 directory whose sockets get socket-level load balancing; nil: socket-LB off.
    public var socketLBCgroup: String?
    /// The bpffs directory holding the pinned maps and links (`--bpffs`).
    public var bpffs: String
    /// An explicit object path (`--bpf-object`); nil: `$PORTWAY_BPF_DIR/portway_lb.o` when set, else
    /// the object embedded in the binary (`ObjectLocator`).
    public var objectPath: String?
    /// max_entries by map name, used only for maps that are not pinned yet (pinned maps keep theirs).
    public var mapSizes: [String: UInt32]
    /// nil: tcx where the kernel has it, clsact otherwise (tc targets only).
    public var mode: AttachMode?
    /// eBPF host routing (on unless `--no-host-routing`; off anyway where the kernel lacks it).
    public var hostRouting: Bool
    /// The sk_lookup program on the node's network namespace, through which TCP for L7LB frontends
    /// reaches the proxy's registered listeners (`L7ListenerMap`) with the kernel's TIME_WAIT
    /// handling. Install leaves it out where the kernel lacks sk_lookup (the tc programs then hand
    /// every packet to the listener with bpf_sk_assign).
    public var skLookup: Bool = true

    public init(
        devices: [String], podDevices: [String] = [], socketLBCgroup: String? = nil, bpffs: String = "/sys/fs/bpf/portway",
        objectPath: String? = nil, mapSizes: [String: UInt32] = [:], mode: AttachMode? = nil, hostRouting: Bool = true
    ) {
        self.devices = devices
        self.podDevices = podDevices
        self.socketLBCgroup = socketLBCgroup
        self.bpffs = bpffs
        self.objectPath = objectPath
        self.mapSizes = mapSizes
        self.mode = mode
        self.hostRouting = hostRouting
    }
}

/// Loads Portway's programs and attaches them where the `AttachPlan` says: tc hooks of the
/// node's external and pod-facing devices, and the cgroup v2 socket hooks of socket-LB.
///
/// The programs and maps outlive the calling process: links are pinned under
/// `<bpffs>/links/<name>` and clsact filters stay on their devices, so an agent restart does not
/// interrupt traffic; a new `install` swaps the programs in place.
/// These calls block (syscalls, verifier): call them from a dedicated thread, not from Swift's
/// cooperative pool. Device names resolve in the calling thread's network namespace.
public enum Datapath {
    /// Loads the object (reusing the pinned maps) and attaches every program of the plan.
    /// All targets are checked before anything is attached.
    @discardableResult
    public static func install(_ options: DatapathOptions) throws -> [AttachedProgram] {
        try checkPrerequisites(bpffs: options.bpffs)
        var options = options
        options.skLookup = options.skLookup && skLookupSupported
        let plan = AttachPlan.make(options)
        for entry in plan.entries { try Attacher.check(entry.target) }
        let source = try ObjectLocator.locate(explicit: options.objectPath)
        let object = try ProgramLoader.load(
            object: source, bpffs: options.bpffs, mapSizes: options.mapSizes, programs: plan.programs,
            config: try config(for: options), skip: skLookupSupported ? [] : [AttachPlan.Program.skLookup])
        defer { object.close() }
        // L7LB frontends are handed to the proxy with their destination unchanged: the marked
        // packets need a route that delivers them locally (only where tc programs run).
        if plan.entries.contains(where: { if case .tc = $0.target { true } else { false } }) {
            let rc = portway_dp_proxy_route_install()
            if rc != 0 {
                throw DatapathError.io(path: "table \(PW_PROXY_ROUTE_TABLE)", errno: -rc, what: "cannot install the L7 proxy's policy route in")
            }
        }
        var attached: [AttachedProgram] = []
        for entry in plan.entries {
            guard let fd = object.programFDs[entry.program] else { throw DatapathError.programMissing(entry.program) }
            attached.append(try Attacher.attach(progFD: fd, entry: entry, bpffs: options.bpffs, mode: options.mode))
        }
        // Socket-LB turned off since the last install: its cgroup links must go.
        if options.socketLBCgroup == nil { _ = detachPinnedCgroupLinks(bpffs: options.bpffs) }
        return attached
    }

    /// The configuration compiled into the programs at load time.
    static func config(for options: DatapathOptions) throws -> pw_dp_config {
        var config = pw_dp_config()
        var cookie: UInt64 = 0
        let rc = portway_dp_netns_cookie(&cookie)
        if rc != 0 { throw DatapathError.io(path: "SO_NETNS_COOKIE", errno: -rc, what: "cannot read the network namespace cookie") }
        config.node_netns_cookie = cookie
        if options.socketLBCgroup != nil { config.flags |= UInt32(PW_CFG_SOCKET_LB) }
        // Pod-facing devices: host routing enters the pod through the veth's peer directly.
        // (A device that is also external is not a veth into a pod.)
        let peers = options.podDevices.filter { !options.devices.contains($0) }.compactMap { try? Attacher.ifindex($0) }
            .prefix(Int(PW_MAX_PEER_DEVICES))
        withUnsafeMutableBytes(of: &config.peer_ifindex) { raw in
            let slots = raw.bindMemory(to: UInt32.self)
            for (i, index) in peers.enumerated() { slots[i] = UInt32(index) }
        }
        config.peer_device_count = UInt32(peers.count)
        if AttachPlan.make(options).entries.contains(where: { $0.target == .netns(hook: .skLookup) }) {
            config.flags |= UInt32(PW_CFG_SK_LOOKUP)
        }
        let routing = HostRoutingMode.decide(requested: options.hostRouting)
        if routing.enabled {
            config.flags |= UInt32(PW_CFG_HOST_ROUTING)
        } else if options.hostRouting {
            config.flags |= UInt32(PW_CFG_HOST_ROUTING_UNSUPPORTED)
        }
        return config
    }

    /// Whether this kernel has what `pw_sk_lookup` needs (sk_lookup programs, bpf_sk_assign there, SOCKHASH).
    public static let skLookupSupported: Bool = portway_dp_have_sk_lookup() == 1

    /// Detaches every program of the plan (tc, netns and cgroup) and removes the link pins, plus any
    /// cgroup link still pinned under `<bpffs>/links`. The maps stay pinned (BPFMaps owns them).
    /// Returns what was attached before.
    @discardableResult
    public static func uninstall(_ options: DatapathOptions) throws -> [AttachedProgram] {
        guard geteuid() == 0 else { throw DatapathError.notRoot }
        var removed = AttachPlan.make(options).entries.compactMap { Attacher.detach($0, bpffs: options.bpffs) }
        removed += detachPinnedCgroupLinks(bpffs: options.bpffs)
        return removed
    }

    /// Detaches the programs from the devices (and any cgroup links) and removes their link pins.
    @discardableResult
    public static func uninstall(devices: [String], bpffs: String = "/sys/fs/bpf/portway") throws -> [AttachedProgram] {
        try uninstall(DatapathOptions(devices: devices, bpffs: bpffs))
    }

    /// The host routing mode of what is attached now (read from the first attached tc program),
    /// or nil when nothing is attached.
    public static func hostRouting(_ options: DatapathOptions) -> HostRoutingMode? {
        attachments(options).lazy.filter { $0.device != nil }.compactMap { HostRoutingMode.ofProgram(id: $0.programID) }.first
    }

    /// What Portway has attached now: the plan's targets, and cgroup links pinned under the bpffs.
    public static func attachments(_ options: DatapathOptions) -> [AttachedProgram] {
        var found = AttachPlan.make(options).entries.compactMap { Attacher.attachment($0, bpffs: options.bpffs) }
        if options.socketLBCgroup == nil { found += pinnedCgroupLinks(bpffs: options.bpffs) }
        return found
    }

    /// What Portway has attached to the devices (and to cgroup hooks) now.
    public static func attachments(devices: [String], bpffs: String = "/sys/fs/bpf/portway") -> [AttachedProgram] {
        attachments(DatapathOptions(devices: devices, bpffs: bpffs))
    }

    /// The cgroup links pinned under `<bpffs>/links`, wherever they are attached.
    static func pinnedCgroupLinks(bpffs: String) -> [AttachedProgram] {
        let dir = Attacher.linksDirectory(bpffs: bpffs)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.sorted().compactMap { name -> AttachedProgram? in
            guard name.hasPrefix("cgroup_"), let hook = CgroupHook(rawValue: String(name.dropFirst("cgroup_".count))) else {
                return nil
            }
            let fd = bpf_obj_get((dir as NSString).appendingPathComponent(name))
            guard fd >= 0 else { return nil }
            defer { Glibc.close(fd) }
            var progID: UInt32 = 0, cgroupID: UInt64 = 0, type: UInt32 = 0
            guard portway_dp_link_target(fd, &progID, &cgroupID, &type) == 0, cgroupID != 0 else { return nil }
            return AttachedProgram(
                program: AttachPlan.Program.cgroup(hook), target: .cgroup(path: "cgroup id \(cgroupID)", hook: hook),
                mode: .cgroup, programID: progID)
        }
    }

    private static func detachPinnedCgroupLinks(bpffs: String) -> [AttachedProgram] {
        let found = pinnedCgroupLinks(bpffs: bpffs)
        let dir = Attacher.linksDirectory(bpffs: bpffs)
        for hook in CgroupHook.allCases {
            let pin = (dir as NSString).appendingPathComponent("cgroup_\(hook.rawValue)")
            guard FileManager.default.fileExists(atPath: pin) else { continue }
            let fd = bpf_obj_get(pin)
            if fd >= 0 {
                _ = bpf_link_detach(fd)
                Glibc.close(fd)
            }
            unlink(pin)
        }
        return found
    }

    /// Root, and a bpffs at (or above) `bpffs`; creates the directory.
    public static func checkPrerequisites(bpffs: String) throws {
        guard geteuid() == 0 else { throw DatapathError.notRoot }
        var probe = bpffs
        while !FileManager.default.fileExists(atPath: probe), probe != "/" {
            probe = (probe as NSString).deletingLastPathComponent
            if probe.isEmpty { probe = "/" }
        }
        guard portway_dp_is_bpffs(probe) == 1 else {
            throw DatapathError.bpffsNotMounted(bpffs)
        }
        try Attacher.makeDirectory(bpffs)
    }
}
