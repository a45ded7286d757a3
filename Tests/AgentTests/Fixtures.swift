import BPFMaps
import Foundation
import Glibc

/// A private bpffs mount for one test (see BPFMapsTests' fixture), removed by `cleanup()`.
final class AgentBPFFS {
    let mountPoint: String
    var directory: String { mountPoint + "/portway" }

    private init(mountPoint: String) { self.mountPoint = mountPoint }

    static let unavailableReason: String? = {
        guard getuid() == 0 else { return "agent pipeline tests need root (bpffs, bpf()); skipped" }
        do {
            try AgentBPFFS.make().cleanup()
            return nil
        } catch {
            return "cannot mount a bpffs for the agent tests (\(error)); skipped"
        }
    }()

    /// Whether the suites can run; the reason they cannot is printed once.
    static let available: Bool = {
        if let reason = unavailableReason { print("AgentTests: \(reason)") }
        return unavailableReason == nil
    }()

    struct Failure: Error, CustomStringConvertible { var description: String }

    static func make(prefix: String = "portway-agent-bpffs") throws -> AgentBPFFS {
        let path = try makeTempDirectory(prefix)
        guard mount("bpf", path, "bpf", 0, nil) == 0 else {
            let e = errno
            rmdir(path)
            throw Failure(description: "mount -t bpf bpf \(path): \(String(cString: strerror(e)))")
        }
        return AgentBPFFS(mountPoint: path)
    }

    func cleanup() {
        umount2(mountPoint, Int32(MNT_DETACH))
        rmdir(mountPoint)
    }

    static let smallSizes = MapSizes(services: 1024, backends: 1024, reverseNAT: 1024, affinity: 256, connectionTracking: 256, snat: 256)
}

func makeTempDirectory(_ prefix: String) throws -> String {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    guard let dir = mkdtemp(&template) else { throw AgentBPFFS.Failure(description: "mkdtemp: errno \(errno)") }
    return String(cString: dir)
}

func write(_ text: String, to path: String) throws {
    // Write then rename, as editors and ConfigMap updates do, so the poller never reads half a file.
    let tmp = path + ".tmp-\(getpid())"
    try text.write(toFile: tmp, atomically: false, encoding: .utf8)
    guard rename(tmp, path) == 0 else { throw AgentBPFFS.Failure(description: "rename \(tmp): errno \(errno)") }
}

func serviceYAML(name: String, clusterIP: String, nodePort: Int) -> String {
    """
    apiVersion: v1
    kind: Service
    metadata:
      name: \(name)
      namespace: demo
    spec:
      type: NodePort
      clusterIP: \(clusterIP)
      ports:
      - name: http
        port: 80
        targetPort: 8080
        nodePort: \(nodePort)
        protocol: TCP

    """
}

func sliceYAML(service: String, addresses: [String]) -> String {
    var text = """
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata:
      name: \(service)-abc
      namespace: demo
      labels:
        kubernetes.io/service-name: \(service)
    addressType: IPv4
    ports:
    - name: http
      port: 8080
      protocol: TCP
    endpoints:

    """
    for address in addresses {
        text += "- addresses: [\"\(address)\"]\n  conditions: {ready: true}\n  nodeName: node-a\n"
    }
    return text
}
