import KubeModels
import LoadBalancer

/// The TLS the proxy speaks to a backend: the BackendTLSPolicy that applies to its Service port,
/// resolved (GEP-1897, Gateway API v1.6.1 standard).
public struct BackendTLS: Hashable, Codable, Sendable {
    /// The policy (`namespace/name`).
    public var policy: NamespacedName
    /// `validation.hostname`: the SNI, and the name the backend's certificate must carry unless
    /// `subjectAltNames` is set.
    public var hostname: String
    /// `validation.subjectAltNames`: when not empty, the certificate must carry one of them (and
    /// `hostname` is only the SNI).
    public var subjectAltNames: [BackendSubjectAltName]
    /// True for `wellKnownCACertificates: System`: the system's trusted CA certificates.
    public var systemCACertificates: Bool
    /// The ConfigMaps whose `ca.crt` resolved, in reference order.
    public var caCertificateRefs: [NamespacedName]
    /// Their `ca.crt` PEM text, concatenated (CA certificates are public: they may be in the tables).
    public var caCertificates: [UInt8]
    /// Why the policy cannot be used (no usable CA certificate, an invalid field): requests to the
    /// backend get 500, never plain HTTP. nil: usable.
    public var problem: String?

    public init(
        policy: NamespacedName, hostname: String, subjectAltNames: [BackendSubjectAltName] = [], systemCACertificates: Bool = false,
        caCertificateRefs: [NamespacedName] = [], caCertificates: [UInt8] = [], problem: String? = nil
    ) {
        self.policy = policy
        self.hostname = hostname
        self.subjectAltNames = subjectAltNames
        self.systemCACertificates = systemCACertificates
        self.caCertificateRefs = caCertificateRefs
        self.caCertificates = caCertificates
        self.problem = problem
    }

    /// Where the CA certificates come from, for people: `System` or `ConfigMap ns/a, ns/b`.
    public var caSource: String {
        systemCACertificates ? "System" : "ConfigMap \(caCertificateRefs.map(\.description).joined(separator: ", "))"
    }
}

/// One Subject Alternative Name a backend's certificate may carry.
public struct BackendSubjectAltName: Hashable, Codable, Sendable, CustomStringConvertible {
    public enum Kind: String, Hashable, Codable, Sendable {
        /// A DNS name (`*.example.com` in the certificate matches one label).
        case hostname = "Hostname"
        /// A URI, compared exactly (a SPIFFE ID).
        case uri = "URI"
    }

    public var type: Kind
    public var value: String

    public init(type: Kind, value: String) {
        self.type = type
        self.value = value
    }

    public var description: String { "\(type.rawValue):\(value)" }
}

/// Every BackendTLSPolicy of an index, validated once per build, with the conflicts between them
/// resolved: which policy applies to a Service port, and each policy's conditions.
///
/// - Targets: `targetRefs` of kind Service (group ""), with an optional `sectionName` (a port
///   name). Several policies on one (Service, sectionName): the oldest (creationTimestamp), then
///   the first by namespace/name, applies; the others are `Accepted=False/Conflicted`. A port is
///   served by the policy naming its port, else by the one naming the whole Service.
/// - CA certificates: each `caCertificateRefs` entry must be a ConfigMap (else `InvalidKind`)
///   existing with a usable `ca.crt` (else `InvalidCACertificateRef`): `ResolvedRefs=False` with
///   the reason; none usable: also `Accepted=False/NoValidCACertificate`, and requests to the
///   backend get 500. `wellKnownCACertificates: System` takes the system's CA certificates; any
///   other value, both or neither given, a `subjectAltNames` entry without its value, or an empty
///   hostname: `Accepted=False/Invalid` (the CRD's CEL rules, which a v1.24 API server skips).
struct BackendTLSPolicyIndex {
    struct Facts {
        var policy: BackendTLSPolicy
        var key: NamespacedName
        /// The resolved TLS (with `problem` when it cannot be used).
        var tls: BackendTLS
        /// Accepted=False: (reason, message); nil: accepted (unless conflicted).
        var notAccepted: (reason: String, message: String)?
        /// ResolvedRefs=False: (reason, message) of the first bad reference.
        var refProblem: (reason: String, message: String)?
        /// The targets it lost to an older policy: message.
        var conflict: String?
    }

