import KubeModels

/// A Service port as endpoints name it: backends are matched to a Service port by port name (which
/// is how named targetPorts resolve: the endpoint port carries the resolved number) and protocol.
package struct PortKey: Hashable {
    package var name: String
    package var proto: L4Protocol
    package init(name: String, proto: L4Protocol) {
        self.name = name
        self.proto = proto
    }
}

/// Backends of one Service, per port, deduplicated and in `Backend.outputOrder`. A Service has a
/// handful of ports, so a linear search beats hashing the port names.
package struct ServiceBackends {
    var ports: [(key: PortKey, backends: [Backend])] = []

    package subscript(key: PortKey) -> [Backend]? {
        ports.first { $0.key == key }?.backends
    }
}

/// Resolves one Service's backends from the indexed objects that belong to it (10k Services stay linear).
package enum BackendResolver {
    /// The backends of `service`, per port. Problems in its endpoint objects become warnings.
    package static func backends(of service: ServiceKey, in index: ClusterIndex, source: EndpointsSource, warnings: inout [TranslationWarning]) -> ServiceBackends {
        var merger = BackendMerger()
        switch source {
        case .endpointSlices:
            // Slice order decides nothing in the output, but warnings come out in name order.
            for slice in index.slices(of: service) { merger.add(slice: slice, warnings: &warnings) }
        case .endpoints:
            // Two objects with one name cannot come from a real API server, but files can hold
            // them: merge both, which does not depend on their order.
            for endpoints in index.endpoints[service] ?? [] { merger.add(endpoints: endpoints, warnings: &warnings) }
        }
        return merger.result()
    }
}

/// Collects backends from several objects, deduplicating by (address, port, protocol) per port;
/// when an endpoint appears twice (a pod moving between slices), the better state wins.
struct BackendMerger {
    private var ports: [(key: PortKey, list: PortBackends)] = []

    struct BackendKey: Hashable {
        var address: IPAddress
        var port: UInt16
        var proto: L4Protocol

        // One combine instead of three: this is hashed once per endpoint and port.
        func hash(into hasher: inout Hasher) {
            switch address {
            case .v4(let a): hasher.combine(UInt64(a.value) << 24 | UInt64(port) << 8 | UInt64(proto.ipProtocolNumber))
            case .v6(let a):
                hasher.combine(a.high)
                hasher.combine(a.low ^ (UInt64(port) << 8 | UInt64(proto.ipProtocolNumber)))
            }
        }
    }

    struct PortBackends {
        var backends: [Backend] = []
        var positions: [BackendKey: Int] = [:]

        mutating func insert(_ backend: Backend) {
            let key = BackendKey(address: backend.address, port: backend.port, proto: backend.proto)
            if let i = positions[key] {
                if backend.state < backends[i].state { backends[i] = backend }
                return
            }
            positions[key] = backends.count
            backends.append(backend)
        }
    }

    /// A parsed endpoint, before it is paired with each port.
    struct ParsedEndpoint {
        var address: IPAddress
        var state: BackendState
        var nodeName: String?
    }

    private mutating func insert(_ endpoints: [ParsedEndpoint], ports keys: [(PortKey, UInt16)]) {
        for (key, number) in keys {
            let index: Int
            if let existing = ports.firstIndex(where: { $0.key == key }) {
                index = existing
            } else {
                ports.append((key, PortBackends()))
                index = ports.count - 1
            }
            ports[index].list.positions.reserveCapacity(ports[index].list.backends.count + endpoints.count)
            for endpoint in endpoints {
                ports[index].list.insert(Backend(address: endpoint.address, port: number, proto: key.proto, state: endpoint.state, nodeName: endpoint.nodeName))
            }
        }
    }

    func result() -> ServiceBackends {
        ServiceBackends(ports: ports.map { ($0.key, $0.list.backends.sorted(by: Backend.outputOrder)) })
    }

    /// The state of a slice endpoint: ready true or absent → active; not ready but serving and
    /// terminating → terminating; anything else is not used.
    static func state(of conditions: EndpointConditions?) -> BackendState? {
        let ready = conditions?.ready ?? true
        if ready { return .active }
        if conditions?.serving == true && conditions?.terminating == true { return .terminating }
        return nil
    }

