/// A resource the test API server serves.
public struct ServedResource: Hashable, Sendable {
    public var group: String
    /// Versions served; the first is the storage version.
    public var versions: [String]
    public var plural: String
    public var kind: String
    public var namespaced: Bool
    /// Built-in types serialise like the recordings: list items without kind/apiVersion and
    /// BOOKMARK objects with the type's empty fields; custom resources keep kind/apiVersion everywhere.
    public var builtin: Bool
    /// Whether objects get `metadata.generation`.
    public var hasGeneration: Bool
    /// Extra fields of the type's BOOKMARK object (after metadata), as the real server prints them.
    public var bookmarkFields: [String: JSONValue]

    /// "group/plural": versions share one store.
    public var id: String { "\(group)/\(plural)" }

    public func apiVersion(_ version: String) -> String { group.isEmpty ? version : "\(group)/\(version)" }

    public static let all: [ServedResource] = [
        ServedResource(group: "", versions: ["v1"], plural: "services", kind: "Service", namespaced: true, builtin: true, hasGeneration: false,
                       bookmarkFields: ["spec": .object([:]), "status": .object(["loadBalancer": .object([:])])]),
        ServedResource(group: "", versions: ["v1"], plural: "endpoints", kind: "Endpoints", namespaced: true, builtin: true, hasGeneration: false, bookmarkFields: [:]),
        ServedResource(group: "", versions: ["v1"], plural: "nodes", kind: "Node", namespaced: false, builtin: true, hasGeneration: false,
                       bookmarkFields: ["spec": .object([:]), "status": .object(["daemonEndpoints": .object(["kubeletEndpoint": .object(["Port": .number(0)])]), "nodeInfo": .object([:])])]),
        ServedResource(group: "", versions: ["v1"], plural: "namespaces", kind: "Namespace", namespaced: false, builtin: true, hasGeneration: false, bookmarkFields: ["spec": .object([:]), "status": .object([:])]),
        ServedResource(group: "", versions: ["v1"], plural: "secrets", kind: "Secret", namespaced: true, builtin: true, hasGeneration: false, bookmarkFields: [:]),
        ServedResource(group: "", versions: ["v1"], plural: "configmaps", kind: "ConfigMap", namespaced: true, builtin: true, hasGeneration: false, bookmarkFields: [:]),
        ServedResource(group: "discovery.k8s.io", versions: ["v1"], plural: "endpointslices", kind: "EndpointSlice", namespaced: true, builtin: true, hasGeneration: true,
                       bookmarkFields: ["addressType": .string(""), "endpoints": .null, "ports": .null]),
        ServedResource(group: "coordination.k8s.io", versions: ["v1"], plural: "leases", kind: "Lease", namespaced: true, builtin: true, hasGeneration: false, bookmarkFields: ["spec": .object([:])]),
        ServedResource(group: "gateway.networking.k8s.io", versions: ["v1", "v1beta1"], plural: "gatewayclasses", kind: "GatewayClass", namespaced: false, builtin: false, hasGeneration: true, bookmarkFields: [:]),
        ServedResource(group: "gateway.networking.k8s.io", versions: ["v1", "v1beta1"], plural: "gateways", kind: "Gateway", namespaced: true, builtin: false, hasGeneration: true, bookmarkFields: [:]),
        ServedResource(group: "gateway.networking.k8s.io", versions: ["v1", "v1beta1"], plural: "httproutes", kind: "HTTPRoute", namespaced: true, builtin: false, hasGeneration: true, bookmarkFields: [:]),
        ServedResource(group: "gateway.networking.k8s.io", versions: ["v1beta1"], plural: "referencegrants", kind: "ReferenceGrant", namespaced: true, builtin: false, hasGeneration: true, bookmarkFields: [:]),
        ServedResource(group: "gateway.networking.k8s.io", versions: ["v1"], plural: "listenersets", kind: "ListenerSet", namespaced: true, builtin: false, hasGeneration: true, bookmarkFields: [:]),
        ServedResource(group: "gateway.networking.k8s.io", versions: ["v1"], plural: "backendtlspolicies", kind: "BackendTLSPolicy", namespaced: true, builtin: false, hasGeneration: true, bookmarkFields: [:]),
    ]

    static func find(group: String, version: String, plural: String) -> ServedResource? {
        all.first { $0.group == group && $0.plural == plural && $0.versions.contains(version) }
    }
}
