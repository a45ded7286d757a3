import BPFMaps
import KubeAPI
import LoadBalancer
import Runtime
import Testing
@testable import Agent

/// After a full sync the agent hands the heap pages glibc kept back to the kernel.
@Suite struct HeapTrimTests {
    @Test func trimReturnsFreedHeapPages() throws {
        // 256 MB in small blocks (below glibc's mmap threshold, so they live in the heap), touched,
        // then freed. A small block kept after every 64 means the freed runs (256 KB each) are not at
        // the top of the heap, which free() itself would return: only the trim gives them back.
        var blocks: [[UInt8]] = []
        var kept: [[UInt8]] = []
        for index in 0..<65_536 {
            blocks.append([UInt8](repeating: 1, count: 4_000))
            if index % 64 == 63 { kept.append([2]) }
        }
        blocks = []
        // The kept blocks stay alive through the trim (else the freed runs could be at the top of
        // the heap, which free() itself returns).
        let outcome = withExtendedLifetime(kept) { HeapTrim.releaseFreePages() }
        // glibc says whether it gave pages back; without the trim nothing would. The RSS figures are
        // only reported: other suites allocate and free in this process at the same time.
        #expect(outcome.released, "\(outcome)")
        #expect(outcome.before != nil && outcome.after != nil)
        #expect(outcome.description.hasPrefix("heap trimmed: RSS "))
    }

    @Test(.enabled(if: BPFFSFixture.available, "needs root and a bpffs mount (reason printed)"))
    func syncAndRepairReportTheTrim() async throws {
        let fs = try BPFFSFixture.make()
        defer { fs.cleanup() }
        let writer = try MapWriter(maps: try MapSet.openOrCreate(bpffs: fs.mountPoint + "/trim", sizes: BPFFSFixture.smallSizes))
        let output = MapWriterOutput(writer: writer, executor: BlockingExecutor(label: "test.trim"))
        let synced = try await output.sync(DesiredL4State(entries: []))
        #expect(synced.debug.count == 1)
        #expect(synced.debug.first?.hasPrefix("after the sync, heap trimmed: RSS ") == true, "\(synced.debug)")
        let repaired = try await output.repair(DesiredL4State(entries: []))
        #expect(repaired.debug.first?.hasPrefix("after the repair, heap trimmed: RSS ") == true, "\(repaired.debug)")
        // Incremental changes are small: no trim.
        #expect(try await output.apply([:]).debug.isEmpty)
    }
}
