import Foundation
import GatewayCore
import KubeAPI
import KubeModels
import LoadBalancer
import Logging
import Synchronization

/// What one pass of the leader's writers did (logs, tests).
public struct GatewayWriteReport: Sendable, Equatable {
    /// "namespace/name" of the Services created or updated.
    public var servicesCreated: [String] = []
    public var servicesUpdated: [String] = []
    /// "Kind namespace/name" of each status written.
    public var statusWrites: [String] = []
    /// Writes that failed (retried at the next pass).
    public var errors: [String] = []
    /// The resourceVersion of each Gateway ("namespace/name") in the state the pass was made from:
    /// which change a pass has seen (tests wait for the pass after a change with it).
    public var gatewayVersions: [String: String] = [:]

    public init() {}

    public var isEmpty: Bool { servicesCreated.isEmpty && servicesUpdated.isEmpty && statusWrites.isEmpty && errors.isEmpty }
}

/// The leader's outputs of the Gateway control plane, from one whole snapshot:
/// - the Service `portway-gw-<gateway>` of each Portway Gateway (`GatewayServices.desiredService`):
///   created when missing, patched when its type, ports, labels, annotations or owner differ (merge patch, so what
///   the server allocated, cluster IP and node ports, stays); deleted with its Gateway by the
///   garbage collector through the ownerReference;
/// - status: each Portway GatewayClass's conditions, each Portway Gateway's status, and Portway's
///   entries of each HTTPRoute's `status.parents` (`GatewayStatusMerge.mergeParents`: other
///   controllers' entries are left as they are). Each is a PUT on /status with the resourceVersion
///   read; a 409 re-reads the object and merges again.
///
/// Writes happen only when something changed: a status is compared with what the object holds, and
/// with what this writer last wrote and the server then stored (the server fills defaults in, so
/// the stored form may differ from the written one without anything having changed).
public final class GatewayWriters: Sendable {
    public let client: KubeClient
    public let options: GatewayOptions
    /// The Service type unless a Gateway's `portway.io/service-type` annotation says otherwise.
    public let serviceType: String
    let logger: Logger
    let now: @Sendable () -> String
    /// Per object ("Kind ns/name"): the status last written and the status the server stored, JSON.
    private let written = Mutex<[String: (desired: Data, stored: Data)]>([:])
    /// How many times a write is retried after 409 Conflict.
    static let conflictRetries = 4

    public init(
        client: KubeClient, options: GatewayOptions = .node(), serviceType: String = "NodePort",
        logger: Logger = Logger(label: "portway.gateway.leader"), now: @escaping @Sendable () -> String = GatewayWriters.rfc3339Now
    ) {
        self.client = client
        self.options = options
        self.serviceType = serviceType
        self.logger = logger
        self.now = now
    }

