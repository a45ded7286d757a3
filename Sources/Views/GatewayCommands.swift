import FileSource
import GatewayCore
import KubeModels
import LoadBalancer

// `portway routes` and `portway explain` from a directory of YAML files. The logic (and its tests)
// lives here; Sources/portway only parses flags. JSON schemas: docs/CLI-JSON.md.

/// Output format of `portway routes`.
public enum RoutesFormat: String, CaseIterable, Sendable {
    case json, table
}

/// Output format of `portway explain`.
public enum ExplainFormat: String, CaseIterable, Sendable {
    case json, text
}

/// What the Gateway commands share: the directory, this node, and the Gateway options.
public struct GatewayViewOptions: Sendable {
    public var directory: String
    /// This node's name; when empty, the Node object whose address is `--to` (explain), else the first Node.
    public var nodeName: String
    /// This node's addresses; when empty, those of the Node object chosen above.
    public var nodeIPs: [String]
    public var gateway: GatewayOptions
    /// Where proxy ports come from (the agent's `--proxy-ports`).
    public var proxyPortRange: ClosedRange<UInt16>

    public init(
        directory: String, nodeName: String = "", nodeIPs: [String] = [], gateway: GatewayOptions = GatewayOptions(),
        proxyPortRange: ClosedRange<UInt16> = GatewayPlan.defaultProxyPortRange
    ) {
        self.directory = directory
        self.nodeName = nodeName
        self.nodeIPs = nodeIPs
        self.gateway = gateway
        self.proxyPortRange = proxyPortRange
    }
}

/// One request for `portway explain`.
public struct ExplainRequest: Hashable, Sendable {
    /// `ADDRESS:PORT` the client connects to.
    public var to: String
    public var host: String
    public var path: String
    public var method: String
    /// `--header K:V` values.
    public var headers: [String]

    public init(to: String, host: String, path: String, method: String = "GET", headers: [String] = []) {
        self.to = to
        self.host = host
        self.path = path
        self.method = method
        self.headers = headers
    }
}

/// Why a Gateway command cannot run at all.
public enum GatewayCommandError: Error, Hashable, Sendable, CustomStringConvertible {
    case invalidDestination(String)
    case invalidHeader(String)
    case invalidNodeIP(String)
    case load(FileSourceError)

    public var description: String {
        switch self {
        case .invalidDestination(let text): "--to \"\(text)\" is not IPV4ADDRESS:PORT"
        case .invalidHeader(let text): "--header \"\(text)\" is not NAME:VALUE"
        case .invalidNodeIP(let text): "--node-ip \"\(text)\" is not an IP address"
        case .load(let error): error.description
        }
    }
}

/// What this node would do with the directory's objects: L4 entries with the Gateway frontends
/// marked L7LB, and the route tables.
public struct GatewayView: Sendable {
    public var snapshot: ClusterSnapshot
    /// The Gateway plan of the snapshot, with this node's proxy ports.
    public var plan: GatewayPlan
    /// The L4 state, the Gateway frontends programmed as the plan says.
    public var state: DesiredL4State
    public var nodeName: String

    public var gateways: GatewayState { plan.state }

    /// Loads `options.directory` and computes the view. Offline there are no maps to read back,
    /// so proxy ports are allocated afresh in key order (the agent keeps the ones in its maps).
    public static func load(_ options: GatewayViewOptions, preferNodeWithAddress: IPAddress? = nil, pinnedProxyPorts: [Frontend: UInt16] = [:]) throws(GatewayCommandError) -> GatewayView {
        let loaded: LoadResult
        do {
            loaded = try FileSource.load(directory: options.directory)
        } catch {
            throw .load(error)
        }
        return try build(
            loaded.snapshot, loadWarnings: loaded.warnings.map(\.translationWarning), options: options, preferNodeWithAddress: preferNodeWithAddress,
            pinnedProxyPorts: pinnedProxyPorts)
    }

