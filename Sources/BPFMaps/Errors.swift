import Glibc

/// Errors of the pinned maps, worded for the operator: what failed, on which map, and what to do.
public enum BPFMapError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The directory (or its parent) is not on a bpffs mount.
    case notBPFFS(path: String)
    /// A file-system call on the bpffs directory failed.
    case fileSystem(path: String, operation: String, errno: Int32)
    /// A pinned map exists but its layout or size differs from what this build wants.
    case mismatch(map: String, path: String, differences: [String], sizeFlag: String?)
    /// A map is not pinned (for commands that only read).
    case notPinned(map: String, path: String)
    /// The pin directory does not exist (for commands that only read).
    case noPinDirectory(path: String)
    /// The map refused a new entry because it holds max_entries already.
    case mapFull(map: String, maxEntries: UInt32, sizeFlag: String)
    /// Any other failed bpf() call.
    case syscall(map: String, operation: String, errno: Int32)
    /// No free ID left (reverse-NAT IDs are 1...65535).
    case idsExhausted(what: String, limit: Int)
    /// The datapath handles IPv4 only.
    case unsupportedAddress(String)

    public var description: String {
        switch self {
        case .notBPFFS(let path):
            return "\(path) is not on a BPF file system (bpffs). Mount it first: `mount -t bpf bpf /sys/fs/bpf` "
                + "(or pass --bpffs with a directory on a bpffs mount)"
        case .fileSystem(let path, let operation, let errno):
            return "\(operation) \(path): \(errnoText(errno))"
        case .mismatch(let map, let path, let differences, let sizeFlag):
            let how: String
            if let sizeFlag {
                let loss = ["pw_ct4", "pw_snat4", "pw_lb4_affinity"].contains(map)
                    ? "the flows it tracks are forgotten" : "the agent rewrites it from the cluster state"
                how = "pass \(sizeFlag) with the pinned size to keep it, or delete the pin (`rm \(path)`) and restart to recreate it"
                    + " (\(loss))"
            } else {
                how = "it was created by an incompatible build: delete the pin (`rm \(path)`) and restart to recreate it"
            }
            return "pinned map \(map) (\(path)) does not match: \(differences.joined(separator: ", ")); \(how)"
        case .notPinned(let map, let path):
            return "map \(map) is not pinned at \(path): is the agent running with this --bpffs directory?"
        case .noPinDirectory(let path):
            return "no pinned maps: \(path) does not exist; is the agent running with this --bpffs directory?"
        case .mapFull(let map, let maxEntries, let sizeFlag):
            return "\(map) is full (\(maxEntries) entries, \(sizeFlag))"
        case .syscall(let map, let operation, let errno):
            return "\(operation) on \(map): \(errnoText(errno))"
        case .idsExhausted(let what, let limit):
            return "no free \(what) left (all \(limit) in use)"
        case .unsupportedAddress(let what):
            return "\(what): only IPv4 is supported by the datapath"
        }
    }
}

func errnoText(_ code: Int32) -> String {
    "\(String(cString: strerror(code))) (errno \(code))"
}
