import Foundation

/// A cgroup v2 socket hook used by socket-level load balancing.
public enum CgroupHook: String, Sendable, CaseIterable {
    case connect4, sendmsg4, recvmsg4, getpeername4
}

/// A hook of the node's network namespace (a netns link).
public enum NetnsHook: String, Sendable, CaseIterable {
    /// The listener lookup of TCP: steers L7LB connections to the proxy's listeners.
    case skLookup = "sk_lookup"
}

/// Where one program of the datapath runs.
public enum AttachTarget: Sendable, Hashable, CustomStringConvertible {
    /// The tc hook of a network device (tcx link, or clsact filter on older kernels).
    case tc(device: String, direction: Direction)
    /// A cgroup v2 socket hook (a pinned cgroup link).
    case cgroup(path: String, hook: CgroupHook)
    /// A hook of the calling thread's network namespace (a pinned netns link).
    case netns(hook: NetnsHook)

    /// The link pin's file name under `<bpffs>/links` (kept stable across versions: an upgrade
    /// finds the links of the previous agent by these names and swaps their programs in place).
    var pinName: String {
        switch self {
        case .tc(let device, let direction): "\(device)_\(direction.rawValue)"
        case .cgroup(_, let hook): "cgroup_\(hook.rawValue)"
        case .netns(let hook): "netns_\(hook.rawValue)"
        }
    }

    public var description: String {
        switch self {
        case .tc(let device, let direction): "\(device) \(direction.rawValue)"
        case .cgroup(let path, let hook): "cgroup \(path) \(hook.rawValue)"
        case .netns(let hook): "netns \(hook.rawValue)"
        }
    }
}

/// One program of the plan and where it is attached.
public struct PlannedAttachment: Sendable, Hashable {
    /// The program's name in the BPF object (its C function name).
    public var program: String
    public var target: AttachTarget

    public init(program: String, target: AttachTarget) {
        self.program = program
        self.target = target
    }
}

/// Every program of the datapath with its target, in attach order. Loading, attaching, pinning
/// links, re-attaching on upgrade, status and detaching all walk this one list.
public struct AttachPlan: Sendable, Equatable {
    public var entries: [PlannedAttachment]

    public init(entries: [PlannedAttachment]) { self.entries = entries }

    /// Program names in the BPF object (bpf/progs/portway_lb.c).
    public enum Program {
        public static let externalIngress = "pw_ingress"
        public static let externalEgress = "pw_egress"
        public static let podIngress = "pw_from_pod"
        public static let podEgress = "pw_to_pod"
        public static func cgroup(_ hook: CgroupHook) -> String { "pw_sock_\(hook.rawValue)" }
        public static let skLookup = "pw_sk_lookup"
    }

    /// The plan for a set of options. Order matters: reverse translations go first (egress
    /// before ingress, recvmsg/getpeername before connect/sendmsg), so a flow is never translated
    /// one way without its replies being translated back.
    /// Where tc programs run, `pw_sk_lookup` comes first: the tc programs are loaded knowing it is
    /// there (they pass L7LB TCP up the stack for it to steer).
    public static func make(_ options: DatapathOptions) -> AttachPlan {
        var entries: [PlannedAttachment] = []
        if options.skLookup && !(options.devices.isEmpty && options.podDevices.isEmpty) {
            entries.append(PlannedAttachment(program: Program.skLookup, target: .netns(hook: .skLookup)))
        }
        for device in options.devices {
            entries.append(PlannedAttachment(program: Program.externalEgress, target: .tc(device: device, direction: .egress)))
            entries.append(PlannedAttachment(program: Program.externalIngress, target: .tc(device: device, direction: .ingress)))
        }
        for device in options.podDevices where !options.devices.contains(device) {
            entries.append(PlannedAttachment(program: Program.podEgress, target: .tc(device: device, direction: .egress)))
            entries.append(PlannedAttachment(program: Program.podIngress, target: .tc(device: device, direction: .ingress)))
        }
        if let path = options.socketLBCgroup {
            for hook in [CgroupHook.recvmsg4, .getpeername4, .connect4, .sendmsg4] {
                entries.append(PlannedAttachment(program: Program.cgroup(hook), target: .cgroup(path: path, hook: hook)))
            }
        }
        return AttachPlan(entries: entries)
    }

    /// Every program name the plan needs from the object.
    public var programs: [String] {
        var seen: Set<String> = []
        return entries.map(\.program).filter { seen.insert($0).inserted }
    }
}
