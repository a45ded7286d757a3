import Foundation
import KubeModels
import Testing
@testable import FileSource
import Views

/// Defect 4 of issue 12: YAML nested thousands of levels deep overflowed the parser's stack. The
/// limits are checked on the text before parsing; over one is an error for that file, never a crash.
@Suite("YAML limits, checked before parsing")
struct InputLimitsTests {
    static let deepFlow = String(repeating: "[", count: 5_000) + String(repeating: "]", count: 5_000) + "\n"
    static let deepBlock = (0..<5_000).map { String(repeating: " ", count: $0) + "k:" }.joined(separator: "\n") + " v\n"
    static let deepCompact = String(repeating: "- ", count: 5_000) + "x\n"
    static let deepFlowMappings = "a: " + String(repeating: "{a: ", count: 5_000) + "b" + String(repeating: "}", count: 5_000) + "\n"

    func limitError(_ yaml: String, limits: YAMLLimits = .default) -> FileSourceError? {
        do {
            _ = try FileSource.load(yaml: yaml, file: "deep.yaml", limits: limits)
            return nil
        } catch {
            return error
        }
    }

    @Test("5,000 levels of flow, block, compact and flow-mapping nesting are refused with the file and line",
          arguments: [deepFlow, deepBlock, deepCompact, deepFlowMappings])
    func deepNesting(_ yaml: String) throws {
        let error = try #require(limitError(yaml))
        guard case .limit(let file, let line, let problem) = error else {
            Issue.record("expected a limit error, got \(error)")
            return
        }
        #expect(file == "deep.yaml")
        #expect(line != nil)
        #expect(problem == "nested more than 100 levels deep (the limit)")
        #expect(error.description.hasPrefix("deep.yaml:"))
    }

    @Test("lines broken by CR, NEL, LS or PS (libyaml breaks lines there too) are counted", arguments: ["\r", "\u{85}", "\u{2028}", "\u{2029}", "\r\n"])
    func otherLineBreaks(_ lineBreak: String) throws {
        let yaml = (0..<300).map { String(repeating: " ", count: $0) + "k:" }.joined(separator: lineBreak) + " v" + lineBreak
        guard case .limit? = limitError(yaml) else {
            Issue.record("not refused")
            return
        }
    }

    @Test("nesting hidden behind a block scalar's indentation is still counted")
    func nestingAfterBlockScalar() throws {
        var yaml = "- a: |\n    text\n  b:\n"
        for depth in 0..<300 { yaml += String(repeating: " ", count: depth + 3) + "c:\n" }
        yaml += String(repeating: " ", count: 303) + "d\n"
        guard case .limit? = limitError(yaml) else {
            Issue.record("not refused")
            return
        }
    }

    @Test("brackets and quotes inside scalars, comments and block scalars do not count")
    func scalarsDoNotNest() throws {
        let brackets = String(repeating: "[{", count: 300)
        let yaml = """
            apiVersion: v1
            kind: Service
            metadata:
              name: web
              namespace: demo
              annotations:
                plain: a\(brackets)
                single: '\(brackets) it''s'
                double: "\(brackets) \\" ["
                block: |
                  \(brackets)
                    - - - - - \(brackets)

                folded: >-
                  \(brackets)
            # \(brackets)
            spec:
              clusterIP: 10.96.0.10
              ports:
              - {port: 80, targetPort: 8080}  # [[[[
            """
        let result = try FileSource.load(yaml: yaml, file: "ok.yaml")
        #expect(result.snapshot.services.map(\.metadata.name) == ["web"])
        #expect(result.warnings.isEmpty)
    }

    @Test("the estimate is within one of the real depth: below the limit passes, above it is refused")
    func limitIsClose() throws {
        let limits = YAMLLimits(maxDepth: 10)
        func nested(_ n: Int) -> String { String(repeating: "[", count: n) + String(repeating: "]", count: n) + "\n" }
        #expect(limitError(nested(9), limits: limits) == nil)
        #expect(limitError(nested(11), limits: limits) != nil)
        func block(_ n: Int) -> String { (0..<n).map { String(repeating: "  ", count: $0) + "k:" }.joined(separator: "\n") + " v\n" }
        #expect(limitError(block(10), limits: limits) == nil)
        #expect(limitError(block(11), limits: limits) != nil)
    }

    @Test("file size, document count and node count limits")
    func sizeLimits() throws {
        guard case .limit(_, nil, let problem)? = limitError(String(repeating: "#\n", count: 600), limits: YAMLLimits(maxFileBytes: 1_000)) else {
            Issue.record("size not refused")
            return
        }
        #expect(problem == "file is 1200 bytes, more than the limit of 1000")
        guard case .limit(_, 4?, _)? = limitError("a: 1\n---\nb: 2\n---\nc: 3\n", limits: YAMLLimits(maxDocuments: 2)) else {
            Issue.record("documents not refused at line 4")
            return
        }
        #expect(limitError("a: [1, 2, 3, 4, 5]\n", limits: YAMLLimits(maxNodes: 3)) != nil)
        #expect(limitError("a: [1, 2]\n", limits: YAMLLimits(maxNodes: 3)) == nil)
    }

    @Test("translate over a directory with a too-deep file warns about that file and translates the rest")
    func translateSkipsDeepFile() throws {
        try withTemporaryDirectory { dir in
            try write(Self.deepFlow, to: "a-deep.yaml", in: dir)
            try write("""
                apiVersion: v1
                kind: Service
                metadata: {name: web, namespace: demo}
                spec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}
                """, to: "web.yaml", in: dir)
            let output = try Command.translate(TranslateRequest(directory: dir, nodeName: "node-a", format: .table))
            #expect(output.stdout.contains("10.96.0.10:80/TCP"))
            #expect(output.stderr.contains("warning: file: limits: \(dir)/a-deep.yaml:1: nested more than 100 levels deep (the limit); file ignored"))
        }
    }
}

/// The same object in two files (or twice in one) is taken once, from the first in path order.
@Suite("Duplicate objects across files")
struct DuplicateObjectTests {
    static let web = """
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: demo}
        spec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}

        """

    @Test("a Service defined in two files is translated once, with a warning naming both files")
    func twoFiles() throws {
        try withTemporaryDirectory { dir in
            try write(Self.web, to: "a.yaml", in: dir)
            try write(Self.web.replacingOccurrences(of: "10.96.0.10", with: "10.96.0.99"), to: "b.yaml", in: dir)
            let loaded = try FileSource.load(directory: dir)
            #expect(loaded.snapshot.services.map(\.spec.clusterIP) == ["10.96.0.10"])
            #expect(loaded.warnings.map(\.description) == ["\(dir)/b.yaml: Service demo/web: also defined in \(dir)/a.yaml; this definition is ignored"])
            let output = try Command.translate(TranslateRequest(directory: dir, nodeName: "node-a", format: .table))
            #expect(output.state.entries.count == 1)
        }
    }

    @Test("twice in one file, and objects of different kinds or namespaces with one name are not duplicates")
    func sameFile() throws {
        let yaml = Self.web + "---\n" + Self.web + "---\n" + Self.web.replacingOccurrences(of: "namespace: demo", with: "namespace: other")
        let loaded = FileSource.merge([("one.yaml", try FileSource.load(yaml: yaml, file: "one.yaml"))])
        #expect(loaded.snapshot.services.map(\.metadata.namespace) == ["demo", "other"])
        #expect(loaded.warnings.map(\.description) == ["one.yaml: Service demo/web: also defined earlier in the same file; this definition is ignored"])
    }
}
