import CPortwayBPF
import Glibc

/// The bpffs directory holding Portway's pinned maps (`--bpffs`, default /sys/fs/bpf/portway).
public enum BPFFS {
    /// The default pin directory.
    public static let defaultDirectory = "/sys/fs/bpf/portway"

    /// Whether `path` (which must exist) is on a bpffs mount.
    public static func isBPFFS(_ path: String) throws(BPFMapError) -> Bool {
        let ret = portway_is_bpffs(path)
        guard ret >= 0 else { throw .fileSystem(path: path, operation: "statfs", errno: -ret) }
        return ret == 1
    }

    /// Makes sure `directory` exists on a bpffs mount, creating it (and missing parents) when the
    /// nearest existing ancestor is on bpffs. Throws `.notBPFFS` with the mount command otherwise.
    public static func prepare(_ directory: String) throws(BPFMapError) {
        guard !directory.isEmpty else { throw .emptyPath(flag: "--bpffs") }
        let path = normalized(directory)
        var missing: [String] = []
        var current = path
        while !exists(current) {
            missing.append(current)
            let parent = parentOf(current)
            if parent == current { break }
            current = parent
        }
        guard exists(current), try isBPFFS(current) else { throw .notBPFFS(path: path) }
        for dir in missing.reversed() {
            if mkdir(dir, 0o700) != 0 && errno != EEXIST {
                throw .fileSystem(path: dir, operation: "mkdir", errno: errno)
            }
        }
    }

    /// Checks that `directory` exists and is on bpffs without creating anything (read-only commands).
    public static func check(_ directory: String) throws(BPFMapError) {
        guard !directory.isEmpty else { throw .emptyPath(flag: "--bpffs") }
        let path = normalized(directory)
        guard exists(path) else {
            let parent = parentOf(path)
            if exists(parent), try isBPFFS(parent) {
                throw .noPinDirectory(path: path)
            }
            throw .notBPFFS(path: path)
        }
        guard try isBPFFS(path) else { throw .notBPFFS(path: path) }
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    static func normalized(_ path: String) -> String {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        return p
    }

    static func parentOf(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }
}