    /// Computes the view of `snapshot`, however it was read (files, or one list of the API server's
    /// objects for `--kubeconfig`): the same code for both, so they agree on the same objects.
    /// Proxy ports are allocated in key order, as an agent starting on empty maps would.
    /// With `pinnedProxyPorts` (each L7LB frontend's port as a node's maps hold it, `--bpffs`), the
    /// ports the node uses are kept and only keys the maps lack get new ones.
    public static func build(
        _ snapshot: ClusterSnapshot, loadWarnings: [TranslationWarning] = [], options: GatewayViewOptions, preferNodeWithAddress: IPAddress? = nil,
        pinnedProxyPorts: [Frontend: UInt16] = [:]
    ) throws(GatewayCommandError) -> GatewayView {
        var addresses: [IPAddress] = []
        for text in options.nodeIPs {
            guard let ip = IPAddress(text) else { throw .invalidNodeIP(text) }
            addresses.append(ip)
        }
        var nodeName = options.nodeName
        if nodeName.isEmpty {
            let byAddress = preferNodeWithAddress.flatMap { wanted in
                snapshot.nodes.first { node in node.status?.addresses?.contains { IPAddress($0.address) == wanted } ?? false }
            }
            nodeName = (byAddress ?? snapshot.nodes.sorted { $0.metadata.name < $1.metadata.name }.first)?.metadata.name ?? "node"
        }
        if addresses.isEmpty, let node = snapshot.nodes.first(where: { $0.metadata.name == nodeName }) { addresses = NodeAddresses.of(node) }
        let index = ClusterIndex(snapshot)
        var plan = GatewayPlan(index: index, options: options.gateway, proxyPortRange: options.proxyPortRange, inherited: pinnedProxyPorts)
        var state = plan.program(Translator.translate(snapshot, options: TranslatorOptions(nodeName: nodeName, nodeAddresses: addresses)))
        state.warnings = loadWarnings + state.warnings
        return GatewayView(snapshot: snapshot, plan: plan, state: state, nodeName: nodeName)
    }

    /// What the proxy does not serve (`GatewayPlan.servingWarnings`) with this node's proxy ports.
    public var servingWarnings: [GatewayWarning] { plan.servingWarnings }
}

extension Command {
    /// `portway routes`: every table with its proxy port, as JSON or a table.
    public static func routes(_ options: GatewayViewOptions, format: RoutesFormat) throws(GatewayCommandError) -> (stdout: String, stderr: String) {
        routes(try GatewayView.load(options), format: format)
    }

    /// `portway routes` of a view however its objects were read.
    public static func routes(_ view: GatewayView, format: RoutesFormat) -> (stdout: String, stderr: String) {
        let proxyPort = { (gateway: NamespacedName, port: Int) in view.plan.proxyPort(gateway: gateway, port: port) }
        // Listeners left out and ports nothing listens on are warnings too (as the agent logs them).
        let allWarnings = view.gateways.warnings + view.servingWarnings
        let warnings = allWarnings.map { JSONValue.object(["object": .string($0.object), "message": .string($0.message)]) }
        switch format {
        case .json:
            let tables = view.gateways.tables.map { table -> JSONValue in
                var object = GatewayJSON.table(table)
                object.insert("proxyPort", .integer(proxyPort(table.gateway, table.port)), before: "listeners")
                return .object(object)
            }
            let unserved = view.gateways.unservedListeners.map { listener -> JSONValue in
                var object = GatewayJSON.unservedListener(listener)
                object.insert("proxyPort", .integer(proxyPort(listener.gateway, listener.port)), before: "name")
                return .object(object)
            }
            let document: JSONObject = ["tables": .array(tables), "unservedListeners": .array(unserved), "warnings": .array(warnings)]
            return (JSONValue.object(document).rendered() + "\n", "")
        case .table:
            var out = ""
            // Every Gateway port that has a table, an unserved listener or a Service port fronting it.
            var ports = Set(view.gateways.tables.map { ProxyPortKey(gateway: $0.gateway, port: $0.port) })
            ports.formUnion(view.gateways.unservedListeners.map { ProxyPortKey(gateway: $0.gateway, port: $0.port) })
            ports.formUnion(view.plan.frontends.values)
            for key in ports.sorted() {
                let table = view.gateways.table(gateway: key.gateway, port: key.port)
                let unserved = view.gateways.unservedListeners.filter { $0.gateway == key.gateway && $0.port == key.port }
                let proxy = proxyPort(key.gateway, key.port).map(String.init) ?? "-"
                out += "GATEWAY \(key.gateway) PORT \(key.port) PROXY PORT \(proxy)"
                if let validation = table?.clientValidation {
                    out += " CLIENT CERTIFICATES \(validation.mode.rawValue) CA \(validation.caCertificateRefs.map(\.description).joined(separator: ","))"
                }
                out += table == nil ? " (no listener served: connections are reset)\n" : "\n"
                for listener in table?.listeners ?? [] {
                    out += "  LISTENER \(listener.name) \(listener.protocol.rawValue) \(listener.hostname ?? "*(any host)")"
                    if let set = listener.listenerSet { out += " (ListenerSet \(set))" }
                    out += listener.certificates.isEmpty ? "\n" : " certs \(listener.certificates.map(\.description).joined(separator: ","))\n"
                    for (i, rule) in listener.rules.enumerated() {
                        out += "    \(i + 1). \(rule.route) rule \(rule.rule) match \(rule.match): \(GatewayJSON.describe(rule))\n"
                    }
                    if listener.rules.isEmpty { out += "    (no routes: 404)\n" }
                }
                for listener in unserved {
                    out += "  NOT SERVED \(listener.name)\(listener.listenerSet.map { " (ListenerSet \($0))" } ?? "") \(listener.protocol) \(listener.hostname ?? "*(any host)"): \(listener.conditionText) \(listener.reason): \(listener.message)\n"
                }
            }
            let stderr = allWarnings.map { "warning: \($0)\n" }.joined()
            return (out, stderr)
        }
    }

