import CLibBPF
import CPortwayBPF
import Foundation

/// Which tc hook a program runs on.
public enum Direction: String, Sendable, CaseIterable {
    case ingress, egress
}

/// How a program is attached: a tcx link pinned under `<bpffs>/links` (Linux 6.6+), a clsact
/// filter (older kernels), or a cgroup or network-namespace link pinned under `<bpffs>/links`.
/// All outlive the process that attached them.
public enum AttachMode: String, Sendable {
    case tcx, tc
    case cgroup = "cgroup-link"
    case netns = "netns-link"
}

/// One program attached to one target.
public struct AttachedProgram: Sendable, Equatable, CustomStringConvertible {
    /// The program's name in the BPF object.
    public var program: String
    public var target: AttachTarget
    public var mode: AttachMode
    /// The kernel's id of the attached program.
    public var programID: UInt32

    public init(program: String, target: AttachTarget, mode: AttachMode, programID: UInt32) {
        self.program = program
        self.target = target
        self.mode = mode
        self.programID = programID
    }

    /// The device of a tc attachment (nil for cgroup hooks).
    public var device: String? {
        if case .tc(let device, _) = target { return device }
        return nil
    }

    /// The direction of a tc attachment (nil for cgroup hooks).
    public var direction: Direction? {
        if case .tc(_, let direction) = target { return direction }
        return nil
    }

    public var description: String { "\(target) \(mode.rawValue) prog \(programID) (\(program))" }
}

/// Attaches, finds and detaches the datapath programs; device names resolve in the calling
/// thread's network namespace. One code path for every kind of target.
enum Attacher {
    static func linksDirectory(bpffs: String) -> String { (bpffs as NSString).appendingPathComponent("links") }

    static func linkPin(bpffs: String, target: AttachTarget) -> String {
        (linksDirectory(bpffs: bpffs) as NSString).appendingPathComponent(target.pinName)
    }

    static func ifindex(_ device: String) throws -> Int32 {
        let index = if_nametoindex(device)
        guard index != 0 else { throw DatapathError.deviceNotFound(device) }
        return Int32(index)
    }

    /// Checks that a target can be attached to (device exists, cgroup v2 directory exists).
    static func check(_ target: AttachTarget) throws {
        switch target {
        case .tc(let device, _): _ = try ifindex(device)
        case .cgroup(let path, _): _ = try CgroupV2.id(of: path)
        case .netns: break
        }
    }

    /// Attaches `progFD` to the target, replacing Portway's earlier program atomically when one
    /// is attached (bpf_link_update), so traffic is not interrupted.
    static func attach(progFD: Int32, entry: PlannedAttachment, bpffs: String, mode: AttachMode?) throws -> AttachedProgram {
        var progID: UInt32 = 0
        _ = portway_dp_prog_id(progFD, &progID)
        let target = entry.target
        func attached(_ mode: AttachMode) -> AttachedProgram {
            AttachedProgram(program: entry.program, target: target, mode: mode, programID: progID)
        }
        let pin = linkPin(bpffs: bpffs, target: target)

        switch target {
        case .tc(let device, let direction):
            let index = try ifindex(device)
            let ingress: Int32 = direction == .ingress ? 1 : 0
            if mode != .tc {
                if try updateLiveLink(pin: pin, target: target, progFD: progFD) { return attached(.tcx) }
                let fd = portway_dp_tcx_link_create(progFD, index, ingress)
                if fd >= 0 {
                    try pinLink(fd: fd, pin: pin, bpffs: bpffs, target: target)
                    // Never run twice: remove a clsact filter left from an earlier tc-mode attach.
                    _ = portway_dp_tc_detach(index, ingress)
                    return attached(.tcx)
                }
                // EINVAL: the kernel predates tcx (Linux < 6.6); fall back to clsact unless told tcx.
                if fd != -EINVAL || mode == .tcx {
                    throw DatapathError.attachFailed(target: target.description, errno: -fd, detail: "creating a tcx link")
                }
            }
            let rc = portway_dp_tc_attach(progFD, index, ingress)
            guard rc == 0 else { throw DatapathError.attachFailed(target: target.description, errno: -rc, detail: "clsact filter") }
            return attached(.tc)

        case .cgroup(let path, let hook):
            if try updateLiveLink(pin: pin, target: target, progFD: progFD) { return attached(.cgroup) }
            let cgroupFD = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard cgroupFD >= 0 else {
                throw DatapathError.attachFailed(target: target.description, errno: errno, detail: "opening the cgroup")
            }
            defer { Glibc.close(cgroupFD) }
            let fd = portway_dp_cgroup_link_create(progFD, cgroupFD, CgroupV2.attachType(hook))
            guard fd >= 0 else {
                throw DatapathError.attachFailed(target: target.description, errno: -fd, detail: "creating a cgroup link")
            }
            try pinLink(fd: fd, pin: pin, bpffs: bpffs, target: target)
            return attached(.cgroup)

        case .netns(let hook):
            if try updateLiveLink(pin: pin, target: target, progFD: progFD) { return attached(.netns) }
            let fd = portway_dp_netns_link_create(progFD, hook.attachType)
            guard fd >= 0 else {
                throw DatapathError.attachFailed(target: target.description, errno: -fd, detail: "creating a network namespace link")
            }
            try pinLink(fd: fd, pin: pin, bpffs: bpffs, target: target)
            return attached(.netns)
        }
    }

