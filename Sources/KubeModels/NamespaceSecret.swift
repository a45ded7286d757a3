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

/// core/v1 ConfigMap, as CA certificate references use it (a Gateway's `spec.tls.frontend`
/// `caCertificateRefs`): only its `ca.crt` key is kept. Every agent watches every ConfigMap (RBAC
/// and the API cannot narrow them to the referenced ones), so decoding drops the other keys and the
/// metadata Portway does not read (labels, annotations, owners): the store holds names and CA
/// bundles only. Never write back an object decoded with this model (it would lose those keys).
public struct ConfigMap: KubeResource, Hashable {
    public static let resource = ResourceDescriptor(group: "", version: "v1", plural: "configmaps", kind: "ConfigMap", namespaced: true)
    /// The key a CA certificate reference reads (PEM).
    public static let caCertificateKey = "ca.crt"
    public var metadata: ObjectMeta
    /// `data`, reduced to `ca.crt` when present.
    public var data: [String: String]?

    public init(metadata: ObjectMeta, data: [String: String]? = nil) {
        self.metadata = metadata
        self.data = data
    }

    /// The PEM text under `ca.crt`, nil when absent.
    public var caCertificate: String? { data?[Self.caCertificateKey] }

    enum CodingKeys: String, CodingKey { case metadata, data }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var meta = try c.decodeIfPresent(ObjectMeta.self, forKey: .metadata) ?? ObjectMeta(name: "")
        meta.labels = nil
        meta.annotations = nil
        meta.ownerReferences = nil
        metadata = meta
        // Only `ca.crt` is decoded: the other values are skipped, never held.
        if c.contains(.data), try !c.decodeNil(forKey: .data) {
            let values = try c.nestedContainer(keyedBy: AnyKey.self, forKey: .data)
            if let key = AnyKey(stringValue: Self.caCertificateKey), values.contains(key) {
                data = [Self.caCertificateKey: try values.decode(String.self, forKey: key)]
            } else {
                data = [:]
            }
        } else {
            data = nil
        }
    }

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}
