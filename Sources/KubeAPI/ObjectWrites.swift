import Foundation
import KubeModels

extension KubeClient {
    /// PUT the status subresource with the whole object: its `metadata.resourceVersion` is the
    /// precondition (409 Conflict when someone changed the object since it was read), and the server
    /// takes only `status` from it. For atomic lists shared between controllers (an HTTPRoute's
    /// `status.parents`), which a merge patch would overwrite blindly.
    public func updateStatus<R: KubeResource>(_ object: R, namespace: String? = nil) async throws -> R {
        let ns = namespace ?? object.metadata.namespace
        let what = RequestDescription(verb: "update", resource: R.resource, namespace: ns, name: object.metadata.name)
        let body = try Self.encodeWithKind(object)
        let data = try await perform(
            what, method: "PUT", path: Self.path(R.resource, namespace: ns, name: object.metadata.name, subresource: "status"),
            body: body, contentType: "application/json")
        return try Self.decode(R.self, data, what)
    }

    /// PATCH an object with a JSON merge patch: only the fields in `mergePatch` change, so fields the
    /// slim models leave out (and those the server allocated) are kept.
    public func patch<R: KubeResource>(_ type: R.Type, name: String, namespace: String? = nil, mergePatch: Data) async throws -> R {
        let what = RequestDescription(verb: "patch", resource: R.resource, namespace: namespace, name: name)
        let data = try await perform(
            what, method: "PATCH", path: Self.path(R.resource, namespace: namespace, name: name),
            body: mergePatch, contentType: "application/merge-patch+json")
        return try Self.decode(R.self, data, what)
    }
}