    /// Policy key → facts.
    private(set) var facts: [NamespacedName: Facts] = [:]
    /// (Service, sectionName or nil) → the policy that applies.
    private var winners: [TargetKey: NamespacedName] = [:]
    /// Service → every policy naming it (any section), for status.
    private var byService: [ObjectKey: [(section: String?, policy: NamespacedName)]] = [:]

    private struct TargetKey: Hashable {
        var service: ObjectKey
        var section: String?
    }

    var isEmpty: Bool { facts.isEmpty }

    init(index: ClusterIndex, validator: @escaping CACertificateValidator) {
        guard !index.backendTLSPolicies.isEmpty else { return }
        var cas = CABundleReader(validator: validator)
        var claims: [TargetKey: [(created: String, key: NamespacedName)]] = [:]
        for (objectKey, policies) in index.backendTLSPolicies.sorted(by: { $0.key < $1.key }) {
            // Files can hold one name twice: the first counts (the builder warns for other kinds).
            guard let policy = policies.first else { continue }
            let key = NamespacedName(namespace: objectKey.namespace, name: objectKey.name)
            facts[key] = Self.resolve(policy, key: key, index: index, cas: &cas)
            for target in policy.spec.targetRefs where target.group.isEmpty && target.kind == "Service" {
                let section = target.sectionName.flatMap { $0.isEmpty ? nil : $0 }
                let targetKey = TargetKey(service: ObjectKey(namespace: key.namespace, name: target.name), section: section)
                claims[targetKey, default: []].append((policy.metadata.creationTimestamp ?? "", key))
                byService[targetKey.service, default: []].append((section, key))
            }
        }
        for (target, claimants) in claims {
            let ordered = claimants.sorted { ($0.created, $0.key) < ($1.created, $1.key) }
            winners[target] = ordered[0].key
            for loser in ordered.dropFirst() where facts[loser.key]?.conflict == nil {
                facts[loser.key]?.conflict =
                    "Service \(target.service)\(target.section.map { " port \($0)" } ?? "") is targeted by the older BackendTLSPolicy \(ordered[0].key), which applies"
            }
        }
    }

    /// The policy serving a Service's port (by its name): the one naming the port, else the one
    /// naming the whole Service.
    func policy(service: NamespacedName, portName: String?) -> Facts? {
        let serviceKey = ObjectKey(namespace: service.namespace, name: service.name)
        if let name = portName, !name.isEmpty, let key = winners[TargetKey(service: serviceKey, section: name)] { return facts[key] }
        return winners[TargetKey(service: serviceKey, section: nil)].flatMap { facts[$0] }
    }

    /// Every policy that names the Service's port or the whole Service (applied or conflicted): the
    /// policies whose status a route using that port reports on.
    func relevantPolicies(service: NamespacedName, portName: String?) -> [NamespacedName] {
        let serviceKey = ObjectKey(namespace: service.namespace, name: service.name)
        return (byService[serviceKey] ?? []).filter { $0.section == nil || $0.section == portName }.map(\.policy)
    }

    /// The conditions of a policy for one ancestor (the same for every ancestor).
    func conditions(of key: NamespacedName, condition: (String, Bool, String, String, ObjectMeta) -> Condition) -> [Condition] {
        guard let fact = facts[key] else { return [] }
        let meta = fact.policy.metadata
        var out: [Condition] = []
        if let conflict = fact.conflict {
            out.append(condition("Accepted", false, "Conflicted", conflict, meta))
        } else if let why = fact.notAccepted {
            out.append(condition("Accepted", false, why.reason, why.message, meta))
        } else {
            out.append(condition("Accepted", true, "Accepted", "the policy applies to its targets' backends", meta))
        }
        if let problem = fact.refProblem {
            out.append(condition("ResolvedRefs", false, problem.reason, problem.message, meta))
        } else {
            out.append(condition("ResolvedRefs", true, "ResolvedRefs", "all references resolved", meta))
        }
        return out
    }

