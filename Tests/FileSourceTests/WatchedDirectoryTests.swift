import Foundation
import KubeModels
import Testing
@testable import FileSource

/// Each file keeps its last good content; the problem says which file, line and field (issue 12, defect 3).
@Suite("Watched directory: per-file last good content")
struct WatchedDirectoryTests {
    static let web = """
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: demo}
        spec:
          clusterIP: 10.96.0.10
          ports:
          - port: 80

        """

    @Test("a badly typed field names file, line and field, and the file's last good content stays")
    func badField() throws {
        try withTemporaryDirectory { dir in
            var watched = WatchedDirectory(directory: dir)
            try write(Self.web, to: "web.yaml", in: dir)
            let first = watched.update(try FileSource.fingerprint(directory: dir))
            #expect(first.complete && first.problems.isEmpty && first.result.snapshot.services.count == 1)

            try write(Self.web.replacingOccurrences(of: "port: 80", with: "port: \"80\"") + "# edited\n", to: "web.yaml", in: dir)
            let bad = watched.update(try FileSource.fingerprint(directory: dir))
            #expect(bad.result.snapshot.services.first?.spec.ports?.first?.port == 80, "the last good Service")
            #expect(bad.complete)
            #expect(bad.problems == ["""
                \(dir)/web.yaml:7: Service demo/web: spec.ports[0].port: expected a number, found "80"
                \(dir)/web.yaml: 1 object(s) do not decode; keeping the file's last good content
                """])
        }
    }

    @Test("a file that never loaded contributes nothing and makes the view incomplete; a syntax error says where")
    func neverGood() throws {
        try withTemporaryDirectory { dir in
            var watched = WatchedDirectory(directory: dir)
            try write("kind: Service\nmetadata: {name: x\n", to: "broken.yaml", in: dir)
            let view = watched.update(try FileSource.fingerprint(directory: dir))
            #expect(!view.complete)
            #expect(view.result.snapshot.objectCount == 0)
            #expect(view.problems.count == 1)
            #expect(view.problems.first?.hasPrefix("YAML syntax error in \(dir)/broken.yaml:3:") == true, "\(view.problems)")
            #expect(view.problems.first?.hasSuffix("; it has no good content yet, so it contributes nothing") == true)
        }
    }

    @Test("a deleted file's objects go; a file emptied to 0 bytes keeps them")
    func deletedAndTruncated() throws {
        try withTemporaryDirectory { dir in
            var watched = WatchedDirectory(directory: dir)
            try write(Self.web, to: "web.yaml", in: dir)
            try write(Self.web.replacingOccurrences(of: "name: web", with: "name: api"), to: "api.yaml", in: dir)
            #expect(watched.update(try FileSource.fingerprint(directory: dir)).result.snapshot.services.count == 2)
            try write("", to: "api.yaml", in: dir)
            let truncated = watched.update(try FileSource.fingerprint(directory: dir))
            #expect(truncated.result.snapshot.services.map(\.metadata.name).sorted() == ["api", "web"])
            #expect(truncated.problems.first?.contains("api.yaml is empty") == true)
            try FileManager.default.removeItem(atPath: dir + "/api.yaml")
            let deleted = watched.update(try FileSource.fingerprint(directory: dir))
            #expect(deleted.result.snapshot.services.map(\.metadata.name) == ["web"])
            #expect(deleted.problems.isEmpty)
        }
    }
}

/// `FileSource.merge` and `objectCount` name each kind of `ClusterSnapshot`: a kind added to the
/// snapshot but not to them would be dropped silently. Counted here by reflection instead.
@Suite("Merging files keeps every kind")
struct MergeKeepsEveryKindTests {
    static let root = URL(fileURLWithPath: packageRoot)

    /// Objects in every array of the snapshot, found by reflection.
    static func reflectedCount(_ snapshot: ClusterSnapshot) -> Int {
        Mirror(reflecting: snapshot).children.reduce(0) { $0 + ((Mirror(reflecting: $1.value).displayStyle == .collection) ? Mirror(reflecting: $1.value).children.count : 0) }
    }

    @Test("loading a directory keeps what each file holds, of every kind", arguments: ["examples", "docs/examples/gateway-traps"])
    func everyKind(_ relative: String) throws {
        let dir = Self.root.appendingPathComponent(relative).path
        let files = try FileSource.yamlFiles(in: dir)
        let perFile = try files.map { try FileSource.load(file: $0.path) }
        let expected = perFile.reduce(0) { $0 + Self.reflectedCount($1.snapshot) }
        #expect(expected > 0)
        let merged = try FileSource.load(directory: dir)
        #expect(Self.reflectedCount(merged.snapshot) == expected)
        #expect(merged.snapshot.objectCount == expected)
        #expect(Mirror(reflecting: ClusterSnapshot()).children.count == 13, "a new kind: add it to FileSource.merge and objectCount")
    }
}
