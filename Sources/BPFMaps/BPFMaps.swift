import CPortwayBPF

/// libbpf's version as linked into this binary ("1.1").
public func libbpfVersion() -> String {
    let v = portway_libbpf_version()
    return "\(v / 1000).\(v % 1000)"
}