    /// The current time as RFC 3339 (`2026-11-26T03:00:00Z`), as conditions carry it.
    public static func rfc3339Now() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: Date())
    }

    /// Forgets what was written (a new term of leadership starts from what the objects hold).
    public func reset() { written.withLock { $0 = [:] } }

    /// One pass over `snapshot`: Services, then status. `reports`: the live nodes' reports of what
    /// they serve (node → report); a Gateway or ListenerSet is `Programmed`, and an HTTPRoute's
    /// parent `Accepted`, only when every one serves its generation with no failure
    /// (`NodeProgramReport.applying`). None: the build's status as it is.
    public func write(_ snapshot: ClusterSnapshot, reports: [String: NodeProgramReport] = [:]) async -> GatewayWriteReport {
        // The plan every node makes, from scratch: the leader writes the status and Services it implies.
        let state = GatewayPlan(index: ClusterIndex(snapshot), options: options).state
        var report = GatewayWriteReport()
        for gateway in snapshot.gateways {
            report.gatewayVersions["\(gateway.metadata.namespace ?? "")/\(gateway.metadata.name)"] = gateway.metadata.resourceVersion ?? ""
        }
        for key in state.ownedGateways {
            guard let gateway = snapshot.gateways.first(where: { Self.key($0.metadata) == key }) else { continue }
            await writeService(for: gateway, extraPorts: state.listenerSetPorts(gateway: key), existing: snapshot.services, into: &report)
        }
        let time = now()
        for (name, status) in state.status.gatewayClasses.sorted(by: { $0.key < $1.key }) {
            guard let object = snapshot.gatewayClasses.first(where: { $0.metadata.name == name }) else { continue }
            await writeStatus(object, into: &report) { current in
                var out = current
                out.status = GatewayClassStatus(
                    conditions: GatewayStatusMerge.mergeConditions(existing: current.status?.conditions ?? [], new: status.conditions ?? [], now: time),
                    supportedFeatures: status.supportedFeatures)
                return out
            }
        }
        for (key, status) in state.status.gateways.sorted(by: { $0.key < $1.key }) {
            guard let object = snapshot.gateways.first(where: { Self.key($0.metadata) == key }) else { continue }
            let status = NodeProgramReport.applying(reports, to: status, gateway: key, generation: object.metadata.generation ?? 0)
            await writeStatus(object, into: &report) { current in
                var out = current
                out.status = GatewayStatusMerge.mergeGatewayStatus(existing: current.status, new: status, now: time)
                return out
            }
        }
        // ListenerSets of Portway's Gateways: conditions and listeners (transition times kept as a Gateway's).
        for (key, status) in state.status.listenerSets.sorted(by: { $0.key < $1.key }) {
            guard let object = snapshot.listenerSets.first(where: { Self.key($0.metadata) == key }) else { continue }
            let status = NodeProgramReport.applying(reports, to: status, listenerSet: key, generation: object.metadata.generation ?? 0)
            await writeStatus(object, into: &report) { current in
                var out = current
                let merged = GatewayStatusMerge.mergeGatewayStatus(
                    existing: current.status.map { GatewayStatus(conditions: $0.conditions, listeners: $0.listeners) },
                    new: GatewayStatus(conditions: status.conditions, listeners: status.listeners), now: time)
                out.status = ListenerSetStatus(conditions: merged.conditions, listeners: merged.listeners)
                return out
            }
        }
        for route in snapshot.httpRoutes.sorted(by: { Self.key($0.metadata) < Self.key($1.metadata) }) {
            let key = Self.key(route.metadata)
            let ours = NodeProgramReport.applying(
                reports, toRoute: state.status.routes[key] ?? [], route: key, generation: route.metadata.generation ?? 0)
            // Routes that never had a Portway parent and have none now: nothing to do, no read.
            guard !ours.isEmpty || route.status?.parents?.contains(where: { $0.controllerName == options.controllerName }) == true else { continue }
            await writeStatus(route, into: &report) { current in
                var out = current
                let parents = GatewayStatusMerge.mergeParents(
                    existing: current.status?.parents ?? [], ours: ours, controllerName: self.options.controllerName,
                    routeNamespace: key.namespace, now: time)
                out.status = HTTPRouteStatus(parents: parents)
                return out
            }
        }
        // BackendTLSPolicies: Portway's ancestor entries (one per Gateway whose routes use their Services).
        for policy in snapshot.backendTLSPolicies.sorted(by: { Self.key($0.metadata) < Self.key($1.metadata) }) {
            let key = Self.key(policy.metadata)
            let ours = state.status.backendTLSPolicies[key] ?? []
            guard !ours.isEmpty || policy.status?.ancestors.contains(where: { $0.controllerName == options.controllerName }) == true else { continue }
            await writeStatus(policy, into: &report) { current in
                var out = current
                out.status = PolicyStatus(ancestors: GatewayStatusMerge.mergeAncestors(
                    existing: current.status?.ancestors ?? [], ours: ours, controllerName: self.options.controllerName,
                    policyNamespace: key.namespace, now: time))
                return out
            }
        }
        return report
    }

    static func key(_ metadata: ObjectMeta) -> NamespacedName {
        NamespacedName(namespace: metadata.namespace ?? "", name: metadata.name)
    }

    // MARK: Services

    private func writeService(for gateway: Gateway, extraPorts: [Int] = [], existing services: [Service], into report: inout GatewayWriteReport) async {
        guard let uid = gateway.metadata.uid, !uid.isEmpty else { return }
        let desired = GatewayServices.desiredService(for: gateway, defaultType: serviceType, extraPorts: extraPorts)
        let namespace = desired.metadata.namespace ?? "default"
        let name = desired.metadata.name
        let label = "\(namespace)/\(name)"
        guard let current = services.first(where: { $0.metadata.namespace == namespace && $0.metadata.name == name }) else {
            do {
                _ = try await client.create(desired)
                report.servicesCreated.append(label)
                logger.info("created Service \(label) for Gateway \(namespace)/\(gateway.metadata.name)")
            } catch let error as KubeAPIError where error.code == 409 {
                // Created meanwhile (its informer event is on its way): compared at the next pass.
            } catch {
                report.errors.append("create Service \(label): \(error)")
            }
            return
        }
        let owners = current.metadata.ownerReferences ?? []
        if let controller = owners.first(where: { $0.controller == true }), controller.uid != uid {
            report.errors.append("Service \(label) is controlled by \(controller.kind) \(controller.name), not by Gateway \(gateway.metadata.name): left alone")
            return
        }
        guard let patch = Self.servicePatch(current: current, desired: desired, owners: owners) else { return }
        do {
            _ = try await client.patch(Service.self, name: name, namespace: namespace, mergePatch: patch)
            report.servicesUpdated.append(label)
            logger.info("updated Service \(label) for Gateway \(namespace)/\(gateway.metadata.name)")
        } catch {
            report.errors.append("patch Service \(label): \(error)")
        }
    }

    /// The merge patch that brings `current` to `desired` (type, ports, the Gateway label and the
    /// Gateway's infrastructure labels and annotations, the owner), nil when nothing differs. Node
    /// ports of ports that stay are kept; labels and annotations others set are left as they are.
    static func servicePatch(current: Service, desired: Service, owners: [OwnerReference]) -> Data? {
        let desiredOwner = desired.metadata.ownerReferences ?? []
        let desiredPorts = (desired.spec.ports ?? []).map { port -> ServicePort in
            var p = port
            p.nodePort = current.spec.ports?.first { $0.port == port.port && ($0.protocol ?? "TCP") == (port.protocol ?? "TCP") }?.nodePort
            return p
        }
        func shape(_ ports: [ServicePort]) -> [String] { ports.map { "\($0.name ?? "")/\($0.protocol ?? "TCP")/\($0.port)" }.sorted() }
        // Labels and annotations: the desired ones set; those the Service's records say came from
        // the Gateway's infrastructure and that it no longer has, removed (null in a merge patch).
        func changes(desired: [String: String], current: [String: String], recorded: String?) -> [String: String?] {
            var out: [String: String?] = [:]
            for key in (recorded ?? "").split(separator: ",").map(String.init) where desired[key] == nil && current[key] != nil {
                out[key] = .some(nil)
            }
            for (key, value) in desired where current[key] != value { out[key] = value }
            return out
        }
        let currentAnnotations = current.metadata.annotations ?? [:]
        var annotationChanges = changes(
            desired: desired.metadata.annotations ?? [:], current: currentAnnotations,
            recorded: currentAnnotations[GatewayServices.propagatedAnnotationsAnnotation])
        for record in [GatewayServices.propagatedLabelsAnnotation, GatewayServices.propagatedAnnotationsAnnotation]
        where desired.metadata.annotations?[record] == nil && currentAnnotations[record] != nil {
            annotationChanges[record] = .some(nil)
        }
        let labelChanges = changes(
            desired: desired.metadata.labels ?? [:], current: current.metadata.labels ?? [:],
            recorded: currentAnnotations[GatewayServices.propagatedLabelsAnnotation])
        let ownerOK = desiredOwner.allSatisfy { owner in owners.contains { $0.uid == owner.uid && $0.controller == true } }
        let typeOK = current.spec.type == desired.spec.type
        let portsOK = shape(current.spec.ports ?? []) == shape(desiredPorts)
        guard !(labelChanges.isEmpty && annotationChanges.isEmpty && ownerOK && typeOK && portsOK) else { return nil }
        struct Patch: Encodable {
            struct Metadata: Encodable {
                var labels: [String: String?]
                var annotations: [String: String?]?
                var ownerReferences: [OwnerReference]
            }
            struct Spec: Encodable {
                var type: String?
                var ports: [ServicePort]
            }
            var metadata: Metadata
            var spec: Spec
        }
        // Other owners stay (a merge patch replaces the whole list).
        let keptOwners = owners.filter { owner in !desiredOwner.contains { $0.uid == owner.uid } && owner.controller != true }
        let patch = Patch(
            metadata: .init(
                labels: labelChanges, annotations: annotationChanges.isEmpty ? nil : annotationChanges,
                ownerReferences: keptOwners + desiredOwner),
            spec: .init(type: desired.spec.type, ports: desiredPorts))
        return try? JSONEncoder().encode(patch)
    }

    // MARK: Status

    /// Writes `update(object)` unless it equals what the object holds (or what this writer wrote
    /// last and the server stored); on 409 re-reads the object and computes again.
    private func writeStatus<R: KubeResource & Hashable>(_ object: R, into report: inout GatewayWriteReport, update: (R) -> R) async {
        let name = "\(R.resource.kind) \(object.metadata.namespace.map { "\($0)/" } ?? "")\(object.metadata.name)"
        var current = object
        for _ in 0...Self.conflictRetries {
            let desired = update(current)
            guard let desiredStatus = Self.statusJSON(desired), let currentStatus = Self.statusJSON(current) else { return }
            if desiredStatus == currentStatus { return }
            let last = written.withLock { $0[name] }
            if let last, last.desired == desiredStatus, last.stored == currentStatus { return }
            do {
                let stored = try await client.updateStatus(desired)
                written.withLock { $0[name] = (desiredStatus, Self.statusJSON(stored) ?? Data()) }
                report.statusWrites.append(name)
                logger.info("wrote the status of \(name)")
                return
            } catch let error as KubeAPIError where error.code == 409 {
                do {
                    current = try await client.get(R.self, name: object.metadata.name, namespace: object.metadata.namespace)
                } catch {
                    report.errors.append("re-read \(name) after a conflict: \(error)")
                    return
                }
            } catch let error as KubeAPIError where error.code == 404 {
                return  // Deleted meanwhile.
            } catch {
                report.errors.append("write the status of \(name): \(error)")
                return
            }
        }
        report.errors.append("write the status of \(name): still conflicting after \(Self.conflictRetries) retries")
    }

    /// The object's `status` as canonical JSON (sorted keys), for comparing.
    static func statusJSON<R: KubeResource>(_ object: R) -> Data? {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(object),
            let dict = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        guard let status = dict["status"] else { return Data("null".utf8) }
        return try? JSONSerialization.data(withJSONObject: status, options: [.sortedKeys, .fragmentsAllowed])
    }
}
