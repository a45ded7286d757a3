import Foundation
import GatewayCore
import KubeModels
import Testing

/// docs/GATEWAY-API.md and `GatewayFeatures.supported` (what the GatewayClass status claims) cannot drift.
@Suite struct GatewayFeaturesDocTests {
    /// The rows (cells) of the Markdown table under the heading `## <section>` (header and rule lines skipped).
    static func table(_ section: String) throws -> [[String]] {
        let text = try String(contentsOfFile: packageRoot + "/docs/GATEWAY-API.md", encoding: .utf8)
        let lines = text.components(separatedBy: "\n")
        let start = try #require(lines.firstIndex { $0.hasPrefix("## \(section)") }, "no section \(section)")
        var rows: [[String]] = []
        for line in lines[(start + 1)...] {
            if line.hasPrefix("## ") { break }
            guard line.hasPrefix("|") else { continue }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast().map { $0.trimmingCharacters(in: .whitespaces) }
            if cells.first.map({ $0.hasPrefix("---") || $0 == "feature" || $0 == "upstream test" }) ?? true { continue }
            rows.append(cells)
        }
        return rows
    }

    @Test("the extended-feature rows marked passing, and the core features when every core test passes, are exactly GatewayFeatures.supported, which the GatewayClass status lists")
    func passingRowsAreTheSupportedFeatures() throws {
        let rows = try Self.table("Extended features")
        let passing = rows.filter { $0.count == 3 && $0[2].hasPrefix("passing") }.map { $0[0] }
        let core = try Self.table("Core tests")
        let corePassing = core.count == 37 && core.allSatisfy { $0.count == 3 && $0[2].hasPrefix("passing") }
        #expect((passing + (corePassing ? GatewayFeatures.core : [])).sorted() == GatewayFeatures.supported)
        #expect(GatewayFeatures.supported == GatewayFeatures.supported.sorted(), "supportedFeatures must be sorted by name")
        #expect(Set(rows.map { $0[0] }).count == rows.count, "each feature once")
        // The builder writes the same list into every Portway GatewayClass's status.
        let state = try GW.build("")
        #expect(state.status.gatewayClasses["portway"]?.supportedFeatures?.map(\.name) == GatewayFeatures.supported)
        #expect(state.status.gatewayClasses["other"] == nil)
    }

    @Test("the core table lists the 37 core tests of GATEWAY-HTTP v1.6.1, each once, each with a state")
    func coreTableListsThe37Tests() throws {
        let rows = try Self.table("Core tests")
        #expect(rows.count == 37)
        #expect(Set(rows.map { $0[0] }).count == 37)
        let states = ["passing", "partial", "unverified", "not covered", "failing", "not applicable"]
        for row in rows {
            #expect(row.count == 3 && states.contains { row[2].hasPrefix($0) }, "\(row)")
        }
    }
}
