import BPFMaps
import Foundation
import LoadBalancer
import Testing
import Views

/// Golden files: expected outputs kept as data files under `Tests/<Target>/Golden/` (as Cilium's
/// testdata), compared byte for byte. `PORTWAY_UPDATE_GOLDEN=1` writes the actual output instead
/// (the test then passes and says so); review the diff with `git diff Tests/*/Golden`.
public enum Golden {
    /// The environment variable that rewrites golden files instead of comparing.
    public static let updateKey = "PORTWAY_UPDATE_GOLDEN"

    /// Whether this run rewrites golden files.
    public static var updating: Bool {
        let value = ProcessInfo.processInfo.environment[updateKey] ?? ""
        return !value.isEmpty && value != "0"
    }

    /// `Tests/<Target>/Golden/<name>` for the test file `file` (any depth inside the target).
    public static func path(_ name: String, file: String = #filePath) -> String {
        var url = URL(fileURLWithPath: file).deletingLastPathComponent()
        while url.deletingLastPathComponent().lastPathComponent != "Tests", url.path != "/" { url.deleteLastPathComponent() }
        return url.appendingPathComponent("Golden").appendingPathComponent(name).path
    }

    /// Compares `actual` with the golden file `name`; records an issue showing the first difference.
    /// With `PORTWAY_UPDATE_GOLDEN=1`, writes `actual` to the file instead.
    public static func check(_ actual: String, _ name: String, file: String = #filePath, sourceLocation: SourceLocation = #_sourceLocation) {
        let path = path(name, file: file)
        if updating {
            do {
                try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                if (try? String(contentsOfFile: path, encoding: .utf8)) != actual {
                    try actual.write(toFile: path, atomically: true, encoding: .utf8)
                    print("golden file updated: \(path)")
                }
            } catch {
                Issue.record("cannot write the golden file \(path): \(error)", sourceLocation: sourceLocation)
            }
            return
        }
        guard let expected = try? String(contentsOfFile: path, encoding: .utf8) else {
            Issue.record("golden file \(path) is missing (create it with \(updateKey)=1)", sourceLocation: sourceLocation)
            return
        }
        expect(actual, equals: expected, "differs from the golden file \(path) (\(updateKey)=1 rewrites it)", sourceLocation: sourceLocation)
    }

    /// Records an issue showing the first differing line when `actual` is not `expected`.
    public static func expect(_ actual: String, equals expected: String, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard actual != expected else { return }
        Issue.record("\(what):\n\(firstDifference(expected, actual))", sourceLocation: sourceLocation)
    }

    /// The first differing line with a little context, `-` expected and `+` actual.
    static func firstDifference(_ expected: String, _ actual: String) -> String {
        let e = expected.split(separator: "\n", omittingEmptySubsequences: false)
        let a = actual.split(separator: "\n", omittingEmptySubsequences: false)
        let index = zip(e, a).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(e.count, a.count)
        let context = e[max(0, index - 3)..<index].map { "  \($0)" }
        let minus = e[index..<min(e.count, index + 3)].map { "- \($0)" }
        let plus = a[index..<min(a.count, index + 3)].map { "+ \($0)" }
        return "line \(index + 1) (expected \(e.count) lines, got \(a.count)):\n" + (context + minus + plus).joined(separator: "\n")
    }
}

/// `portway bpf lb list -o json` of the maps a fresh writer makes for `state`, written into
/// in-memory maps (no root needed): the same document the command prints from the pins.
public func mapDump(_ state: DesiredL4State, sizes: MapSizes = MapSizes([.services: 4096, .backends: 4096, .reverseNAT: 4096])) throws -> String {
    let maps = LoadBalancerMaps.inMemory(sizes: sizes)
    let summary = try MapWriter(maps: maps).sync(state)
    guard summary.failures.isEmpty else { throw TestFileError("the writer failed: \(summary.failures)") }
    return mapDump(try ProgrammedState.read(from: maps))
}

/// `portway bpf lb list -o json` of a state read back from maps.
public func mapDump(_ programmed: ProgrammedState) -> String {
    JSONValue.object(LBListing(programmed).json).rendered() + "\n"
}
