import Agent
import ArgumentParser
import BPFMaps
import FileSource
import Foundation
import GatewayCore
import KubeAPI
import KubeModels
import LoadBalancer
import Runtime
import Views

/// Flags shared by `portway routes` and `portway explain`.
struct GatewayViewFlags: ParsableArguments {
    @Option(name: [.customShort("f"), .customLong("from-dir")], help: ArgumentHelp("Directory of YAML files (read recursively).", valueName: "DIR"))
    var directory: String?

    @Option(help: ArgumentHelp(
        "Read the objects from the Kubernetes API instead (one list of every kind the agent watches, no watch): this kubeconfig file.",
        valueName: "FILE"))
    var kubeconfig: String?

    @Option(help: ArgumentHelp("kubeconfig context (default: its current-context).", valueName: "NAME"))
    var context: String?

    @Option(help: ArgumentHelp(
        "This node's pinned maps (the agent's --bpffs): keep the proxy ports they hold instead of allocating afresh.", valueName: "DIR"))
    var bpffs: String?

    @Option(help: ArgumentHelp("This node's name. Default: the Node object with the --to address (explain), else the first Node in DIR.", valueName: "NAME"))
    var nodeName: String = ""

    @Option(help: ArgumentHelp("An IPv4 address of this node, repeatable. Default: the addresses of the Node object.", valueName: "IP"))
    var nodeIP: [String] = []

    @OptionGroup var gatewayFlags: GatewayFlags

    func validate() throws {
        switch (directory, kubeconfig) {
        case (nil, nil): throw ValidationError("give -f DIR or --kubeconfig FILE")
        case (.some, .some): throw ValidationError("-f DIR and --kubeconfig FILE exclude each other")
        default: if context != nil && kubeconfig == nil { throw ValidationError("--context needs --kubeconfig") }
        }
    }

    /// The cluster's objects when `--kubeconfig` is given (nil: read `-f DIR`). Every Node is
    /// listed, so that "this node" is chosen among them as with files.
    func listCluster() async throws -> (snapshot: ClusterSnapshot, warnings: [TranslationWarning])? {
        guard let kubeconfig else { return nil }
        do {
            let client = KubeClient(config: try ClusterConfig.load(kubeconfig: kubeconfig, context: context))
            let listed = try await ClusterSnapshotList.list(client: client, scope: WatchScope(nodeName: nodeName), allNodes: true)
            return (listed.snapshot, listed.warnings.map { TranslationWarning(object: "cluster", field: "list", message: $0) })
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }

    /// The nodes' reports of what their proxies serve (the agents' report Leases in `namespace`)
    /// when `--kubeconfig` is given; nil without it, or (with a warning) when they cannot be listed.
    func listNodeReports(namespace: String) async -> [String: NodeProgramReport]? {
        guard let kubeconfig else { return nil }
        do {
            let client = KubeClient(config: try ClusterConfig.load(kubeconfig: kubeconfig, context: context))
            let leases = try await client.list(Lease.self, options: ListOptions(namespace: namespace, labelSelector: NodeProgramReport.label))
            var out: [String: NodeProgramReport] = [:]
            for lease in leases.items {
                guard let node = lease.metadata.labels?[NodeProgramReport.label], let report = NodeProgramReport(lease: lease) else { continue }
                out[node] = report
            }
            return out
        } catch {
            FileHandle.standardError.write(Data("warning: the nodes' reports (Leases in \(namespace)) cannot be listed: \(error)\n".utf8))
            return nil
        }
    }

    /// The proxy port of each L7LB frontend in the maps under `--bpffs` (none without it). The
    /// bpf() reads run on a blocking executor, not on the cooperative pool.
    func pinnedProxyPorts() async throws -> [Frontend: UInt16] {
        guard let bpffs else { return [:] }
        do {
            return try await BlockingExecutor(label: "portway.cli.maps").run {
                try ProgrammedState.read(from: try MapSet.openExisting(bpffs: bpffs)).l7ProxyPorts
            }
        } catch {
            FileHandle.standardError.write(Data("error: --bpffs \(bpffs): \(error)\n".utf8))
            throw ExitCode.failure
        }
    }

    func options() throws -> GatewayViewOptions {
        return GatewayViewOptions(
            directory: directory ?? "", nodeName: nodeName, nodeIPs: nodeIP,
            gateway: gatewayFlags.gateway, proxyPortRange: gatewayFlags.proxyPorts.range
        )
    }
}

/// Reports a Gateway command error the way `translate` does.
private func fail(_ error: GatewayCommandError) throws -> Never {
    switch error {
    case .load:
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode.failure
    default:
        throw ValidationError(error.description)
    }
}

/// `portway routes`: each Gateway listener port, its proxy port and its ordered rule table.
struct Routes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the Gateway route tables (per Gateway listener port: proxy port, listeners, ordered rules).",
        discussion: "The JSON schema is in docs/CLI-JSON.md."
    )

    enum Output: String, ExpressibleByArgument, CaseIterable { case json, table }

    @OptionGroup var flags: GatewayViewFlags

    @Option(name: [.customShort("o"), .long], help: "Output format.")
    var output: Output = .table

    func run() async throws {
        let result: (stdout: String, stderr: String)
        let format: RoutesFormat = output == .json ? .json : .table
        let cluster = try await flags.listCluster()
        let pinned = try await flags.pinnedProxyPorts()
        do {
            if let cluster {
                for warning in cluster.warnings { FileHandle.standardError.write(Data("warning: \(warning.message)\n".utf8)) }
                result = Command.routes(
                    try GatewayView.build(cluster.snapshot, loadWarnings: cluster.warnings, options: try flags.options(), pinnedProxyPorts: pinned), format: format)
            } else {
                result = Command.routes(try GatewayView.load(try flags.options(), pinnedProxyPorts: pinned), format: format)
            }
        } catch let error as GatewayCommandError {
            try fail(error)
        }
        FileHandle.standardError.write(Data(result.stderr.utf8))
        FileHandle.standardOutput.write(Data(result.stdout.utf8))
    }
}

