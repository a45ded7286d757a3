import Agent
import ArgumentParser
import KubeAPI
import LoadBalancer
import Runtime
import Views

@main
struct Portway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "portway",
        abstract: "Kubernetes Service load balancing in eBPF, with an L7 proxy for Gateway traffic.",
        version: portwayRelease,
        subcommands: [Version.self, Translate.self, Routes.self, Explain.self, BPF.self, AgentCommand.self, Probe.self, Cleanup.self]
    )
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the versions of Portway and its C libraries.")

    func run() throws {
        print("portway: \(portwayRelease)")
        print("commit: \(portwayCommit)")
        for (name, version) in linkedLibraryVersions().sorted(by: { $0.key < $1.key }) {
            print("\(name): \(version)")
        }
    }
}

/// `--endpoints-source endpointslices|endpoints`, parsed once for every command.
extension EndpointsSource: ExpressibleByArgument {}
