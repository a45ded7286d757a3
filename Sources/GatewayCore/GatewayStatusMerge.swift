import LoadBalancer
import KubeModels

/// Pure merges for the leader's status writer: Portway's computed status into what an object has.
public enum GatewayStatusMerge {
    /// `status.parents` of an HTTPRoute after Portway's write: entries of other controllers stay as
    /// they are and where they are; Portway's entries (`controllerName`) are replaced by `ours`
    /// (matched by parentRef, defaults applied), stale ones of Portway's are removed, new ones are
    /// appended. Conditions whose status did not change keep their `lastTransitionTime`; the others
    /// get `now` (RFC 3339).
    public static func mergeParents(
        existing: [RouteParentStatus], ours: [RouteParentStatus], controllerName: String, routeNamespace: String, now: String
    ) -> [RouteParentStatus] {
        var remaining = ours
        var out: [RouteParentStatus] = []
        for entry in existing {
            guard entry.controllerName == controllerName else {
                out.append(entry)
                continue
            }
            let key = normalized(entry.parentRef, routeNamespace: routeNamespace)
            guard let i = remaining.firstIndex(where: { normalized($0.parentRef, routeNamespace: routeNamespace) == key }) else { continue }  // Stale: ours, no longer wanted.
            var updated = remaining.remove(at: i)
            updated.conditions = mergeConditions(existing: entry.conditions ?? [], new: updated.conditions ?? [], now: now)
            out.append(updated)
        }
        for var entry in remaining {
            entry.conditions = mergeConditions(existing: [], new: entry.conditions ?? [], now: now)
            out.append(entry)
        }
        return out
    }

    /// `status.ancestors` of a policy after Portway's write, as `mergeParents` does for a route:
    /// other controllers' entries stay; Portway's are replaced by `ours` (by ancestorRef), stale
    /// ones removed, new ones appended; unchanged conditions keep their transition time.
    public static func mergeAncestors(
        existing: [PolicyAncestorStatus], ours: [PolicyAncestorStatus], controllerName: String, policyNamespace: String, now: String
    ) -> [PolicyAncestorStatus] {
        let asParents = mergeParents(
            existing: existing.map { RouteParentStatus(parentRef: $0.ancestorRef, controllerName: $0.controllerName, conditions: $0.conditions) },
            ours: ours.map { RouteParentStatus(parentRef: $0.ancestorRef, controllerName: $0.controllerName, conditions: $0.conditions) },
            controllerName: controllerName, routeNamespace: policyNamespace, now: now)
        return asParents.map { PolicyAncestorStatus(ancestorRef: $0.parentRef, controllerName: $0.controllerName, conditions: $0.conditions) }
    }

    /// A Gateway's status after Portway's write: `new`, with the transition times of unchanged
    /// conditions (the Gateway's and each listener's, matched by listener name) kept from `existing`,
    /// and `existing`'s addresses when `new` has the same ones in another order (the order is no
    /// change worth a write). Compare the result with `existing` to write only when something changed.
    public static func mergeGatewayStatus(existing: GatewayStatus?, new: GatewayStatus, now: String) -> GatewayStatus {
        var out = new
        if let old = existing?.addresses, let addresses = new.addresses, old.count == addresses.count, Set(old) == Set(addresses) {
            out.addresses = old
        }
        out.conditions = mergeConditions(existing: existing?.conditions ?? [], new: new.conditions ?? [], now: now)
        out.listeners = new.listeners?.map { listener in
            var l = listener
            let old = existing?.listeners?.first { $0.name == listener.name }
            l.conditions = mergeConditions(existing: old?.conditions ?? [], new: listener.conditions, now: now)
            return l
        }
        return out
    }

    /// `new` with each condition's `lastTransitionTime` kept from `existing` when its status is
    /// unchanged, else set to `now`.
    public static func mergeConditions(existing: [Condition], new: [Condition], now: String) -> [Condition] {
        new.map { condition in
            var c = condition
            if let old = existing.first(where: { $0.type == condition.type }), old.status == condition.status, let time = old.lastTransitionTime {
                c.lastTransitionTime = time
            } else {
                c.lastTransitionTime = now
            }
            return c
        }
    }

    /// A parentRef with its defaults written out, for comparing references.
    public static func normalized(_ ref: ParentReference, routeNamespace: String) -> ParentReference {
        ParentReference(
            group: ref.group ?? GatewayAPI.group, kind: ref.kind ?? "Gateway", namespace: ref.namespace ?? routeNamespace,
            name: ref.name, sectionName: ref.sectionName, port: ref.port
        )
    }
}
