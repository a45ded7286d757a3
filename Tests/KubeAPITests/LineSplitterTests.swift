import Foundation
import KubeAPI
import KubeModels
import Testing

@Suite("Watch line splitting")
struct LineSplitterTests {
    let events: [UInt8] = Array("""
        {"type":"ADDED","object":{"kind":"Service","metadata":{"name":"a","namespace":"demo","resourceVersion":"5"},"spec":{}}}
        {"type":"BOOKMARK","object":{"kind":"Service","metadata":{"resourceVersion":"6"}}}
        {"type":"DELETED","object":{"kind":"Service","metadata":{"name":"a","namespace":"demo","resourceVersion":"7"},"spec":{}}}

        """.utf8)

    func decodeAll(_ chunks: [ArraySlice<UInt8>]) throws -> [String] {
        var splitter = LineSplitter()
        var out: [String] = []
        for chunk in chunks {
            for line in try splitter.append(chunk) {
                switch try decodeWatchEvent(Service.self, line: line) {
                case .added(let s): out.append("ADDED \(s.metadata.name)")
                case .deleted(let s): out.append("DELETED \(s.metadata.name)")
                case .bookmark(let rv): out.append("BOOKMARK \(rv)")
                default: out.append("other")
                }
            }
        }
        #expect(splitter.finish() == nil)
        return out
    }

    let expected = ["ADDED a", "BOOKMARK 6", "DELETED a"]

    @Test("one read holding many events")
    func manyInOne() throws {
        #expect(try decodeAll([events[...]]) == expected)
    }

    @Test("split at every byte position")
    func everyOffset() throws {
        for cut in 1..<events.count {
            #expect(try decodeAll([events[..<cut], events[cut...]]) == expected, "cut at \(cut)")
        }
    }

    @Test("split at every pair of positions (one event spanning three reads)")
    func everyPair() throws {
        let line = events.count / 3
        for a in stride(from: 1, to: line, by: 3) {
            for b in stride(from: a + 1, to: events.count, by: 7) {
                #expect(try decodeAll([events[..<a], events[a..<b], events[b...]]) == expected, "cuts at \(a), \(b)")
            }
        }
    }

    @Test("byte by byte, and CRLF line ends")
    func byteByByte() throws {
        #expect(try decodeAll(events.indices.map { events[$0...$0] }) == expected)
        // CRLF-terminated lines decode too.
        let crlf = Array(String(decoding: events, as: UTF8.self).replacingOccurrences(of: "\n", with: "\r\n").utf8)
        #expect(try decodeAll([crlf[...]]) == expected)
    }

    @Test("a last event without a newline is returned by finish()")
    func trailing() throws {
        var splitter = LineSplitter()
        let text = Array("{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"9\"}}}".utf8)
        #expect(try splitter.append(text).isEmpty)
        let finished = splitter.finish()
        let rest = try #require(finished)
        if case .bookmark(let rv) = try decodeWatchEvent(Service.self, line: rest) { #expect(rv == "9") } else { Issue.record("not a bookmark") }
    }

    @Test("a runaway line is an error, not unbounded memory")
    func tooLong() throws {
        var splitter = LineSplitter(maxLineLength: 16)
        #expect(throws: LineSplitter.LineTooLong.self) { _ = try splitter.append(Array(repeating: UInt8(ascii: "x"), count: 32)) }
    }
}
