import KubeAPI
import KubeModels
import LoadBalancer

/// One LIST (no watch) of every kind `ResourceRegistry` declares in a scope, with the selectors the
/// agent's informers use (kube-proxy's Service label rules, the Node by name, TLS Secrets only):
/// the cluster as `portway routes --kubeconfig` and `portway explain --kubeconfig` see it, in the
/// shape the file source gives (`ClusterSnapshot`, objects in store-key order).
public enum ClusterSnapshotList {
    /// Why the cluster could not be listed.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Lists every kind watched in `scope`. An optional kind (a Gateway API CRD) answering 404, or
    /// one the agent can do without (Secrets) answering 403, is none, with a warning; any other error fails the whole list (a partial cluster would explain
    /// wrongly). With `allNodes`, every Node is listed instead of the one `scope` names (the CLI,
    /// when no `--node-name` is given, picks the node among them as with files).
    public static func list(client: KubeClient, scope: WatchScope, allNodes: Bool = false) async throws(Failure) -> (snapshot: ClusterSnapshot, warnings: [String]) {
        var snapshot = ClusterSnapshot()
        var warnings: [String] = []
        for kind in ResourceRegistry.kinds {
            try await list(kind, client: client, scope: scope, allNodes: allNodes, into: &snapshot, warnings: &warnings)
        }
        return (snapshot, warnings)
    }

    private static func list<K: AnyResourceKind>(
        _ kind: K, client: KubeClient, scope: WatchScope, allNodes: Bool, into snapshot: inout ClusterSnapshot, warnings: inout [String]
    ) async throws(Failure) {
        let declaration = kind.declaration
        guard var selectors = declaration.selectors(scope) else { return }
        if allNodes && K.Resource.resource.kind == Node.resource.kind { selectors.fieldSelector = nil }
        let plural = K.Resource.resource.plural
        let items: [K.Resource]
        do {
            items = try await client.list(
                K.Resource.self, options: ListOptions(labelSelector: selectors.labelSelector, fieldSelector: selectors.fieldSelector)
            ).items
        } catch let error as KubeAPIError where error.code == 404 && declaration.optional {
            warnings.append("\(plural): not served (\(error)); are the Gateway API CRDs installed? Taken as none")
            return
        } catch let error as KubeAPIError where error.code == 403 && declaration.forbiddenIsNone {
            warnings.append("\(plural): not readable (\(error)); taken as none")
            return
        } catch {
            throw Failure(description: "list \(plural): \(error)")
        }
        for object in items.sorted(by: { $0.storeKey < $1.storeKey }) { declaration.store(&snapshot, object) }
    }
}
