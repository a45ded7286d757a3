import Agent
import ArgumentParser

@main
struct Portway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "portway",
        abstract: "Kubernetes Service load balancing in eBPF, with an L7 proxy for Gateway traffic.",
        subcommands: [Version.self, Translate.self, Routes.self, Explain.self, BPF.self, AgentCommand.self]
    )
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the versions of Portway and its C libraries.")

    func run() throws {
        for (name, version) in linkedLibraryVersions().sorted(by: { $0.key < $1.key }) {
            print("\(name): \(version)")
        }
    }
}
