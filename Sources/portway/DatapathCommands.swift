import ArgumentParser
import BPFMaps
import Datapath
import Foundation

/// Flags shared by the datapath commands.
struct DatapathDeviceOptions: ParsableArguments {
    @Option(name: .customLong("device"), help: ArgumentHelp("An external device of the node, repeatable.", valueName: "DEV"))
    var devices: [String] = []

    @Option(help: ArgumentHelp("The bpffs directory holding the pinned maps and links.", valueName: "DIR"))
    var bpffs: String = BPFFS.defaultDirectory

    func validate() throws {
        if devices.isEmpty { throw ValidationError("give at least one --device") }
    }
}

/// The datapath's optional parts, shared by `portway agent` and `portway bpf attach|detach|status`.
struct DatapathFeatureOptions: ParsableArguments {
    @Option(name: .customLong("pod-device"), help: ArgumentHelp(
        "A pod-facing device (e.g. a pod's host-side veth), repeatable: traffic from it reaches ClusterIPs through the tc path "
            + "and L7LB frontends through the proxy redirect.", valueName: "DEV"))
    var podDevices: [String] = []

    @Flag(name: .customLong("socket-lb"), help: ArgumentHelp(
        "Socket-level load balancing: cgroup v2 hooks translate ClusterIP and NodePort frontends at connect() for every "
            + "process (host and pods) under --cgroup-path."))
    var socketLB = false

    @Flag(name: .customLong("no-host-routing"), help: ArgumentHelp(
        "Leave forwarding after DNAT to the stack (routing, netfilter FORWARD) instead of bpf_fib_lookup + bpf_redirect_neigh."))
    var noHostRouting = false

    @Option(help: ArgumentHelp(
        "The cgroup v2 directory socket-LB attaches to, or a directory with a cgroup2 mount below it (the host's /sys/fs/cgroup mounted into a container; default: the cgroup2 mount in /proc/mounts).",
        valueName: "DIR"))
    var cgroupPath: String?

    func validate() throws {
        if cgroupPath != nil && !socketLB { throw ValidationError("--cgroup-path only applies with --socket-lb") }
        if socketLB && cgroupPath == nil && CgroupV2.defaultRoot() == nil {
            throw ValidationError("--socket-lb: no cgroup2 mount in /proc/mounts; mount one or pass --cgroup-path")
        }
    }

    /// Where socket-LB attaches, or nil when it is off.
    var socketLBCgroup: String? { socketLB ? (cgroupPath.map { CgroupV2.resolve($0) } ?? CgroupV2.defaultRoot()) : nil }

    func options(devices: [String], bpffs: String, objectPath: String? = nil, mapSizes: [String: UInt32] = [:], mode: AttachMode? = nil)
        -> DatapathOptions
    {
        DatapathOptions(
            devices: devices, podDevices: podDevices, socketLBCgroup: socketLBCgroup, bpffs: bpffs, objectPath: objectPath,
            mapSizes: mapSizes, mode: mode, hostRouting: !noHostRouting)
    }
}

extension BPF {
    /// `portway bpf attach`: load the tc programs onto the pinned maps and attach them, without an agent.
    struct Attach: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load the datapath and attach it to devices and cgroup hooks (the agent does this itself).",
            discussion: """
            Reuses the maps pinned under --bpffs (creating missing ones) and attaches ingress and egress \
            programs to every --device and --pod-device with tcx links pinned under <bpffs>/links, or clsact \
            filters on kernels without tcx; with --socket-lb also the cgroup v2 socket hooks (cgroup links \
            pinned there too). They stay attached after this command exits; running it again swaps the \
            programs in place. The last line says the host routing mode and why.
            """
        )

        @OptionGroup var options: DatapathDeviceOptions
        @OptionGroup var features: DatapathFeatureOptions

        @Option(help: ArgumentHelp(
            "A datapath object file to load instead of the one embedded in the binary (default: $PORTWAY_BPF_DIR/portway_lb.o when set; development).",
            valueName: "PATH"))
        var bpfObject: String?

        @Option(help: "Attach mode: tcx or tc (clsact). Default: tcx where the kernel has it.")
        var mode: String?

        func validate() throws {
            if let mode, mode != AttachMode.tcx.rawValue, mode != AttachMode.tc.rawValue {
                throw ValidationError("--mode must be tcx or tc")
            }
        }

        func run() throws {
            do {
                let attached = try Datapath.install(features.options(
                    devices: options.devices, bpffs: options.bpffs, objectPath: bpfObject, mode: mode.flatMap(AttachMode.init)))
                for a in attached { print(a.description) }
                if let routing = Datapath.hostRouting(features.options(devices: options.devices, bpffs: options.bpffs)) { print(routing) }
            } catch let error as DatapathError {
                FileHandle.standardError.write(Data("portway: \(error)\n".utf8))
                throw ExitCode.failure
            }
        }
    }

    /// `portway bpf detach`: remove the programs from devices (the maps stay pinned).
    struct Detach: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Detach the datapath from devices (and its socket-LB cgroup hooks) and remove its link pins (the maps stay).")

        @OptionGroup var options: DatapathDeviceOptions
        @Option(name: .customLong("pod-device"), help: ArgumentHelp("A pod-facing device to detach from too, repeatable.", valueName: "DEV"))
        var podDevices: [String] = []

        func run() throws {
            do {
                let removed = try Datapath.uninstall(DatapathOptions(devices: options.devices, podDevices: podDevices, bpffs: options.bpffs))
                if removed.isEmpty { print("nothing attached") }
                for a in removed { print("detached \(a.description)") }
            } catch let error as DatapathError {
                FileHandle.standardError.write(Data("portway: \(error)\n".utf8))
                throw ExitCode.failure
            }
        }
    }

    /// `portway bpf status`: what Portway has attached to devices.
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the datapath programs attached to devices and cgroup hooks.")

        @OptionGroup var options: DatapathDeviceOptions
        @Option(name: .customLong("pod-device"), help: ArgumentHelp("A pod-facing device to show too, repeatable.", valueName: "DEV"))
        var podDevices: [String] = []

        func run() throws {
            let attached = Datapath.attachments(DatapathOptions(devices: options.devices, podDevices: podDevices, bpffs: options.bpffs))
            for device in options.devices + podDevices {
                for direction in Direction.allCases {
                    let a = attached.first { $0.device == device && $0.direction == direction }
                    print("\(device) \(direction.rawValue): \(a.map { "\($0.mode.rawValue) prog \($0.programID)" } ?? "not attached")")
                }
            }
            for a in attached where a.device == nil { print("\(a.target): \(a.mode.rawValue) prog \(a.programID)") }
            let options = DatapathOptions(devices: options.devices, podDevices: podDevices, bpffs: options.bpffs)
            print(Datapath.hostRouting(options).map(\.description) ?? "host routing: nothing attached")
        }
    }
}
