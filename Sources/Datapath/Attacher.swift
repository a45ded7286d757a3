import CLibBPF
import CPortwayBPF
import Foundation

/// Which tc hook a program runs on.
public enum Direction: String, Sendable, CaseIterable {
    case ingress, egress
}

/// How a program is attached: a tcx link pinned under `<bpffs>/links` (Linux 6.6+), or a clsact
/// filter (older kernels). Both outlive the process that attached them.
public enum AttachMode: String, Sendable {
    case tcx, tc
}

/// One program attached to one device hook.
public struct AttachedProgram: Sendable, Equatable, CustomStringConvertible {
    public var device: String
    public var direction: Direction
    public var mode: AttachMode
    /// The kernel's id of the attached program.
    public var programID: UInt32

    public init(device: String, direction: Direction, mode: AttachMode, programID: UInt32) {
        self.device = device
        self.direction = direction
        self.mode = mode
        self.programID = programID
    }

    public var description: String { "\(device) \(direction.rawValue) \(mode.rawValue) prog \(programID)" }
}

/// Attaches, finds and detaches the datapath programs on devices of the calling thread's
/// network namespace.
enum Attacher {
    static func linksDirectory(bpffs: String) -> String { (bpffs as NSString).appendingPathComponent("links") }

    static func linkPin(bpffs: String, device: String, direction: Direction) -> String {
        (linksDirectory(bpffs: bpffs) as NSString).appendingPathComponent("\(device)_\(direction.rawValue)")
    }

    static func ifindex(_ device: String) throws -> Int32 {
        let index = if_nametoindex(device)
        guard index != 0 else { throw DatapathError.deviceNotFound(device) }
        return Int32(index)
    }

    private static func attachType(_ direction: Direction) -> UInt32 {
        UInt32(direction == .ingress ? PORTWAY_BPF_TCX_INGRESS : PORTWAY_BPF_TCX_EGRESS)
    }

    /// The pinned tcx link of (device, direction) if it is still attached to that device.
    private static func liveLink(pin: String, ifindex: Int32, direction: Direction) -> (fd: Int32, progID: UInt32)? {
        guard FileManager.default.fileExists(atPath: pin) else { return nil }
        let fd = bpf_obj_get(pin)
        guard fd >= 0 else { return nil }
        var progID: UInt32 = 0, linkIfindex: UInt32 = 0, type: UInt32 = 0
        if portway_dp_link_info(fd, &progID, &linkIfindex, &type) == 0, Int32(linkIfindex) == ifindex,
            type == attachType(direction)
        {
            return (fd, progID)
        }
        Glibc.close(fd)
        return nil
    }

    /// Attaches `progFD` to the device hook, replacing Portway's earlier program atomically when
    /// one is attached (bpf_link_update), so traffic is not interrupted.
    static func attach(progFD: Int32, device: String, direction: Direction, bpffs: String, mode: AttachMode?) throws
        -> AttachedProgram
    {
        let index = try ifindex(device)
        var progID: UInt32 = 0
        _ = portway_dp_prog_id(progFD, &progID)
        let ingress: Int32 = direction == .ingress ? 1 : 0

        if mode != .tc {
            let pin = linkPin(bpffs: bpffs, device: device, direction: direction)
            if let live = liveLink(pin: pin, ifindex: index, direction: direction) {
                defer { Glibc.close(live.fd) }
                let rc = portway_dp_link_update(live.fd, progFD)
                guard rc == 0 else {
                    throw DatapathError.attachFailed(
                        device: device, direction: direction.rawValue, errno: -rc, detail: "updating the pinned tcx link \(pin)")
                }
                return AttachedProgram(device: device, direction: direction, mode: .tcx, programID: progID)
            }
            // A stale pin (device deleted or recreated): drop it and link afresh.
            if FileManager.default.fileExists(atPath: pin) { unlink(pin) }
            let fd = portway_dp_tcx_link_create(progFD, index, ingress)
            if fd >= 0 {
                defer { Glibc.close(fd) }
                try makeDirectory(linksDirectory(bpffs: bpffs))
                if bpf_obj_pin(fd, pin) != 0 {
                    let err = errno
                    _ = bpf_link_detach(fd)
                    throw DatapathError.attachFailed(
                        device: device, direction: direction.rawValue, errno: err, detail: "pinning the tcx link at \(pin)")
                }
                // Never run twice: remove a clsact filter left from an earlier tc-mode attach.
                _ = portway_dp_tc_detach(index, ingress)
                return AttachedProgram(device: device, direction: direction, mode: .tcx, programID: progID)
            }
            // EINVAL: the kernel predates tcx (Linux < 6.6); fall back to clsact unless told tcx.
            if fd != -EINVAL || mode == .tcx {
                throw DatapathError.attachFailed(
                    device: device, direction: direction.rawValue, errno: -fd, detail: "creating a tcx link")
            }
        }
        let rc = portway_dp_tc_attach(progFD, index, ingress)
        guard rc == 0 else {
            throw DatapathError.attachFailed(device: device, direction: direction.rawValue, errno: -rc, detail: "clsact filter")
        }
        return AttachedProgram(device: device, direction: direction, mode: .tc, programID: progID)
    }

    /// What is attached to the device hook by Portway, if anything.
    static func attachment(device: String, direction: Direction, bpffs: String) -> AttachedProgram? {
        guard let index = try? ifindex(device) else { return nil }
        let pin = linkPin(bpffs: bpffs, device: device, direction: direction)
        if let live = liveLink(pin: pin, ifindex: index, direction: direction) {
            Glibc.close(live.fd)
            return AttachedProgram(device: device, direction: direction, mode: .tcx, programID: live.progID)
        }
        let id = portway_dp_tc_query(index, direction == .ingress ? 1 : 0)
        if id > 0 { return AttachedProgram(device: device, direction: direction, mode: .tc, programID: UInt32(id)) }
        return nil
    }

    /// Detaches Portway's program from the device hook (tcx link and clsact filter) and removes
    /// the link's pin. Returns what was detached.
    static func detach(device: String, direction: Direction, bpffs: String) -> AttachedProgram? {
        let found = attachment(device: device, direction: direction, bpffs: bpffs)
        let pin = linkPin(bpffs: bpffs, device: device, direction: direction)
        if FileManager.default.fileExists(atPath: pin) {
            let fd = bpf_obj_get(pin)
            if fd >= 0 {
                _ = bpf_link_detach(fd)
                Glibc.close(fd)
            }
            unlink(pin)
        }
        if let index = try? ifindex(device) {
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
