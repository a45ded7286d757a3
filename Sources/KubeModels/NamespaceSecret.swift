/// core/v1 Namespace: only its labels matter (Gateway listeners select route namespaces by label).
public struct Namespace: KubeResource, Hashable {
    public static let resource = ResourceDescriptor(group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false)
    public var metadata: ObjectMeta

    public init(metadata: ObjectMeta) { self.metadata = metadata }
}

/// core/v1 Secret, as HTTPS listeners' certificateRefs use it: its type and data.
public struct Secret: KubeResource, Hashable {
    public static let resource = ResourceDescriptor(group: "", version: "v1", plural: "secrets", kind: "Secret", namespaced: true)
    /// The type of Secrets that hold a certificate chain and key.
    public static let tlsType = "kubernetes.io/tls"
    public var metadata: ObjectMeta
    /// e.g. "kubernetes.io/tls", "Opaque".
    public var type: String?
    /// Base64-encoded values by key ("tls.crt", "tls.key"), as the API serves them.
    public var data: [String: String]?

    public init(metadata: ObjectMeta, type: String? = nil, data: [String: String]? = nil) {
        self.metadata = metadata
        self.type = type
        self.data = data
    }
}
