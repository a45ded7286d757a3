import KubeModels

/// Where the translator takes a Service's backends from.
public enum EndpointsSource: String, Hashable, Sendable, CaseIterable {
    /// discovery.k8s.io/v1 EndpointSlices labelled `kubernetes.io/service-name` (the default).
    case endpointSlices = "endpointslices"
    /// core/v1 Endpoints named like the Service (`--endpoints-source=endpoints`).
    case endpoints
}

/// What the translator needs to know about the node it runs for.
public struct TranslatorOptions: Hashable, Sendable {
    /// This node's name: backends whose `nodeName` equals it are local (traffic policies).
    public var nodeName: String
    /// This node's addresses: one `[NodePort]` frontend per IPv4 address and nodePort.
    /// IPv6 addresses are accepted and ignored until the IPv6 datapath exists. When empty, the
    /// InternalIP/ExternalIP addresses of the Node object named `nodeName` in the input are used.
    public var nodeAddresses: [IPAddress]
    public var endpointsSource: EndpointsSource

    public init(nodeName: String, nodeAddresses: [IPAddress] = [], endpointsSource: EndpointsSource = .endpointSlices) {
        self.nodeName = nodeName
        self.nodeAddresses = nodeAddresses
        self.endpointsSource = endpointsSource
    }
}

/// Turns Services and their endpoints into the desired L4 state, as kube-proxy and Cilium's
/// kube-proxy replacement do. Pure and deterministic: the same snapshot and options always give
/// the same entries and warnings, in the same order.
///
/// Bad input never stops the translation: the smallest part that cannot be understood (an address,
/// a port, an endpoint; the whole object when its name or type is unusable) is skipped and reported
/// as a `TranslationWarning` naming the object and the field, and everything else is translated.
/// A field that is merely invalid where a default exists (an unknown traffic policy, a bad affinity
/// timeout) falls back to that default, with a warning.
public enum Translator {
    /// `sessionAffinityConfig.clientIP.timeoutSeconds` when absent (Kubernetes' default, 3 hours).
    public static let defaultAffinityTimeoutSeconds: UInt32 = 10800
    /// The largest affinity timeout Kubernetes accepts (1 day).
    public static let maxAffinityTimeoutSeconds = 86400
    /// Namespace assumed for an object that names none (what `kubectl apply` does with a file).
    public static let defaultNamespace = "default"

    /// Translates `snapshot` for the node described by `options`: the full path, the same
    /// per-key translation the agent's reconcile-by-key runs, over every key at once.
    public static func translate(_ snapshot: ClusterSnapshot, options: TranslatorOptions) -> DesiredL4State {
        L4Reconciler(options: options, snapshot: snapshot).state
    }
}

/// Parses a Kubernetes protocol name ("TCP" when absent); nil when unknown. Case-sensitive, as the API is.
func parseProtocol(_ text: String?) -> L4Protocol? {
    guard let text else { return .tcp }
    return L4Protocol(rawValue: text)
}

/// Validates a port number from an object (1...65535).
func validPort(_ value: Int) -> UInt16? {
    (1...65535).contains(value) ? UInt16(value) : nil
}