    /// Swaps the program of the pinned link when it is still attached where `target` says.
    /// A stale pin (device recreated, another cgroup) is detached and removed; returns false then.
    private static func updateLiveLink(pin: String, target: AttachTarget, progFD: Int32) throws -> Bool {
        guard FileManager.default.fileExists(atPath: pin) else { return false }
        let fd = bpf_obj_get(pin)
        guard fd >= 0 else {
            unlink(pin)
            return false
        }
        defer { Glibc.close(fd) }
        if liveProgramID(linkFD: fd, target: target) != nil {
            let rc = portway_dp_link_update(fd, progFD)
            guard rc == 0 else {
                throw DatapathError.attachFailed(target: target.description, errno: -rc, detail: "updating the pinned link \(pin)")
            }
            return true
        }
        _ = bpf_link_detach(fd)
        unlink(pin)
        return false
    }

    private static func pinLink(fd: Int32, pin: String, bpffs: String, target: AttachTarget) throws {
        defer { Glibc.close(fd) }
        try makeDirectory(linksDirectory(bpffs: bpffs))
        if bpf_obj_pin(fd, pin) != 0 {
            let err = errno
            _ = bpf_link_detach(fd)
            throw DatapathError.attachFailed(target: target.description, errno: err, detail: "pinning the link at \(pin)")
        }
    }

    /// The program id of a link if it is attached to `target` now.
    private static func liveProgramID(linkFD: Int32, target: AttachTarget) -> UInt32? {
        var progID: UInt32 = 0, where1: UInt64 = 0, type: UInt32 = 0
        guard portway_dp_link_target(linkFD, &progID, &where1, &type) == 0 else { return nil }
        switch target {
        case .tc(let device, let direction):
            guard let index = try? ifindex(device) else { return nil }
            let want = UInt32(direction == .ingress ? PORTWAY_BPF_TCX_INGRESS : PORTWAY_BPF_TCX_EGRESS)
            return where1 == UInt64(index) && type == want ? progID : nil
        case .cgroup(let path, let hook):
            guard let id = try? CgroupV2.id(of: path) else { return nil }
            return where1 == id && type == CgroupV2.attachType(hook) ? progID : nil
        case .netns(let hook):
            var inode: UInt64 = 0
            guard portway_dp_netns_inode(&inode) == 0 else { return nil }
            return where1 == inode && type == hook.attachType ? progID : nil
        }
    }

