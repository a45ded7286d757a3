import LoadBalancer

/// Short builders for desired states in tests.
func ip(_ text: String) -> IPAddress { IPAddress(text)! }

func backend(_ address: String, _ port: UInt16 = 8080, _ proto: L4Protocol = .tcp, _ state: BackendState = .active) -> Backend {
    Backend(address: ip(address), port: port, proto: proto, state: state)
}

func entry(
    _ address: String, _ port: UInt16, _ proto: L4Protocol = .tcp, type: FrontendType = .nodePort, flags: ServiceFlags = [.nodePort],
    l7ProxyPort: UInt16? = nil, affinity: UInt32? = nil, name: String = "web", backends: [Backend]
) -> FrontendEntry {
    FrontendEntry(
        frontend: Frontend(address: ip(address), port: port, proto: proto), type: type, flags: flags, l7ProxyPort: l7ProxyPort,
        affinityTimeoutSeconds: affinity, service: ServiceReference(namespace: "demo", name: name, port: port),
        backends: backends)
}

func state(_ entries: FrontendEntry...) -> DesiredL4State { DesiredL4State(entries: entries) }
