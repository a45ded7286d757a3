import Foundation

/// Why the datapath could not be loaded, attached or detached. Every case says what to do.
public enum DatapathError: Error, Equatable, CustomStringConvertible {
    /// Loading programs and attaching them needs root (CAP_BPF + CAP_NET_ADMIN).
    case notRoot
    /// The bpffs directory is not on a mounted BPF filesystem.
    case bpffsNotMounted(String)
    /// No compiled BPF object was found; `searched` lists the file looked for (empty: the binary
    /// embeds none and no file was given).
    case objectNotFound(searched: [String])
    /// libbpf could not open or parse the object file.
    case objectOpenFailed(path: String, errno: Int32, log: String)
    /// A pinned map exists but its layout differs from what the program expects.
    case pinnedMapMismatch(map: String, path: String, detail: String)
    /// The kernel rejected a program (or a map); `log` holds the tail of the verifier log.
    case loadFailed(path: String, errno: Int32, log: String)
    /// A program the object must contain is missing.
    case programMissing(String)
    /// The network device does not exist in this network namespace.
    case deviceNotFound(String)
    /// Attaching a program to its target (a device hook or a cgroup hook) failed.
    case attachFailed(target: String, errno: Int32, detail: String)
    /// The cgroup v2 directory for socket-level load balancing does not exist or is not cgroup v2.
    case cgroupNotFound(String, errno: Int32)
    /// A filesystem operation on the bpffs failed.
    case io(path: String, errno: Int32, what: String)

    public var description: String {
        switch self {
        case .notRoot:
            return "loading the eBPF datapath needs root (CAP_BPF and CAP_NET_ADMIN); run as root"
        case .bpffsNotMounted(let dir):
            return "\(dir) is not on a BPF filesystem; mount one with `mount -t bpf bpf /sys/fs/bpf` or pass --bpffs DIR"
        case .objectNotFound(let searched) where searched.isEmpty:
            return "this portway binary embeds no datapath object (built with a plain `swift build` before `make bpf`): "
                + "build it with `make build`, or pass --bpf-object PATH or set PORTWAY_BPF_DIR"
        case .objectNotFound(let searched):
            return "BPF object portway_lb.o not found (looked in: \(searched.joined(separator: ", "))); run `make bpf` or pass its path"
        case .objectOpenFailed(let path, let errno, let log):
            return "cannot open BPF object \(path): \(errnoText(errno))\(logSuffix(log))"
        case .pinnedMapMismatch(let map, let path, let detail):
            return "pinned map \(map) at \(path) does not match this datapath (\(detail)); "
                + "remove it (rm \(path)) to recreate it, or run the matching Portway version"
        case .loadFailed(let path, let errno, let log):
            return "the kernel rejected \(path): \(errnoText(errno))\(logSuffix(log))"
        case .programMissing(let name):
            return "BPF object has no program named \(name); rebuild it with `make bpf`"
        case .deviceNotFound(let dev):
            return "network device \(dev) not found; check --device (`ip link` lists devices)"
        case .attachFailed(let target, let errno, let detail):
            return "cannot attach to \(target): \(errnoText(errno))\(detail.isEmpty ? "" : " (\(detail))")"
        case .cgroupNotFound(let path, let errno):
            return "\(path) is not a cgroup v2 directory (\(errnoText(errno))); check --cgroup-path "
                + "(`grep cgroup2 /proc/mounts` shows the cgroup v2 root) or leave out --socket-lb"
        case .io(let path, let errno, let what):
            return "\(what) \(path): \(errnoText(errno))"
        }
    }
}

func errnoText(_ code: Int32) -> String {
    "\(String(cString: strerror(code))) (errno \(code))"
}

private func logSuffix(_ log: String) -> String {
    let trimmed = log.trimmingCharacters(in: .whitespacesAndNewlines)
    guard !trimmed.isEmpty else { return "" }
    // The verdict is at the end of the verifier log: keep the last lines.
    let lines = trimmed.split(separator: "\n", omittingEmptySubsequences: false)
    let tail = lines.suffix(30).joined(separator: "\n")
    return "\nlibbpf/verifier log (last \(min(30, lines.count)) lines):\n\(tail)"
}