    mutating func add(slice: EndpointSlice, warnings: inout [TranslationWarning]) {
        let object = "EndpointSlice \(ServiceKey(namespace: slice.metadata.namespace, name: slice.metadata.name).description)"
        switch slice.addressType {
        case "IPv4": break
        case "IPv6": return  // IPv4 datapath only for now; dual-stack clusters have these for every Service.
        case "FQDN":
            warnings.append(TranslationWarning(object: object, field: "addressType", message: "FQDN endpoints are not supported; slice ignored"))
            return
        default:
            warnings.append(TranslationWarning(object: object, field: "addressType", message: "unknown address type \"\(slice.addressType)\"; slice ignored"))
            return
        }
        let ports = Self.ports(slice.ports ?? [], object: object, path: "ports", warnings: &warnings)
        guard !ports.isEmpty else { return }
        var parsed: [ParsedEndpoint] = []
        parsed.reserveCapacity(slice.endpoints?.count ?? 0)
        for (j, endpoint) in (slice.endpoints ?? []).enumerated() {
            // Addresses of one endpoint are fungible; like kube-proxy, use the first only.
            guard let text = endpoint.firstAddress else {
                warnings.append(TranslationWarning(object: object, field: "endpoints[\(j)].addresses", message: "no address; endpoint ignored"))
                continue
            }
            guard let address = IPv4Address.parse(text) else {
                warnings.append(TranslationWarning(object: object, field: "endpoints[\(j)].addresses[0]", message: "\"\(text)\" is not an IPv4 address; endpoint ignored"))
                continue
            }
            guard let state = Self.state(of: endpoint.conditions) else { continue }
            parsed.append(ParsedEndpoint(address: .v4(address), state: state, nodeName: endpoint.nodeName))
        }
        insert(parsed, ports: ports)
    }

    mutating func add(endpoints: Endpoints, warnings: inout [TranslationWarning]) {
        let object = "Endpoints \(ServiceKey(namespace: endpoints.metadata.namespace, name: endpoints.metadata.name).description)"
        for (i, subset) in (endpoints.subsets ?? []).enumerated() {
            let ports = Self.ports(subset.ports ?? [], object: object, path: "subsets[\(i)].ports", warnings: &warnings)
            guard !ports.isEmpty else { continue }
            // notReadyAddresses are not used: Endpoints cannot say whether they are terminating.
            var parsed: [ParsedEndpoint] = []
            for (j, address) in (subset.addresses ?? []).enumerated() {
                guard let ip = IPAddress.parse(address.ip) else {
                    warnings.append(TranslationWarning(object: object, field: "subsets[\(i)].addresses[\(j)].ip", message: "\"\(address.ip)\" is not an IP address; address ignored"))
                    continue
                }
                guard case .v4 = ip else { continue }  // IPv4 datapath only for now.
                parsed.append(ParsedEndpoint(address: ip, state: .active, nodeName: address.nodeName))
            }
            insert(parsed, ports: ports)
        }
    }

    /// The usable ports of a slice or subset: (name, protocol) → number. A port without a number
    /// (allowed by the API: "all ports") cannot be used for L4 and is left out silently.
    static func ports(_ ports: [EndpointPort], object: String, path: String, warnings: inout [TranslationWarning]) -> [(PortKey, UInt16)] {
        var out: [(PortKey, UInt16)] = []
        for (k, port) in ports.enumerated() {
            guard let proto = parseProtocol(port.protocol) else {
                warnings.append(TranslationWarning(object: object, field: "\(path)[\(k)].protocol", message: "unknown protocol \"\(port.protocol ?? "")\"; port ignored"))
                continue
            }
            guard let value = port.port else { continue }
            guard let number = validPort(value) else {
                warnings.append(TranslationWarning(object: object, field: "\(path)[\(k)].port", message: "port \(value) is out of range 1-65535; port ignored"))
                continue
            }
            let key = PortKey(name: port.name ?? "", proto: proto)
            if out.contains(where: { $0.0 == key }) {
                warnings.append(TranslationWarning(object: object, field: "\(path)[\(k)].name", message: "duplicate port \"\(key.name)\"/\(proto.rawValue); port ignored"))
                continue
            }
            out.append((key, number))
        }
        return out
    }
}