/// `portway explain`: follows one request as this node would.
struct Explain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Follow one HTTP request through this node's maps and Gateway route tables, and say why.",
        discussion: "The JSON schema and the warning kinds are in docs/CLI-JSON.md."
    )

    enum Output: String, ExpressibleByArgument, CaseIterable { case json, text }

    @OptionGroup var flags: GatewayViewFlags

    @Option(help: ArgumentHelp("The address the client connects to.", valueName: "ADDRESS:PORT"))
    var to: String

    @Option(help: "The request's Host.")
    var host: String

    @Option(help: "The request's path (with an optional ?query).")
    var path: String = "/"

    @Option(help: "The request's method.")
    var method: String = "GET"

    @Option(help: ArgumentHelp("A request header, repeatable.", valueName: "NAME:VALUE"))
    var header: [String] = []

    @Option(name: [.customShort("o"), .long], help: "Output format.")
    var output: Output = .text

    @Option(help: ArgumentHelp("With --kubeconfig: the namespace of the agents' report Leases (their --lease-namespace).", valueName: "NAMESPACE"))
    var reportNamespace = "portway-system"

    func validate() throws {
        let parts = to.split(separator: ":")
        guard parts.count == 2, IPv4Address(parts[0]) != nil, let port = UInt16(parts[1]), port > 0 else {
            throw ValidationError(GatewayCommandError.invalidDestination(to).description)
        }
        if let bad = header.first(where: { !$0.contains(":") || $0.hasPrefix(":") }) {
            throw ValidationError(GatewayCommandError.invalidHeader(bad).description)
        }
    }

    func run() async throws {
        let stdout: String
        let request = ExplainRequest(to: to, host: host, path: path, method: method, headers: header)
        let format: ExplainFormat = output == .json ? .json : .text
        let cluster = try await flags.listCluster()
        let pinned = try await flags.pinnedProxyPorts()
        let reports = await flags.listNodeReports(namespace: reportNamespace)
        do {
            let options = try flags.options()
            if let cluster {
                for warning in cluster.warnings { FileHandle.standardError.write(Data("warning: \(warning.message)\n".utf8)) }
                stdout = try Command.explain(request: request, format: format, nodeReports: reports) { address throws(GatewayCommandError) in
                    try GatewayView.build(cluster.snapshot, loadWarnings: cluster.warnings, options: options, preferNodeWithAddress: address, pinnedProxyPorts: pinned)
                }.stdout
            } else {
                stdout = try Command.explain(request: request, format: format) { address throws(GatewayCommandError) in
                    try GatewayView.load(options, preferNodeWithAddress: address, pinnedProxyPorts: pinned)
                }.stdout
            }
        } catch let error as GatewayCommandError {
            try fail(error)
        }
        FileHandle.standardOutput.write(Data(stdout.utf8))
    }
}

