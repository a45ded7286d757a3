import KubeModels

/// kube-proxy's rules for which Services and addresses a node proxy serves, shared by the watch
/// (a label selector, so other proxies' Services never reach the agent) and the translator (so the
/// file source, and any snapshot that still holds such a Service, behaves the same way).
public enum KubeProxyRules {
    /// A Service with this label (any value) belongs to the named proxy, not to the default one.
    public static let serviceProxyNameLabel = "service.kubernetes.io/service-proxy-name"
    /// A Service with this label (any value) is headless as far as proxies are concerned.
    public static let headlessLabel = "service.kubernetes.io/headless"
    /// The label selector kube-proxy watches Services with: neither label present.
    public static let serviceLabelSelector = "!\(serviceProxyNameLabel),!\(headlessLabel)"

    /// Whether Portway (as the cluster's default proxy) serves this Service: neither label is set.
    public static func isServedByPortway(_ service: Service) -> Bool {
        guard let labels = service.metadata.labels else { return true }
        return labels[serviceProxyNameLabel] == nil && labels[headlessLabel] == nil
    }

    /// `status.loadBalancer.ingress[].ipMode`, as the node must act on it.
    public enum IngressMode: Equatable, Sendable {
        /// `VIP` or absent: packets arrive addressed to the ingress IP; the node serves it.
        case vip
        /// `Proxy`: the load balancer delivers to the node or pod itself; no frontend for the IP.
        case proxy
        /// A value the API does not define: not served (as kube-proxy), with a warning.
        case unknown(String)
    }

    public static func ingressMode(_ ingress: LoadBalancerIngress) -> IngressMode {
        switch ingress.ipMode {
        case nil, "VIP": .vip
        case "Proxy": .proxy
        case let other?: .unknown(other)
        }
    }
}
