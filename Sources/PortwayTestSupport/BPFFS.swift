import BPFMaps
import Foundation
import Glibc

/// Pins for one test on a bpffs of its own, removed by `cleanup()`:
/// - `make()`: a private bpffs mounted on a fresh temporary directory, so parallel tests never
///   share pins (maps, writer, agent pipeline tests);
/// - `onHost(prefix:)`: a fresh directory under the host's /sys/fs/bpf, for pins that programs
///   loaded in network namespaces or other processes must find there (datapath tests).
///
/// `directory` does not exist yet: the code under test creates it (its mkdir path runs).
public final class BPFFSFixture: Sendable {
    /// The bpffs mount the pins live on.
    public let mountPoint: String
    /// The pin directory (not created yet).
    public let directory: String
    private let privateMount: Bool

    private init(mountPoint: String, directory: String, privateMount: Bool) {
        self.mountPoint = mountPoint
        self.directory = directory
        self.privateMount = privateMount
    }

    /// Where the host's bpffs is mounted.
    public static let hostMount = "/sys/fs/bpf"

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// A private bpffs on a new temporary directory `/tmp/<prefix>-XXXXXX`; pins go to `<mount>/portway`.
    public static func make(prefix: String = "portway-bpffs") throws -> BPFFSFixture {
        let path = try makeTempDirectory(prefix)
        guard mount("bpf", path, "bpf", 0, nil) == 0 else {
            let e = errno
            rmdir(path)
            throw Failure("mount -t bpf bpf \(path): \(String(cString: strerror(e)))")
        }
        return BPFFSFixture(mountPoint: path, directory: path + "/portway", privateMount: true)
    }

    /// A fresh pin directory `/sys/fs/bpf/<prefix><random hex>` on the host's bpffs (not created).
    public static func onHost(prefix: String) throws -> BPFFSFixture {
        try onHost(name: prefix + String(UInt32.random(in: 0...UInt32.max), radix: 16))
    }

    /// The pin directory `/sys/fs/bpf/<name>` on the host's bpffs (not created; the caller picks a unique name).
    public static func onHost(name: String) throws -> BPFFSFixture {
        if let missing = hostBPFFSMissing { throw Failure(missing) }
        return BPFFSFixture(mountPoint: hostMount, directory: hostMount + "/" + name, privateMount: false)
    }

    /// Removes the pins: unmounts a private bpffs, or deletes the host directory.
    public func cleanup() {
        if privateMount {
            umount2(mountPoint, Int32(MNT_DETACH))
            rmdir(mountPoint)
        } else {
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    /// Small maps: tests do not need the default sizes' memory.
    public static let smallSizes = MapSizes(services: 1024, backends: 1024, reverseNAT: 1024, affinity: 256, connectionTracking: 256, snat: 256)

    /// The map set in `directory`, created when missing.
    public func maps(_ sizes: MapSizes = BPFFSFixture.smallSizes) throws -> MapSet {
        try MapSet.openOrCreate(bpffs: directory, sizes: sizes)
    }

    /// Why private bpffs mounts cannot be made here (not root, mount refused), or nil.
    public static let unavailableReason: String? = {
        guard getuid() == 0 else { return "needs root (bpffs mount, bpf() syscalls)" }
        do {
            try make().cleanup()
            return nil
        } catch {
            return "cannot mount a bpffs (\(error))"
        }
    }()

    /// Whether tests on private bpffs mounts can run; prints once why not. For `.enabled(if:)`.
    public static let available: Bool = {
        if let reason = unavailableReason { print("skipped: tests needing a private bpffs mount: \(reason)") }
        return unavailableReason == nil
    }()

    /// Why the host's /sys/fs/bpf cannot take pins (missing, or not a bpffs), or nil.
    public static var hostBPFFSMissing: String? {
        (try? BPFFS.isBPFFS(hostMount)) == true ? nil : "no bpffs at \(hostMount) (mount -t bpf bpf \(hostMount))"
    }
}

/// Runs `body` with a fresh private bpffs mount, removed afterwards.
public func withBPFFS<T>(_ body: (BPFFSFixture) throws -> T) throws -> T {
    let fixture = try BPFFSFixture.make()
    defer { fixture.cleanup() }
    return try body(fixture)
}

/// Runs `body` with a fresh pin directory under the host's /sys/fs/bpf, removed afterwards.
public func withBPFFS<T>(onHost prefix: String, _ body: (String) throws -> T) throws -> T {
    let fixture = try BPFFSFixture.onHost(prefix: prefix)
    defer { fixture.cleanup() }
    return try body(fixture.directory)
}