    /// `portway explain`: follows one request through this node's maps and route tables.
    public static func explain(_ options: GatewayViewOptions, request: ExplainRequest, format: ExplainFormat) throws(GatewayCommandError) -> (stdout: String, explanation: Explanation) {
        try explain(request: request, format: format) { address throws(GatewayCommandError) in
            try GatewayView.load(options, preferNodeWithAddress: address)
        }
    }

    /// `portway explain` over a view however its objects were read: `view` is given the address
    /// the request goes to (the node that has it is "this node" unless one is named).
    /// `nodeReports` (node → what its agent reports it serves, from the report Leases; nil: not
    /// read) adds this node's report for the Gateway the request reaches, when any node reports.
    public static func explain(
        request: ExplainRequest, format: ExplainFormat, nodeReports: [String: NodeProgramReport]? = nil,
        view makeView: (IPAddress) throws(GatewayCommandError) -> GatewayView
    ) throws(GatewayCommandError) -> (stdout: String, explanation: Explanation) {
        guard let colon = request.to.lastIndex(of: ":"),
              let address = IPv4Address(request.to[..<colon]),
              let port = UInt16(request.to[request.to.index(after: colon)...]), port > 0 else {
            throw .invalidDestination(request.to)
        }
        var headers: [HTTPHeader] = []
        for text in request.headers {
            guard let colon = text.firstIndex(of: ":"), colon != text.startIndex else { throw .invalidHeader(text) }
            headers.append(HTTPHeader(name: String(text[..<colon]).trimmingSpaces, value: String(text[text.index(after: colon)...]).trimmingSpaces))
        }
        let view = try makeView(.v4(address))
        var explanation = Explainer(snapshot: view.snapshot, plan: view.plan, state: view.state).explain(
            to: Frontend(address: .v4(address), port: port, proto: .tcp),
            request: RouteRequest(host: request.host, path: request.path, method: request.method, headers: headers)
        )
        // No report at all (no agent publishes one there): nothing to say, the output stays what `-f` gives.
        if let nodeReports, !nodeReports.isEmpty, let gateway = explanation.gateway {
            let object = view.snapshot.gateways.first { ($0.metadata.namespace ?? "") == gateway.namespace && $0.metadata.name == gateway.name }
            let route = explanation.decision?.entry.map { entry in
                (entry.route, view.snapshot.httpRoutes.first { ($0.metadata.namespace ?? "") == entry.route.namespace && $0.metadata.name == entry.route.name }?.metadata.generation ?? 0)
            }
            explanation.nodeReport = ExplainNodeReport(
                node: view.nodeName, gateway: gateway, gatewayGeneration: object?.metadata.generation ?? 0, report: nodeReports[view.nodeName], route: route)
        }
        switch format {
        case .json: return (JSONValue.object(explanation.json).rendered() + "\n", explanation)
        case .text: return (explanation.text, explanation)
        }
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s.removeFirst() }
        while s.last == " " || s.last == "\t" { s.removeLast() }
        return String(s)
    }
}
