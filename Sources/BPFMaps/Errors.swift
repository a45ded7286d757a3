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
    /// Another process holds the pin directory's writer lock (another agent on the same --bpffs).
    case locked(directory: String, holderPID: Int32?)
    /// Something other than a map is pinned (or lies) where a map should be.
    case notAPinnedMap(path: String, found: String)
    /// A path flag was given as "".
    case emptyPath(flag: String)
    /// The call was interrupted (`isCancelled`) before this frontend's turn.
    case interrupted
    /// The desired entries need more room than the map has (known before writing).
    case doesNotFit(map: String, needed: Int, maxEntries: UInt32, sizeFlag: String)

    /// The error without what changes from one attempt to the next while the cause stays (how many
    /// entries a map too small needs): failures with one cause compare equal, for grouping and for
    /// rate-limiting their log lines.
    public var cause: BPFMapError {
        if case .doesNotFit(let map, _, let maxEntries, let sizeFlag) = self {
            return .doesNotFit(map: map, needed: 0, maxEntries: maxEntries, sizeFlag: sizeFlag)
        }
        return self
    }

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
        case .locked(let directory, let pid):
            let holder = pid.map { "process \($0)" } ?? "another process"
            return "\(directory) is locked by \(holder): another Portway agent writes these pinned maps, and two writers "
                + "would corrupt them; stop it, or give this agent another --bpffs"
        case .notAPinnedMap(let path, let found):
            if found == "a directory" { return "\(path) is a directory, not a pinned map: remove it (`rmdir \(path)`) so the map can be pinned there" }
            return "\(found), not a map, is pinned at \(path): remove the pin (`rm \(path)`) or use another --bpffs"
        case .emptyPath(let flag):
            return "\(flag) is empty: give a directory on a bpffs mount (default \(BPFFS.defaultDirectory))"
        case .interrupted:
            return "not programmed yet: the sync was interrupted"
        case .doesNotFit(let map, let needed, let maxEntries, let sizeFlag):
            return "\(map) needs \(grouped(needed)) entries, has \(grouped(Int(maxEntries))): raise \(sizeFlag)"
        }
    }
}

func errnoText(_ code: Int32) -> String {
    "\(String(cString: strerror(code))) (errno \(code))"
}

/// 110002 -> "110,002".
func grouped(_ n: Int) -> String {
    let digits = String(n.magnitude)
    var out = ""
    for (i, c) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return (n < 0 ? "-" : "") + out
}
