import ArgumentParser
import BPFMaps
import Datapath
import Foundation

/// `portway probe`: asks the agent of this pod for /healthz or /readyz over its Unix socket (the
/// DaemonSet's exec probes), exiting 0 on 200 and 1 otherwise with the agent's reasons.
struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask the running agent for its health or readiness (exit 0: healthy/ready), over --health-socket.")

    enum Check: String, ExpressibleByArgument, CaseIterable {
        case healthz, readyz
    }

    @Argument(help: "healthz or readyz.")
    var check: Check

    @Option(help: ArgumentHelp("The agent's --health-socket.", valueName: "PATH"))
    var socket: String = "/run/portway/agent.sock"

    @Option(help: ArgumentHelp("Seconds to wait for the answer.", valueName: "SECONDS"))
    var timeout: Int = 5

    func run() throws {
        let (status, body) = try Self.get("/\(check.rawValue)", socket: socket, timeout: timeout)
        print(body.trimmingCharacters(in: .whitespacesAndNewlines))
        if status != 200 { throw ExitCode.failure }
    }

    /// GET `path` over the Unix socket (HTTP/1.0, the connection closes after the answer).
    static func get(_ path: String, socket path0: String, timeout: Int) throws -> (Int, String) {
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ValidationError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path0.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw ValidationError("--socket path too long") }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in raw.copyBytes(from: bytes) }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw ValidationError("cannot reach the agent at \(path0): \(String(cString: strerror(errno)))") }
        let request = Array("GET \(path) HTTP/1.0\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == request.count else {
            throw ValidationError("cannot write to \(path0): \(String(cString: strerror(errno)))")
        }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { throw ValidationError("no answer from \(path0): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            response += chunk.prefix(n)
        }
        let text = String(decoding: response, as: UTF8.self)
        let statusLine = text.prefix { $0 != "\r" && $0 != "\n" }
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { throw ValidationError("not an HTTP answer from \(path0)") }
        let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
        return (status, body)
    }
}

/// `portway cleanup`: uninstall from a node.
struct Cleanup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove Portway from this node: detach every program, remove the pinned links and maps under --bpffs and the L7 proxy's policy route.",
        discussion: """
        For uninstalling only: Services are no longer served afterwards. Stop the agent first (delete the \
        DaemonSet); an agent still running would attach again. docs/OPERATING.md, "Uninstall", runs it on \
        every node with deploy/uninstall.yaml. Runs in the caller's network namespace (the node's: hostNetwork).
        """)

    @Option(help: ArgumentHelp("The bpffs directory of the pinned maps and links.", valueName: "DIR"))
    var bpffs: String = BPFFS.defaultDirectory

    func run() throws {
        do {
            let report = try Datapath.cleanup(bpffs: bpffs)
            print("links detached: \(report.links.isEmpty ? "none" : report.links.joined(separator: ", "))")
            if !report.clsactFilters.isEmpty { print("clsact filters removed: \(report.clsactFilters.joined(separator: ", "))") }
            print("policy route (fwmark 0xb00/0xf00 lookup 2005): \(report.policyRoute ? "removed" : "none")")
            print("pins removed from \(bpffs): \(report.pins.isEmpty ? "none" : report.pins.joined(separator: ", "))")
        } catch let error as DatapathError {
            FileHandle.standardError.write(Data("portway: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}
