import Foundation
import KubeModels
import LoadBalancer
import Yams

/// How the offline source decodes one kind of object and where it puts it in the snapshot.
public struct ObjectKind: Sendable {
    /// The kind's API group, version and name (only objects of this group are taken).
    public let descriptor: ResourceDescriptor
    let decode: @Sendable (_ node: Yams.Node, _ snapshot: inout ClusterSnapshot) throws -> Void

    /// A kind decoded as `T` and stored by `store`, e.g. `ObjectKind(Service.self) { $0.services.append($1) }`.
    public init<T: KubeResource>(_ type: T.Type, store: @escaping @Sendable (inout ClusterSnapshot, T) -> Void) {
        descriptor = T.resource
        decode = { node, snapshot in
            store(&snapshot, try NodeDecoder.decode(T.self, from: node))
        }
    }

    /// The kind declared in the resource registry.
    public init<T>(_ declaration: ResourceKind<T>) {
        self.init(T.self, store: declaration.store)
    }

    /// True when `apiVersion` ("v1", "discovery.k8s.io/v1") is of this kind's group. Any version of
    /// the group is accepted: the slim models read fields that are stable across versions.
    func matches(apiVersion: String) -> Bool {
        guard !apiVersion.isEmpty else { return true }
        let group = apiVersion.contains("/") ? String(apiVersion.split(separator: "/").first ?? "") : ""
        return group == descriptor.group
    }
}

extension FileSource {
    /// The kinds read into the snapshot, by `kind`: those of `ResourceRegistry` (where adding a
    /// kind is one declaration).
    public static let kinds: [String: ObjectKind] = Dictionary(
        uniqueKeysWithValues: ResourceRegistry.kinds.map { kind in (kind.kind, objectKind(kind)) })

    private static func objectKind<K: AnyResourceKind>(_ kind: K) -> ObjectKind { ObjectKind(kind.declaration) }
}
