import ArgumentParser
import FileSource
import Foundation
import LoadBalancer
import Views

/// `portway translate`: a thin shell over `FileSource.translate`, where the logic (and its tests) lives.
struct Translate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the desired L4 load-balancer state for a directory of Kubernetes YAML objects.",
        discussion: """
        Reads Services, EndpointSlices, Endpoints, Nodes and Gateway API objects from the *.yaml/*.yml files \
        under DIR and prints the frontends and backends this node would program (the frontends of Portway's \
        Gateways go to the L7 proxy). The JSON schema is in docs/CLI-JSON.md.
        """
    )

    enum Output: String, ExpressibleByArgument, CaseIterable {
        case json, table
    }

    @Option(name: [.customShort("f"), .customLong("from-dir")], help: ArgumentHelp("Directory of YAML files (read recursively).", valueName: "DIR"))
    var directory: String

    @Option(help: ArgumentHelp("This node's name (backends on it are local).", valueName: "NAME"))
    var nodeName: String

    @Option(help: ArgumentHelp(
        "An IPv4 address of this node, repeatable. Default: the InternalIP/ExternalIP addresses of the Node object named --node-name in DIR, if any.",
        valueName: "IP"
    ))
    var nodeIP: [String] = []

    @Option(help: "Where backends come from.")
    var endpointsSource: EndpointsSource = .endpointSlices

    @Option(name: [.customShort("o"), .long], help: "Output format.")
    var output: Output = .json

    func validate() throws {
        guard !nodeName.isEmpty else { throw ValidationError(TranslateError.invalidNodeName.description) }
        if let bad = nodeIP.first(where: { IPAddress($0) == nil }) { throw ValidationError(TranslateError.invalidNodeIP(bad).description) }
    }

    func run() throws {
        let request = TranslateRequest(
            directory: directory, nodeName: nodeName, nodeIPs: nodeIP,
            endpointsSource: endpointsSource,
            format: output == .table ? .table : .json
        )
        let result: TranslateOutput
        do {
            result = try Command.translate(request)
        } catch {
            switch error {
            case .invalidNodeIP, .invalidNodeName: throw ValidationError(error.description)
            case .load:
                FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                throw ExitCode.failure
            }
        }
        FileHandle.standardError.write(Data(result.stderr.utf8))
        FileHandle.standardOutput.write(Data(result.stdout.utf8))
    }
}