    private static func resolve(
        _ policy: BackendTLSPolicy, key: NamespacedName, index: ClusterIndex, cas: inout CABundleReader
    ) -> Facts {
        let validation = policy.spec.validation
        var tls = BackendTLS(policy: key, hostname: validation.hostname.lowercased())
        var facts = Facts(policy: policy, key: key, tls: tls)
        func invalid(_ message: String) {
            if facts.notAccepted == nil { facts.notAccepted = ("Invalid", message) }
        }
        if validation.hostname.isEmpty { invalid("validation.hostname is empty") }
        for (i, san) in (validation.subjectAltNames ?? []).enumerated() {
            switch san.type {
            case BackendSubjectAltName.Kind.hostname.rawValue:
                if let name = san.hostname, !name.isEmpty, (san.uri ?? "").isEmpty {
                    tls.subjectAltNames.append(BackendSubjectAltName(type: .hostname, value: name.lowercased()))
                } else {
                    invalid("validation.subjectAltNames[\(i)]: type Hostname needs hostname (and no uri)")
                }
            case BackendSubjectAltName.Kind.uri.rawValue:
                if let uri = san.uri, !uri.isEmpty, (san.hostname ?? "").isEmpty {
                    tls.subjectAltNames.append(BackendSubjectAltName(type: .uri, value: uri))
                } else {
                    invalid("validation.subjectAltNames[\(i)]: type URI needs uri (and no hostname)")
                }
            default:
                invalid("validation.subjectAltNames[\(i)]: type \(san.type) is not supported (Hostname and URI are)")
            }
        }
        let refs = validation.caCertificateRefs ?? []
        let wellKnown = validation.wellKnownCACertificates.flatMap { $0.isEmpty ? nil : $0 }
        switch (refs.isEmpty, wellKnown) {
        case (false, .some):
            invalid("validation sets both caCertificateRefs and wellKnownCACertificates")
        case (true, nil):
            invalid("validation sets neither caCertificateRefs nor wellKnownCACertificates")
        case (true, .some(let value)):
            if value == BackendTLSPolicyValidation.systemCACertificates {
                tls.systemCACertificates = true
            } else {
                invalid("validation.wellKnownCACertificates \(value) is not supported (System is)")
            }
        case (false, nil):
            for ref in refs {
                let target = NamespacedName(namespace: key.namespace, name: ref.name)
                func fail(_ reason: String, _ message: String) {
                    if facts.refProblem == nil { facts.refProblem = (reason, message) }
                }
                guard ref.group.isEmpty, ref.kind == ConfigMap.resource.kind else {
                    fail("InvalidKind", "caCertificateRef \(ref.name) is a \(ref.kind) of group \"\(ref.group)\": only ConfigMaps (group \"\") are supported")
                    continue
                }
                switch cas.pem(of: index.configMaps[ObjectKey(namespace: target.namespace, name: target.name)]?.last, target) {
                case .failure(let problem):
                    fail("InvalidCACertificateRef", problem.message)
                case .success(let pem):
                    tls.caCertificateRefs.append(target)
                    CABundleReader.append(pem, to: &tls.caCertificates)
                }
            }
            if tls.caCertificateRefs.isEmpty, let problem = facts.refProblem, facts.notAccepted == nil {
                facts.notAccepted = ("NoValidCACertificate", "no caCertificateRef resolved: \(problem.message)")
            }
        }
        if let why = facts.notAccepted { tls.problem = "BackendTLSPolicy \(key) is not accepted: \(why.reason): \(why.message)" }
        facts.tls = tls
        return facts
    }
}
