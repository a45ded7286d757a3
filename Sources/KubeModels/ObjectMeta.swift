/// The slice of `metadata` that Portway reads. Unknown fields are ignored when decoding.
public struct ObjectMeta: Codable, Hashable, Sendable {
    public var name: String
    public var namespace: String?
    public var uid: String?
    public var resourceVersion: String?
    public var generation: Int64?
    public var labels: [String: String]?
    public var annotations: [String: String]?
    public var ownerReferences: [OwnerReference]?
    public var deletionTimestamp: String?
    /// RFC 3339, e.g. "2026-11-24T11:13:15Z": orders Gateway API routes (the oldest wins ties).
    public var creationTimestamp: String?

    public init(
        name: String, namespace: String? = nil, uid: String? = nil, resourceVersion: String? = nil,
        generation: Int64? = nil, labels: [String: String]? = nil, annotations: [String: String]? = nil,
        ownerReferences: [OwnerReference]? = nil, deletionTimestamp: String? = nil, creationTimestamp: String? = nil
    ) {
        self.name = name
        self.namespace = namespace
        self.uid = uid
        self.resourceVersion = resourceVersion
        self.generation = generation
        self.labels = labels
        self.annotations = annotations
        self.ownerReferences = ownerReferences
        self.deletionTimestamp = deletionTimestamp
        self.creationTimestamp = creationTimestamp
    }

    /// Decodes leniently: a BOOKMARK event's object carries only `resourceVersion`, so `name` may be absent.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name) ?? ""
        namespace = try c.decodeIfPresent(String.self, forKey: .namespace)
        uid = try c.decodeIfPresent(String.self, forKey: .uid)
        resourceVersion = try c.decodeIfPresent(String.self, forKey: .resourceVersion)
        generation = try c.decodeIfPresent(Int64.self, forKey: .generation)
        labels = try c.decodeIfPresent([String: String].self, forKey: .labels)
        if labels != nil { Self.intern(&labels!) }
        annotations = try c.decodeIfPresent([String: String].self, forKey: .annotations)
        ownerReferences = try c.decodeIfPresent([OwnerReference].self, forKey: .ownerReferences)
        deletionTimestamp = try c.decodeIfPresent(String.self, forKey: .deletionTimestamp)
        creationTimestamp = try c.decodeIfPresent(String.self, forKey: .creationTimestamp)
    }
}

extension ObjectMeta {
    /// Label keys and values most objects of a kind carry (every EndpointSlice names its Service
    /// and its manager): decoded, each object had its own heap copy of each, 48–64 bytes apiece;
    /// these literals are one copy for all.
    static let commonLabelKeys = [
        "kubernetes.io/service-name", "endpointslice.kubernetes.io/managed-by", "app.kubernetes.io/managed-by", "app.kubernetes.io/name",
    ]
    static let commonLabelValues = ["endpointslice-controller.k8s.io"]

    /// Replaces common keys and values in `labels` by the shared literals (equal strings).
    static func intern(_ labels: inout [String: String]) {
        for key in commonLabelKeys {
            guard var value = labels.removeValue(forKey: key) else { continue }
            if let common = commonLabelValues.first(where: { $0 == value }) { value = common }
            labels[key] = value
        }
    }
}

/// `metadata.ownerReferences[]`.
public struct OwnerReference: Codable, Hashable, Sendable {
    public var apiVersion: String
    public var kind: String
    public var name: String
    public var uid: String
    public var controller: Bool?
    public var blockOwnerDeletion: Bool?

    public init(apiVersion: String, kind: String, name: String, uid: String, controller: Bool? = nil, blockOwnerDeletion: Bool? = nil) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.name = name
        self.uid = uid
        self.controller = controller
        self.blockOwnerDeletion = blockOwnerDeletion
    }
}

/// Where a resource lives in the API: enough to build list, watch, get and patch URLs.
public struct ResourceDescriptor: Hashable, Sendable {
    /// API group; "" for the core group.
    public var group: String
    public var version: String
    /// Plural resource name in URLs, e.g. "endpointslices".
    public var plural: String
    public var kind: String
    public var namespaced: Bool

    public init(group: String, version: String, plural: String, kind: String, namespaced: Bool) {
        self.group = group
        self.version = version
        self.plural = plural
        self.kind = kind
        self.namespaced = namespaced
    }

    /// `apiVersion` as written in objects: "v1" or "group/version".
    public var apiVersion: String { group.isEmpty ? version : "\(group)/\(version)" }
}

/// A Kubernetes object kind Portway reads or writes.
public protocol KubeResource: Codable, Sendable {
    static var resource: ResourceDescriptor { get }
    var metadata: ObjectMeta { get }
}

extension KubeResource {
    /// "namespace/name", or "name" for cluster-scoped objects: the key of informer stores.
    public var storeKey: String {
        if let namespace = metadata.namespace, !namespace.isEmpty { return "\(namespace)/\(metadata.name)" }
        return metadata.name
    }
}
