import Glibc
import Synchronization

/// The writer lock of a pin directory: an exclusive `flock` on the directory itself (bpffs holds
/// no regular files, so there can be no lock file in it), held while any `MapSet` of this process
/// that opened the directory for writing lives. A second process gets `.locked` with the holder's
/// PID (read from /proc/locks). Opens within one process share the lock (tests and restarts of the
/// writer open the same directory more than once); the flock is released when the last one goes.
final class PinDirectoryLock: Sendable {
    struct DirectoryID: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    private static let held = Mutex<[DirectoryID: (fd: Int32, holders: Int)]>([:])

    let id: DirectoryID

    private init(id: DirectoryID) { self.id = id }

    deinit {
        Self.held.withLock { held in
            guard var entry = held[id] else { return }
            entry.holders -= 1
            if entry.holders == 0 {
                close(entry.fd)  // releases the flock
                held[id] = nil
            } else {
                held[id] = entry
            }
        }
    }

    /// Takes (or shares, within this process) the writer lock of `directory`.
    static func acquire(directory: String) throws(BPFMapError) -> PinDirectoryLock {
        var st = stat()
        guard stat(directory, &st) == 0 else { throw .fileSystem(path: directory, operation: "stat", errno: errno) }
        let id = DirectoryID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        let result: Result<Void, BPFMapError> = held.withLock { held in
            if var entry = held[id] {
                entry.holders += 1
                held[id] = entry
                return .success(())
            }
            let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { return .failure(.fileSystem(path: directory, operation: "open", errno: errno)) }
            if flock(fd, LOCK_EX | LOCK_NB) != 0 {
                let code = errno
                close(fd)
                if code == EWOULDBLOCK {
                    return .failure(.locked(directory: directory, holderPID: holderPID(of: id)))
                }
                return .failure(.fileSystem(path: directory, operation: "flock", errno: code))
            }
            held[id] = (fd, 1)
            return .success(())
        }
        try result.get()
        return PinDirectoryLock(id: id)
    }

    /// The PID holding an flock on the directory, from /proc/locks ("1: FLOCK ADVISORY WRITE 4242 00:27:32992 0 EOF").
    static func holderPID(of id: DirectoryID) -> Int32? {
        guard let file = fopen("/proc/locks", "r") else { return nil }
        defer { fclose(file) }
        let dev = id.device
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~UInt64(0xfff))
        let minor = (dev & 0xff) | ((dev >> 12) & ~UInt64(0xff))
        let wanted = "\(hex2(major)):\(hex2(minor)):\(id.inode)"
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0, let line {
            let fields = String(cString: line).split(separator: " ", omittingEmptySubsequences: true)
            // Waiters are listed with "->" after the number; only the holder counts.
            guard fields.count >= 6, fields[1] == "FLOCK", fields[5] == wanted else { continue }
            return Int32(fields[4])
        }
        return nil
    }

    private static func hex2(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return s.count < 2 ? "0" + s : s
    }
}
