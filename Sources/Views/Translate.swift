import FileSource
import GatewayCore
import KubeModels
import LoadBalancer

/// How `portway translate` prints the desired state.
public enum TranslateFormat: String, CaseIterable, Sendable {
    /// The JSON document of docs/CLI-JSON.md, warnings included.
    case json
    /// The Cilium `bpf lb list` table; warnings go to standard error.
    case table
}

/// The inputs of `portway translate`, as given on the command line.
public struct TranslateRequest: Hashable, Sendable {
    public var directory: String
    public var nodeName: String
    /// `--node-ip` values, unparsed. When empty, the addresses (InternalIP, ExternalIP) of the Node
    /// object named `nodeName` in the directory are used, if there is one.
    public var nodeIPs: [String]
    public var endpointsSource: EndpointsSource
    public var format: TranslateFormat

    public init(directory: String, nodeName: String, nodeIPs: [String] = [], endpointsSource: EndpointsSource = .endpointSlices, format: TranslateFormat = .json) {
        self.directory = directory
        self.nodeName = nodeName
        self.nodeIPs = nodeIPs
        self.endpointsSource = endpointsSource
        self.format = format
    }
}

/// What `portway translate` prints.
public struct TranslateOutput: Hashable, Sendable {
    /// The translation, with the load warnings first among its warnings.
    public var state: DesiredL4State
    public var stdout: String
    /// Warnings and notes for standard error (table format only; JSON carries them itself).
    public var stderr: String
}

/// Why `portway translate` cannot run at all.
public enum TranslateError: Error, Hashable, Sendable, CustomStringConvertible {
    case invalidNodeIP(String)
    case invalidNodeName
    case load(FileSourceError)

    public var description: String {
        switch self {
        case .invalidNodeIP(let text): "--node-ip \"\(text)\" is not an IP address"
        case .invalidNodeName: "--node-name must not be empty"
        case .load(let error): error.description
        }
    }
}

extension Command {
    /// `portway translate`: loads the directory, translates it for the node and renders the result.
    public static func translate(_ request: TranslateRequest) throws(TranslateError) -> TranslateOutput {
        guard !request.nodeName.isEmpty else { throw .invalidNodeName }
        var nodeAddresses: [IPAddress] = []
        for text in request.nodeIPs {
            guard let ip = IPAddress(text) else { throw .invalidNodeIP(text) }
            nodeAddresses.append(ip)
        }
        let loaded: LoadResult
        do {
            loaded = try FileSource.load(directory: request.directory)
        } catch {
            throw .load(error)
        }
        // Without --node-ip the translator takes the addresses of the Node named nodeName (NodeAddresses).
        let options = TranslatorOptions(nodeName: request.nodeName, nodeAddresses: nodeAddresses, endpointsSource: request.endpointsSource)
        // Frontends of Portway's Gateways go to the L7 proxy; offline, proxy ports are allocated afresh.
        var plan = GatewayPlan(index: ClusterIndex(loaded.snapshot))
        var state = plan.program(Translator.translate(loaded.snapshot, options: options))
        state.warnings = loaded.warnings.map(\.translationWarning) + state.warnings

        switch request.format {
        case .json:
            return TranslateOutput(state: state, stdout: JSONValue.object(json(for: state)).rendered() + "\n", stderr: "")
        case .table:
            var stderr = state.warnings.map { "warning: \($0)\n" }.joined()
            if !loaded.ignored.isEmpty {
                let kinds = Set(loaded.ignored.map(\.kind)).sorted().joined(separator: ", ")
                stderr += "note: \(loaded.ignored.count) object(s) of kinds not translated were ignored (\(kinds))\n"
            }
            return TranslateOutput(state: state, stdout: renderLBTable(state), stderr: stderr)
        }
    }
}

extension LoadWarning {
    /// The warning in the translator's terms: the file and line go into the message.
    public var translationWarning: TranslationWarning {
        TranslationWarning(object: object, field: field, message: "\(location): \(message)")
    }
}
