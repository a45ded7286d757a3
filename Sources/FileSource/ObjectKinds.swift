import Foundation
import KubeModels
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

    /// True when `apiVersion` ("v1", "discovery.k8s.io/v1") is of this kind's group. Any version of
    /// the group is accepted: the slim models read fields that are stable across versions.
    func matches(apiVersion: String) -> Bool {
        guard !apiVersion.isEmpty else { return true }
        let group = apiVersion.contains("/") ? String(apiVersion.split(separator: "/").first ?? "") : ""
        return group == descriptor.group
    }
}

extension FileSource {
    /// The kinds read into the snapshot, by `kind`. Adding a kind (e.g. Gateway API objects) is one
    /// line here, plus its array in `ClusterSnapshot`.
    public static let kinds: [String: ObjectKind] = [
        "Service": ObjectKind(Service.self) { $0.services.append($1) },
        "EndpointSlice": ObjectKind(EndpointSlice.self) { $0.endpointSlices.append($1) },
        "Endpoints": ObjectKind(Endpoints.self) { $0.endpoints.append($1) },
        "Node": ObjectKind(KubeModels.Node.self) { $0.nodes.append($1) },
        "Namespace": ObjectKind(Namespace.self) { $0.namespaces.append($1) },
        "Secret": ObjectKind(Secret.self) { $0.secrets.append($1) },
        "GatewayClass": ObjectKind(GatewayClass.self) { $0.gatewayClasses.append($1) },
        "Gateway": ObjectKind(Gateway.self) { $0.gateways.append($1) },
        "HTTPRoute": ObjectKind(HTTPRoute.self) { $0.httpRoutes.append($1) },
        "ReferenceGrant": ObjectKind(ReferenceGrant.self) { $0.referenceGrants.append($1) },
    ]
}
