import BPFMaps
import KubeAPI

/// Versions of the C libraries this build links, for `portway version`.
public func linkedLibraryVersions() -> [String: String] {
    ["libcurl": curlVersion(), "libbpf": libbpfVersion()]
}
