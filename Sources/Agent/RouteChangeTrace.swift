import Foundation
import KubeModels
import LoadBalancer

/// The hops a change took from the informer to the proxy's route table (issue 20's "route change
/// to first routed request"): when each source event of a reconcile step reached the pipeline,
/// when the step began, when it published the tables its Gateway build made, and when the proxy
/// output swapped them in. Times are wall-clock seconds since the epoch, so that another process
/// on the node (a test's PATCH and its own watch) can line them up with its own.
///
/// Made only for a step whose tables changed; the proxy output completes it at the swap, logs it
/// at debug level (`route change applied: …`, one line per event) and observes
/// `portway_route_change_seconds` (event → swap) through `L7ProxyOutput`'s `onRouteChange`.
public struct RouteChangeTrace: Sendable, Equatable {
    /// One informer event of the step: the object that changed.
    public struct Event: Sendable, Equatable {
        /// The kind's plural, as the API names it ("httproutes").
        public var kind: String
        /// "namespace/name", or the name of a cluster-scoped object.
        public var name: String
        /// `metadata.generation` of the object (nil: deleted, or a kind without one).
        public var generation: Int64?
        /// When the informer handed the event to the pipeline.
        public var received: Double

        public init(kind: String, name: String, generation: Int64?, received: Double) {
            self.kind = kind
            self.name = name
            self.generation = generation
            self.received = received
        }
    }

    /// The step's events (empty for a step no event started: a resync, a retry).
    public var events: [Event]
    /// When the reconcile step took its batch.
    public var stepStarted: Double
    /// When the step published the tables to the proxy output (translation and the Gateway build done).
    public var published: Double
    /// When the proxy output swapped the router built from them (nil until then).
    public var swapped: Double?

    public init(events: [Event], stepStarted: Double, published: Double, swapped: Double? = nil) {
        self.events = events
        self.stepStarted = stepStarted
        self.published = published
        self.swapped = swapped
    }

    /// Now, on the wall clock the trace uses.
    static func now() -> Double { Date().timeIntervalSince1970 }

    /// The debug lines of a swapped trace, one per event:
    /// `route change applied: httproutes ns/name generation=3 event=1765072800.123456 step=+0.210ms published=+1.402ms swapped=+1.988ms`
    /// (offsets from the event).
    public var logLines: [String] {
        guard let swapped else { return [] }
        func offset(_ time: Double, _ from: Double) -> String { String(format: "+%.3fms", (time - from) * 1000) }
        return events.map { event in
            "route change applied: \(event.kind) \(event.name) generation=\(event.generation.map(String.init) ?? "-") "
                + String(format: "event=%.6f", event.received)
                + " step=\(offset(stepStarted, event.received)) published=\(offset(published, event.received)) swapped=\(offset(swapped, event.received))"
        }
    }
}

extension ClusterChange {
    /// The object the change names, for a `RouteChangeTrace`.
    func traced(received: Double) -> RouteChangeTrace.Event {
        func event(_ kind: String, _ name: String, _ objects: [some KubeResource]) -> RouteChangeTrace.Event {
            RouteChangeTrace.Event(kind: kind, name: name, generation: objects.first?.metadata.generation, received: received)
        }
        switch self {
        case .services(let key, let objects): return event("services", key.description, objects)
        case .endpointSlices(let key, let objects): return event("endpointslices", key.description, objects)
        case .endpoints(let key, let objects): return event("endpoints", key.description, objects)
        case .nodes(let name, let objects): return event("nodes", name, objects)
        case .gatewayClasses(let name, let objects): return event("gatewayclasses", name, objects)
        case .gateways(let key, let objects): return event("gateways", key.description, objects)
        case .httpRoutes(let key, let objects): return event("httproutes", key.description, objects)
        case .referenceGrants(let key, let objects): return event("referencegrants", key.description, objects)
        case .namespaces(let name, let objects): return event("namespaces", name, objects)
        case .secrets(let key, let objects): return event("secrets", key.description, objects)
        case .listenerSets(let key, let objects): return event("listenersets", key.description, objects)
        case .configMaps(let key, let objects): return event("configmaps", key.description, objects)
        case .backendTLSPolicies(let key, let objects): return event("backendtlspolicies", key.description, objects)
        }
    }
}
