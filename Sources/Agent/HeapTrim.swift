import Foundation

#if canImport(Glibc)
/// glibc's `int malloc_trim(size_t pad)` (malloc.h, which the Glibc module does not export).
@_silgen_name("malloc_trim")
private func glibcMallocTrim(_ pad: Int) -> CInt

/// glibc's `int mallopt(int param, int value)` (malloc.h).
@_silgen_name("mallopt")
private func glibcMallopt(_ param: CInt, _ value: CInt) -> CInt

/// `M_MMAP_THRESHOLD` in malloc.h.
private let glibcMmapThreshold: CInt = -3
#endif

/// Returns the heap pages glibc keeps after a full sync to the kernel. A full sync (the first one,
/// a resync) builds large temporaries — the lowered desired state, batch buffers — that are freed
/// afterwards, but glibc keeps their pages: the process stayed at about twice its live memory
/// (docs/BENCHMARKS.md). Blocking (it walks the heap): call it off the cooperative pool.
public enum HeapTrim {
    /// Resident set sizes around one trim, in bytes (nil where /proc is not readable).
    struct Outcome: Sendable, CustomStringConvertible {
        var before: Int?
        var after: Int?
        /// Whether glibc gave any memory back (`malloc_trim` returned 1).
        var released = false

        var description: String {
            func mb(_ bytes: Int?) -> String { bytes.map { String(format: "%.1f MB", Double($0) / 1_048_576) } ?? "?" }
            return "heap trimmed: RSS \(mb(before)) → \(mb(after))"
        }
    }

    /// The allocation size from which glibc serves each block with its own mmap, returned to the
    /// kernel when freed.
    public static let mmapThreshold = 128 * 1024

    /// Sets the agent's allocator policy, once at start: blocks of `mmapThreshold` and more (list
    /// pages of the API server as they arrive, their JSON while decoding, batch buffers) get their
    /// own mapping, returned to the kernel when freed. glibc's default raises this threshold to
    /// the largest such block freed so far (up to 32 MB), after which those temporaries are carved
    /// from the heap, between long-lived objects, and the holes they leave stay resident
    /// (docs/BENCHMARKS.md, "Agent memory on a real API server"). An operator's
    /// `MALLOC_MMAP_THRESHOLD_` in the environment is left in force.
    public static func configureAllocator() {
        #if canImport(Glibc)
        guard ProcessInfo.processInfo.environment["MALLOC_MMAP_THRESHOLD_"] == nil else { return }
        _ = glibcMallopt(glibcMmapThreshold, CInt(mmapThreshold))
        #endif
    }

    /// Trims the heap (glibc's `malloc_trim(0)`; nothing elsewhere) and reports the RSS around it.
    static func releaseFreePages() -> Outcome {
        let before = residentBytes()
        var released = false
        #if canImport(Glibc)
        released = glibcMallocTrim(0) == 1
        #endif
        return Outcome(before: before, after: residentBytes(), released: released)
    }

    /// The process's resident set size (VmRSS in /proc/self/status).
    static func residentBytes() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
        else { return nil }
        return kilobytes * 1024
    }
}
