import ArgumentParser
import BPFMaps
import Foundation
import LoadBalancer
import Views

/// `portway bpf …`: inspect the pinned BPF maps.
struct BPF: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bpf",
        abstract: "Inspect Portway's pinned BPF maps.",
        subcommands: [LB.self, Attach.self, Detach.self, Status.self]
    )

    struct LB: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "lb",
            abstract: "The load-balancer maps.",
            subcommands: [List.self]
        )
    }

    /// `portway bpf lb list`: reads the pinned maps themselves, not the agent's memory.
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List the frontends and backends programmed in the pinned maps.",
            discussion: """
            Prints the Cilium-style table: per frontend a master line (slot 0) with the reverse-NAT ID and \
            flags, then one line per backend slot. The JSON (-o json) is documented in docs/CLI-JSON.md.
            """
        )

        enum Output: String, ExpressibleByArgument, CaseIterable {
            case table, json
        }

        @Option(name: [.customShort("o"), .long], help: "Output format.")
        var output: Output = .table

        @Option(help: ArgumentHelp("The bpffs directory holding the pinned maps.", valueName: "DIR"))
        var bpffs: String = BPFFS.defaultDirectory

        func run() throws {
            let listing: LBListing
            do {
                listing = try LBListing.read(from: try MapSet.openExisting(bpffs: bpffs))
            } catch {
                FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                throw ExitCode.failure
            }
            switch output {
            case .table:
                FileHandle.standardError.write(Data(listing.warnings.map { "warning: \($0)\n" }.joined().utf8))
                FileHandle.standardOutput.write(Data(listing.table.utf8))
            case .json:
                FileHandle.standardOutput.write(Data((JSONValue.object(listing.json).rendered() + "\n").utf8))
            }
        }
    }
}
