import BPFMaps
import Glibc
import LoadBalancer

/// A private bpffs mount on a fresh temporary directory, unmounted and removed by `cleanup()`.
/// Each test mounts its own, so parallel tests never share pins.
final class BPFFSFixture {
    let mountPoint: String
    /// A not-yet-existing directory inside the mount (exercises the mkdir path).
    var directory: String { mountPoint + "/portway" }

    private init(mountPoint: String) { self.mountPoint = mountPoint }

    /// Why bpffs tests cannot run here, or nil when they can (root, and bpffs mounts work).
    static let unavailableReason: String? = {
        guard getuid() == 0 else { return "BPF map tests need root (bpffs mount, bpf() syscalls); skipped" }
        do {
            let probe = try BPFFSFixture.make()
            probe.cleanup()
            return nil
        } catch {
            return "cannot mount a bpffs for the BPF map tests (\(error)); skipped"
        }
    }()

    /// Whether the suites can run; the reason they cannot is printed once.
    static let available: Bool = {
        if let reason = unavailableReason {
            print("BPFMapsTests: \(reason)")
            return false
        }
        return true
    }()

    struct MountError: Error, CustomStringConvertible {
        var description: String
    }

    static func make() throws -> BPFFSFixture {
        var template = Array("/tmp/portway-bpffs-XXXXXX".utf8CString)
        guard let dir = mkdtemp(&template) else { throw MountError(description: "mkdtemp: errno \(errno)") }
        let path = String(cString: dir)
        guard mount("bpf", path, "bpf", 0, nil) == 0 else {
            let e = errno
            rmdir(path)
            throw MountError(description: "mount -t bpf bpf \(path): \(String(cString: strerror(e)))")
        }
        return BPFFSFixture(mountPoint: path)
    }

    func cleanup() {
        umount2(mountPoint, Int32(MNT_DETACH))
        rmdir(mountPoint)
    }

    /// Small maps: tests do not need the default sizes' memory.
    static let smallSizes = MapSizes(services: 1024, backends: 1024, reverseNAT: 1024, affinity: 256, connectionTracking: 256, snat: 256)

    func maps(_ sizes: MapSizes = BPFFSFixture.smallSizes) throws -> MapSet {
        try MapSet.openOrCreate(bpffs: directory, sizes: sizes)
    }
}

/// Runs `body` with a fresh bpffs mount, cleaning up afterwards.
func withBPFFS<T>(_ body: (BPFFSFixture) throws -> T) throws -> T {
    let fixture = try BPFFSFixture.make()
    defer { fixture.cleanup() }
    return try body(fixture)
}
