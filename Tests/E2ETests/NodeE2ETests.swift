import Foundation
import Testing

/// Portway as a user runs it, on a real kubelet node: `scripts/e2e-node.sh` (see its header) with
/// the image `make image` built. `make test` and `make e2e-node` build the image and run this
/// suite on its own (after the others: the node's traffic loops must not share the machine with
/// them). It skips, saying why, without root, ../shared/kube/node or the image
/// (`PORTWAY_NODE_IMAGE_TAR` and `PORTWAY_NODE_IMAGE`, set by the Makefile).
@Suite(.serialized) struct NodeE2ETests {
    @Test("the image and manifests/ on a real node with kube-proxy off: traffic, zero failures through upgrade, pod delete and SIGKILL, clean uninstall")
    func realNode() throws {
        let environment = ProcessInfo.processInfo.environment
        guard geteuid() == 0 else {
            print("⚠️ NodeE2ETests skipped: not root (the node needs root)")
            return
        }
        let node = sharedDirectory + "/kube/node/up.sh"
        guard FileManager.default.isExecutableFile(atPath: node) else {
            print("⚠️ NodeE2ETests skipped: \(node) not found")
            return
        }
        guard let tar = environment["PORTWAY_NODE_IMAGE_TAR"], let ref = environment["PORTWAY_NODE_IMAGE"] else {
            print("⚠️ NodeE2ETests skipped: PORTWAY_NODE_IMAGE_TAR/PORTWAY_NODE_IMAGE not set (run `make e2e-node`, or `make test`, which build the image)")
            return
        }
        let script = packageRoot + "/scripts/e2e-node.sh"
        let started = ContinuousClock.now
        let output: String
        do {
            output = try run([script, tar, ref])
        } catch let error as CommandError {
            Issue.record("e2e-node.sh failed (exit \(error.status)):\n\(error.output.suffix(6000))")
            return
        }
        print(output)
        #expect(output.contains("E2E-NODE PASSED") || output.contains("e2e-node: skipped"), "\(output.suffix(2000))")
        print("NodeE2ETests: \(ContinuousClock.now - started)")
    }
}
