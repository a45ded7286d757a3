import LoadBalancer
import KubeModels

/// What gets one proxy port: a listener port of one Gateway.
public struct ProxyPortKey: Hashable, Comparable, Codable, Sendable, CustomStringConvertible {
    public var gateway: NamespacedName
    public var port: Int

    public init(gateway: NamespacedName, port: Int) {
        self.gateway = gateway
        self.port = port
    }

    public static func < (lhs: ProxyPortKey, rhs: ProxyPortKey) -> Bool { (lhs.gateway, lhs.port) < (rhs.gateway, rhs.port) }

    public var description: String { "\(gateway):\(port)" }
}

/// The result of one allocation.
public struct ProxyPortAllocation: Hashable, Sendable {
    public var ports: [ProxyPortKey: UInt16]
    /// Keys left without a port because the range is full (their frontends stay unmarked).
    public var exhausted: [ProxyPortKey]

    public init(ports: [ProxyPortKey: UInt16] = [:], exhausted: [ProxyPortKey] = []) {
        self.ports = ports
        self.exhausted = exhausted
    }
}

/// Assigns proxy ports from a range, keeping every previous assignment that is still wanted and
/// valid, so ports are stable across agent restarts (the previous assignment is read back from the
/// maps' L7LB frontends) and across unrelated changes. Pure: the stateful stage owns its result.
public struct ProxyPortAllocator: Hashable, Sendable {
    public var range: ClosedRange<UInt16>

    public static let defaultRange: ClosedRange<UInt16> = 10000...10999

    public init(range: ClosedRange<UInt16> = ProxyPortAllocator.defaultRange) {
        self.range = range
    }

    /// Ports for `wanted`: a previous port is kept when it is in the range and no other wanted
    /// key kept it first (keys in sorted order); new keys get the lowest free ports, in sorted order.
    public func allocate(wanted: Set<ProxyPortKey>, previous: [ProxyPortKey: UInt16]) -> ProxyPortAllocation {
        var result = ProxyPortAllocation()
        var used = Set<UInt16>()
        let keys = wanted.sorted()
        for key in keys {
            if let port = previous[key], range.contains(port), used.insert(port).inserted {
                result.ports[key] = port
            }
        }
        var next = range.lowerBound
        var rangeLeft = true
        for key in keys where result.ports[key] == nil {
            while rangeLeft && used.contains(next) {
                if next == range.upperBound { rangeLeft = false } else { next += 1 }
            }
            guard rangeLeft else {
                result.exhausted.append(key)
                continue
            }
            result.ports[key] = next
            used.insert(next)
        }
        return result
    }
}

/// The L7LB frontends of Portway's Gateways: the Services labelled with a Gateway's name, whose
/// ports are the Gateway's listener ports.
public enum GatewayFrontends {
    /// The proxy port key of each (Service, port) that fronts one of Portway's Gateways.
    public static func keys(_ snapshot: ClusterSnapshot, ownedGateways: [NamespacedName]) -> [ServicePortKey: ProxyPortKey] {
        let owned = Set(ownedGateways)
        var out: [ServicePortKey: ProxyPortKey] = [:]
        for service in snapshot.services {
            guard let gatewayName = service.metadata.labels?[GatewayAPI.gatewayNameLabel] else { continue }
            let namespace = GatewayBuild.namespace(service.metadata)
            let gateway = NamespacedName(namespace: namespace, name: gatewayName)
            guard owned.contains(gateway) else { continue }
            for port in service.spec.ports ?? [] where (port.protocol ?? "TCP") == "TCP" {
                out[ServicePortKey(service: NamespacedName(namespace: namespace, name: service.metadata.name), port: port.port)] = ProxyPortKey(gateway: gateway, port: port.port)
            }
        }
        return out
    }

    /// Marks every frontend of a Gateway's Service `l7-load-balancer` with its proxy port and no
    /// backends (a post-step of the translator). Frontends whose key got no port stay as they are,
    /// with a warning.
    public static func markL7(_ state: DesiredL4State, keys: [ServicePortKey: ProxyPortKey], allocation: ProxyPortAllocation) -> DesiredL4State {
        var out = state
        var reported = Set<ProxyPortKey>()
        for i in out.entries.indices {
            let entry = out.entries[i]
            guard entry.frontend.proto == .tcp,
                  let key = keys[ServicePortKey(service: NamespacedName(namespace: entry.service.namespace, name: entry.service.name), port: Int(entry.service.port))] else { continue }
            guard let proxyPort = allocation.ports[key] else {
                if reported.insert(key).inserted {
                    out.warnings.append(TranslationWarning(
                        object: "Service \(entry.service.namespace)/\(entry.service.name)", field: "spec.ports",
                        message: "no proxy port left for Gateway \(key); its frontends stay L4"
                    ))
                }
                continue
            }
            out.entries[i].flags.insert(.l7LoadBalancer)
            out.entries[i].l7ProxyPort = proxyPort
            out.entries[i].backends = []
        }
        return out
    }

    /// The previous assignment, recovered from what the maps hold: each read-back L7LB frontend's
    /// proxy port, given to the key of the (unmarked) desired entry with the same frontend.
    public static func previousAssignment(programmed: [FrontendEntry], desired: DesiredL4State, keys: [ServicePortKey: ProxyPortKey]) -> [ProxyPortKey: UInt16] {
        var ports: [Frontend: UInt16] = [:]
        for entry in programmed { if let port = entry.l7ProxyPort, ports[entry.frontend] == nil { ports[entry.frontend] = port } }
        return previousAssignment(programmed: ports, desired: desired, keys: keys)
    }

    /// `previousAssignment` from the proxy port of each L7LB frontend read back (e.g. from pins).
    public static func previousAssignment(programmed: [Frontend: UInt16], desired: DesiredL4State, keys: [ServicePortKey: ProxyPortKey]) -> [ProxyPortKey: UInt16] {
        var byFrontend: [Frontend: ProxyPortKey] = [:]
        for entry in desired.entries {
            if let key = keys[ServicePortKey(service: NamespacedName(namespace: entry.service.namespace, name: entry.service.name), port: Int(entry.service.port))] {
                byFrontend[entry.frontend] = key
            }
        }
        var out: [ProxyPortKey: UInt16] = [:]
        // Sorted, so that frontends disagreeing about a key's port resolve the same way every time.
        for (frontend, port) in programmed.sorted(by: { $0.key < $1.key }) {
            guard let key = byFrontend[frontend], out[key] == nil else { continue }
            out[key] = port
        }
        return out
    }
}

/// A Service port: (namespace/name of the Service, `spec.ports[].port`).
public struct ServicePortKey: Hashable, Comparable, Sendable {
    public var service: NamespacedName
    public var port: Int

    public init(service: NamespacedName, port: Int) {
        self.service = service
        self.port = port
    }

    public static func < (lhs: ServicePortKey, rhs: ServicePortKey) -> Bool { (lhs.service, lhs.port) < (rhs.service, rhs.port) }
}
