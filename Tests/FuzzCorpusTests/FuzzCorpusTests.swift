import Foundation
import PortwayFuzzEntries
import Testing

/// Every checked-in fuzz input (fuzz/corpus/TARGET/*: seeds and every crash ever found) fed once to
/// the entry point its fuzzer calls: a regression of any of them traps the test process.
@Suite("Fuzz corpus regression")
struct FuzzCorpusTests {
    static let corpus = URL(fileURLWithPath: packageRoot).appendingPathComponent("fuzz/corpus")

    static func inputs(_ target: String) throws -> [URL] {
        let dir = corpus.appendingPathComponent(target)
        return try FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)
            .filter { !$0.lastPathComponent.hasPrefix(".") }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    @Test("every corpus input of each target runs to completion", arguments: FuzzEntries.targets.keys.sorted())
    func corpus(_ target: String) throws {
        let entry = try #require(FuzzEntries.targets[target])
        let inputs = try Self.inputs(target)
        #expect(inputs.count >= 3, "fuzz/corpus/\(target) holds the seed corpus")
        for url in inputs { entry(try Data(contentsOf: url)) }
    }
}
