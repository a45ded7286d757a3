import CLibBPF
import CPortwayBPF
import Foundation

/// What to load and where to attach it.
public struct DatapathOptions: Sendable {
    /// External devices of the node (`--device`, repeatable), in the caller's network namespace.
    public var devices: [String]
    /// The bpffs directory holding the pinned maps and links (`--bpffs`).
    public var bpffs: String
    /// An explicit object path; nil searches `ObjectLocator.candidates`.
    public var objectPath: String?
    /// max_entries by map name, used only for maps that are not pinned yet (pinned maps keep theirs).
    public var mapSizes: [String: UInt32]
    /// nil: tcx where the kernel has it, clsact otherwise.
    public var mode: AttachMode?

    public init(
        devices: [String], bpffs: String = "/sys/fs/bpf/portway", objectPath: String? = nil,
        mapSizes: [String: UInt32] = [:], mode: AttachMode? = nil
    ) {
        self.devices = devices
        self.bpffs = bpffs
        self.objectPath = objectPath
        self.mapSizes = mapSizes
        self.mode = mode
    }
}

/// Loads Portway's tc programs and attaches them to the node's external devices.
///
/// The programs and maps outlive the calling process: tcx links are pinned under
/// `<bpffs>/links/<device>_<direction>` and clsact filters stay on their devices, so an agent
/// restart does not interrupt traffic; a new `install` swaps the programs in place.
/// These calls block (syscalls, verifier): call them from a dedicated thread, not from Swift's
/// cooperative pool. Device names resolve in the calling thread's network namespace.
public enum Datapath {
    /// Loads the object (reusing the pinned maps) and attaches ingress and egress to every device.
    /// All devices are checked before anything is attached.
    @discardableResult
    public static func install(_ options: DatapathOptions) throws -> [AttachedProgram] {
        try checkPrerequisites(bpffs: options.bpffs)
        for device in options.devices { _ = try Attacher.ifindex(device) }
        let path = try ObjectLocator.locate(explicit: options.objectPath)
        let object = try ProgramLoader.load(objectPath: path, bpffs: options.bpffs, mapSizes: options.mapSizes)
        defer { object.close() }
        var attached: [AttachedProgram] = []
        for device in options.devices {
            // Egress (reverse NAT) first: once ingress DNATs a flow, its replies are translated.
            let egress = try Attacher.attach(
                progFD: object.egressFD, device: device, direction: .egress, bpffs: options.bpffs, mode: options.mode)
            let ingress = try Attacher.attach(
                progFD: object.ingressFD, device: device, direction: .ingress, bpffs: options.bpffs, mode: options.mode)
            attached += [ingress, egress]
        }
        return attached
    }

    /// Detaches the programs from the devices and removes their link pins. The maps stay pinned
    /// (BPFMaps owns them). Returns what was attached before.
    @discardableResult
    public static func uninstall(devices: [String], bpffs: String = "/sys/fs/bpf/portway") throws -> [AttachedProgram] {
        guard geteuid() == 0 else { throw DatapathError.notRoot }
        var removed: [AttachedProgram] = []
        for device in devices {
            for direction in Direction.allCases {
                if let a = Attacher.detach(device: device, direction: direction, bpffs: bpffs) { removed.append(a) }
            }
        }
        return removed
    }

    /// What Portway has attached to the devices now.
    public static func attachments(devices: [String], bpffs: String = "/sys/fs/bpf/portway") -> [AttachedProgram] {
        devices.flatMap { device in
            Direction.allCases.compactMap { Attacher.attachment(device: device, direction: $0, bpffs: bpffs) }
        }
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
