import Datapath
import Foundation
import Testing

private let clangAvailable: Bool = {
    guard LabPrerequisites.ready else { return false }
    if !haveCommand("clang") {
        print("⚠️ VerifierLogTests skipped: clang not found")
        return false
    }
    return true
}()

/// A program the verifier rejects must surface as a clear error carrying the verifier's verdict.
@Suite(.enabled(if: clangAvailable, "needs root, bpffs and clang"))
struct VerifierLogTests {
    @Test("a rejected program reports the verifier log")
    func rejectedProgram() async throws {
        let dir = NSTemporaryDirectory() + "pw-verifier-\(UInt32.random(in: 0...UInt32.max))"
        let pins = try BPFFSFixture.onHost(prefix: "pw-verifier-")
        let bpffs = pins.directory
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer {
            try? FileManager.default.removeItem(atPath: dir)
            pins.cleanup()
        }
        // Reads packet data without a bounds check: "invalid access to packet".
        try """
            #include <linux/bpf.h>
            #include <bpf/bpf_helpers.h>
            SEC("tc") int pw_ingress(struct __sk_buff *skb) { return *(int *)(long)skb->data; }
            SEC("tc") int pw_egress(struct __sk_buff *skb) { return 0; }
            char LICENSE[] SEC("license") = "GPL";
            """.write(toFile: dir + "/bad.c", atomically: true, encoding: .utf8)
        let arch = try await onDedicatedThread { try run(["uname", "-m"]).trimmed }
        _ = try await onDedicatedThread {
            try run(["clang", "-O2", "-g", "-target", "bpf", "-I", "/usr/include/\(arch)-linux-gnu",
                     "-c", dir + "/bad.c", "-o", dir + "/bad.o"])
        }
        let result: Result<Void, DatapathError> = try await onDedicatedThread {
            do {
                try Datapath.install(DatapathOptions(devices: [], bpffs: bpffs, objectPath: dir + "/bad.o"))
                return .success(())
            } catch let error as DatapathError { return .failure(error) }
        }
        guard case .failure(let error) = result, case .loadFailed(_, _, let log) = error else {
            Issue.record("expected loadFailed, got \(result)")
            return
        }
        #expect(log.contains("invalid access to packet"), "\(log)")
        #expect(error.description.contains("verifier log"))
    }
}
