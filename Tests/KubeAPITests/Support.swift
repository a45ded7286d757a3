import Foundation
import KubeAPI
import KubeAPITestSupport
import KubeModels
import Runtime
import Synchronization
import Testing

/// Whether `../shared/<sub>` exists; prints once why the tests that need it are skipped.
enum SharedFixtures {
    static let traces: Bool = present("k8s-api-traces")
    static let gatewayCRDs: Bool = present("gateway-api-crds")

    private static func present(_ sub: String) -> Bool {
        var isDirectory: ObjCBool = false
        let ok = FileManager.default.fileExists(atPath: "\(sharedDirectory)/\(sub)", isDirectory: &isDirectory) && isDirectory.boolValue
        if !ok { print("skipped: tests needing \(sharedDirectory)/\(sub) (../shared beside the package, or $PORTWAY_SHARED_DIR): it is absent") }
        return ok
    }
}

/// One recorded `curl -i` exchange.
struct Trace {
    var status: Int
    var headers: [String: String]
    var body: Data

    init(_ name: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(tracesDirectory)/\(name)"))
        let text = String(decoding: data, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") ?? text.range(of: "\n\n") else { throw TraceError.noBody(name) }
        let headLines = text[..<split.lowerBound].components(separatedBy: .newlines).map { $0.trimmingCharacters(in: .whitespaces) }
        let statusParts = headLines[0].split(separator: " ")
        status = Int(statusParts[1]) ?? 0
        var headers: [String: String] = [:]
        for line in headLines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        self.headers = headers
        body = Data(text[split.upperBound...].utf8)
    }

    var lines: [[UInt8]] {
        body.split(separator: UInt8(ascii: "\n")).map(Array.init).filter { !$0.allSatisfy { $0 == 32 || $0 == 13 } }
    }

    var json: JSONValue { get throws { try JSONValue.parse(body) } }
}

enum TraceError: Error { case noBody(String) }

/// Fast informer settings for tests: short watches, near-instant backoff (recorded).
final class SleepRecorder: Sendable {
    private let delays = Mutex<[Duration]>([])
    var recorded: [Duration] { delays.withLock { $0 } }
    func sleep(_ d: Duration) async throws {
        delays.withLock { $0.append(d) }
        try await Task.sleep(for: .milliseconds(20))
    }
}

func fastOptions(_ recorder: SleepRecorder, watchTimeout: Int = 30, list: ListOptions = ListOptions()) -> InformerOptions {
    InformerOptions(
        list: list, pageSize: 2, watchTimeoutSeconds: watchTimeout...watchTimeout, stallMargin: .milliseconds(500),
        backoff: BackoffPolicy(initial: .milliseconds(800), maximum: .seconds(30)),
        sleep: { try await recorder.sleep($0) })
}

/// Records informer events and states for assertions.
final class EventLog<R: KubeResource>: Sendable {
    private let events = Mutex<[String]>([])
    private let states = Mutex<[InformerState]>([])

    func record(_ e: InformerEvent<R>) {
        let text: String
        switch e {
        case .added(let o): text = "added \(o.storeKey)"
        case .updated(_, let o): text = "updated \(o.storeKey)@\(o.metadata.resourceVersion ?? "")"
        case .deleted(let o): text = "deleted \(o.storeKey)"
        }
        events.withLock { $0.append(text) }
    }

    func record(_ s: InformerState) {
        states.withLock { $0.append(s) }
    }

    var all: [String] { events.withLock { $0 } }
    var allStates: [InformerState] { states.withLock { $0 } }
    var relists: Int { allStates.filter { $0 == .relisting }.count }
}
