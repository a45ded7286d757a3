import Foundation

extension ClusterConfig {
    /// The default service account directory in a pod.
    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// In-cluster config: KUBERNETES_SERVICE_HOST/PORT, and the service account's token (re-read
    /// as kubelet rotates it), CA and namespace under `root` (injectable for tests).
    public static func inCluster(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        root: String = serviceAccountDirectory,
        tokenRefresh: Duration = .seconds(60)
    ) throws -> ClusterConfig {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty,
            let port = environment["KUBERNETES_SERVICE_PORT"], !port.isEmpty
        else {
            throw ConfigError("not running in a cluster: KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set (pass --kubeconfig)")
        }
        let tokenPath = (root as NSString).appendingPathComponent("token")
        let caPath = (root as NSString).appendingPathComponent("ca.crt")
        guard FileManager.default.isReadableFile(atPath: tokenPath) else { throw ConfigError("in-cluster: cannot read \(tokenPath)") }
        let namespace = FileManager.default.contents(atPath: (root as NSString).appendingPathComponent("namespace"))
            .map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) }
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return ClusterConfig(
            server: "https://\(hostPart):\(port)",
            tls: TLSSettings(caFile: FileManager.default.fileExists(atPath: caPath) ? caPath : nil),
            credentials: Credentials(.tokenFile(tokenPath), fileRefresh: tokenRefresh),
            namespace: namespace)
    }

    /// What `portway agent` uses: an explicit kubeconfig (and context), else in-cluster when
    /// running in a pod, else `$KUBECONFIG` / ~/.kube/config.
    public static func load(kubeconfig: String?, context: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ClusterConfig {
        if kubeconfig == nil, context == nil, environment["KUBERNETES_SERVICE_HOST"] != nil {
            return try inCluster(environment: environment)
        }
        let paths = KubeConfig.defaultPaths(explicit: kubeconfig, environment: environment)
        return try KubeConfig.load(paths: paths).clusterConfig(context: context)
    }
}
