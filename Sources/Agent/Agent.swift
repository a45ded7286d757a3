import BPFMaps
import KubeAPI
import Runtime

/// Portway's version (`portway --version`, `portway version`; the User-Agent uses the same).
public let portwayRelease = portwayVersion

/// Versions of the C libraries this build links, for `portway version`.
public func linkedLibraryVersions() -> [String: String] {
    ["libcurl": curlVersion(), "libbpf": libbpfVersion()]
}