    /// What Portway has attached to the target, if anything.
    static func attachment(_ entry: PlannedAttachment, bpffs: String) -> AttachedProgram? {
        let target = entry.target
        let pin = linkPin(bpffs: bpffs, target: target)
        if FileManager.default.fileExists(atPath: pin) {
            let fd = bpf_obj_get(pin)
            if fd >= 0 {
                defer { Glibc.close(fd) }
                if let id = liveProgramID(linkFD: fd, target: target) {
                    let mode: AttachMode =
                        switch target {
                        case .tc: .tcx
                        case .cgroup: .cgroup
                        case .netns: .netns
                        }
                    return AttachedProgram(program: entry.program, target: target, mode: mode, programID: id)
                }
            }
        }
        if case .tc(let device, let direction) = target, let index = try? ifindex(device) {
            let id = portway_dp_tc_query(index, direction == .ingress ? 1 : 0)
            if id > 0 { return AttachedProgram(program: entry.program, target: target, mode: .tc, programID: UInt32(id)) }
        }
        return nil
    }

    /// Detaches Portway's program from the target (link and, for tc, clsact filter) and removes
    /// the link's pin. Returns what was attached.
    static func detach(_ entry: PlannedAttachment, bpffs: String) -> AttachedProgram? {
        let found = attachment(entry, bpffs: bpffs)
        let pin = linkPin(bpffs: bpffs, target: entry.target)
        if FileManager.default.fileExists(atPath: pin) {
            let fd = bpf_obj_get(pin)
            if fd >= 0 {
                _ = bpf_link_detach(fd)
                Glibc.close(fd)
            }
            unlink(pin)
        }
        if case .tc(let device, let direction) = entry.target, let index = try? ifindex(device) {
            _ = portway_dp_tc_detach(index, direction == .ingress ? 1 : 0)
        }
        return found
    }

    static func makeDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw DatapathError.io(path: path, errno: errno == 0 ? EIO : errno, what: "cannot create directory")
        }
    }
}

extension NetnsHook {
    /// The kernel attach type of a hook (enum bpf_attach_type).
    var attachType: UInt32 {
        switch self {
        case .skLookup: BPF_SK_LOOKUP.rawValue
        }
    }
}

/// cgroup v2 helpers: the id of a cgroup directory and the default root.
public enum CgroupV2 {
    /// The kernel attach type of a hook (enum bpf_attach_type).
    static func attachType(_ hook: CgroupHook) -> UInt32 {
        switch hook {
        case .connect4: BPF_CGROUP_INET4_CONNECT.rawValue
        case .sendmsg4: BPF_CGROUP_UDP4_SENDMSG.rawValue
        case .recvmsg4: BPF_CGROUP_UDP4_RECVMSG.rawValue
        case .getpeername4: BPF_CGROUP_INET4_GETPEERNAME.rawValue
        }
    }

    /// The cgroup id (the directory's inode number on cgroup2) of a cgroup v2 directory.
    static func id(of path: String) throws -> UInt64 {
        var st = stat()
        guard stat(path, &st) == 0 else { throw DatapathError.cgroupNotFound(path, errno: errno) }
        guard portway_dp_is_cgroup2(path) == 1 else { throw DatapathError.cgroupNotFound(path, errno: ENOTDIR) }
        return UInt64(st.st_ino)
    }

    /// The cgroup v2 directory to attach socket-LB to for a `--cgroup-path`: the path itself when
    /// it is cgroup v2, else the first cgroup2 mount below it (a host's /sys/fs/cgroup mounted into
    /// the agent's container: on a hybrid host the v2 hierarchy is its `unified` submount), else
    /// the path unchanged (the attach then says it is not cgroup v2).
    public static func resolve(_ path: String, mounts: String? = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) -> String {
        if portway_dp_is_cgroup2(path) == 1 { return path }
        guard let mounts else { return path }
        let base = path.hasSuffix("/") ? String(path.dropLast()) : path
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count >= 3, fields[2] == "cgroup2", fields[1].hasPrefix(base + "/") { return String(fields[1]) }
        }
        return path
    }

    /// The first cgroup2 mount point in `/proc/mounts` (e.g. /sys/fs/cgroup, or
    /// /sys/fs/cgroup/unified on hybrid hosts), or nil.
    public static func defaultRoot(mounts: String? = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) -> String? {
        guard let mounts else { return nil }
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count >= 3, fields[2] == "cgroup2" { return String(fields[1]) }
        }
        return nil
    }
}
