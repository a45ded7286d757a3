import KubeModels
@testable import LoadBalancer

// The Service, EndpointSlice and Node builders are PortwayTestSupport's (KubeObjects.swift).

let nodeA = TranslatorOptions(nodeName: "node-a", nodeAddresses: [IPAddress("192.0.2.10")!])

/// One line per entry: `frontend type [flags] (affinity N) -> backend, backend (terminating)`.
/// Backend protocols are checked separately (`backendProtocolsMatchFrontends`).
func lines(_ state: DesiredL4State) -> [String] {
    state.entries.map { e in
        var s = "\(e.frontend) \(e.type.rawValue) [\(e.flags.names.joined(separator: ", "))]"
        if let t = e.affinityTimeoutSeconds { s += " (affinity \(t))" }
        if let p = e.l7ProxyPort { s += " (proxy \(p))" }
        s += " ->"
        if !e.backends.isEmpty {
            s += " " + e.backends.map { "\($0.address):\($0.port)" + ($0.state == .active ? "" : " (\($0.state.rawValue))") }
                .joined(separator: ", ")
        }
        return s
    }
}

/// `object field` of each warning, in order.
func warningLines(_ state: DesiredL4State) -> [String] {
    state.warnings.map { "\($0.object) \($0.field)" }
}
