import CCurlShim
import Runtime

/// The libcurl version string this binary runs with.
public func curlVersion() -> String { String(cString: curl_version()) }

/// KubeAPI's blocking work (token files, exec credential plugins): its own executor, so a slow
/// plugin never delays a map write on the agent's.
let credentialExecutor = BlockingExecutor(label: "portway.kubeapi.blocking")
