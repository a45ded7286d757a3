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

extension BPF {
    /// `portway bpf attach`: load the tc programs onto the pinned maps and attach them, without an agent.
    struct Attach: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load the tc datapath and attach it to devices (the agent does this itself).",
            discussion: """
            Reuses the maps pinned under --bpffs (creating missing ones) and attaches ingress and egress \
            programs with tcx links pinned under <bpffs>/links, or clsact filters on kernels without tcx. \
            They stay attached after this command exits; running it again swaps the programs in place.
            """
        )

        @OptionGroup var options: DatapathDeviceOptions

        @Option(help: ArgumentHelp(
            "The compiled datapath object (default: $PORTWAY_BPF_DIR/portway_lb.o, ./bpf/out/portway_lb.o, /usr/lib/portway/portway_lb.o).",
            valueName: "PATH"))
        var bpfObject: String?

        @Option(help: "Attach mode: tcx or tc (clsact). Default: tcx where the kernel has it.")
        var mode: String?

        func validate() throws {
            if let mode, AttachMode(rawValue: mode) == nil { throw ValidationError("--mode must be tcx or tc") }
        }

        func run() throws {
            do {
                let attached = try Datapath.install(DatapathOptions(
                    devices: options.devices, bpffs: options.bpffs, objectPath: bpfObject, mode: mode.flatMap(AttachMode.init)))
                for a in attached { print(a.description) }
            } catch let error as DatapathError {
                FileHandle.standardError.write(Data("portway: \(error)\n".utf8))
                throw ExitCode.failure
            }
        }
    }

    /// `portway bpf detach`: remove the programs from devices (the maps stay pinned).
    struct Detach: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Detach the tc datapath from devices and remove its link pins (the maps stay).")

        @OptionGroup var options: DatapathDeviceOptions

        func run() throws {
            do {
                let removed = try Datapath.uninstall(devices: options.devices, bpffs: options.bpffs)
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
        static let configuration = CommandConfiguration(abstract: "Show the datapath programs attached to devices.")

        @OptionGroup var options: DatapathDeviceOptions

        func run() throws {
            let attached = Datapath.attachments(devices: options.devices, bpffs: options.bpffs)
            for device in options.devices {
                for direction in Direction.allCases {
                    let a = attached.first { $0.device == device && $0.direction == direction }
                    print("\(device) \(direction.rawValue): \(a.map { "\($0.mode.rawValue) prog \($0.programID)" } ?? "not attached")")
                }
            }
        }
    }
}
