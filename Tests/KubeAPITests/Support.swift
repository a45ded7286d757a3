import Foundation
import KubeAPI
import KubeAPITestSupport
import KubeModels
import Runtime
import Synchronization
import Testing

/// The project's read-only fixtures beside the package (`../shared`), or `$PORTWAY_SHARED_DIR`
/// (point it at a missing folder to check that the dependent tests skip, as in a user's clone).
let sharedDirectory: String = {
    if let dir = ProcessInfo.processInfo.environment["PORTWAY_SHARED_DIR"], !dir.isEmpty { return dir }
    let here = URL(fileURLWithPath: #filePath)  // .../Tests/KubeAPITests/Support.swift
    return here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared").path
}()

/// The recorded exchanges, read in place (never copied into the repo).
let tracesDirectory: String = sharedDirectory + "/k8s-api-traces"

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

/// Polls `condition` (no timing assertion: a generous deadline only prevents a hung test).
func eventually(_ what: String, timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    Issue.record("condition never became true: \(what)")
    throw EventuallyFailed(what: what)
}

struct EventuallyFailed: Error { var what: String }

/// A Service for the API tests. No clusterIP: the server allocates one (a fixed one would make a
/// second create of the same name fail with 422 "already allocated" on a real server, not 409).
func service(_ name: String, namespace: String = "demo", port: Int = 80, nodePort: Int? = nil, labels: [String: String]? = nil, clusterIP: String? = nil) -> Service {
    Service(
        metadata: ObjectMeta(name: name, namespace: namespace, labels: labels),
        spec: ServiceSpec(type: nodePort == nil ? "ClusterIP" : "NodePort", clusterIP: clusterIP,
                          ports: [ServicePort(name: "http", protocol: "TCP", port: port, targetPort: .int(8080), nodePort: nodePort)]))
}

func slice(_ name: String, service: String, namespace: String = "demo", addresses: [String]) -> EndpointSlice {
    EndpointSlice(
        metadata: ObjectMeta(name: name, namespace: namespace, labels: [EndpointSlice.serviceNameLabel: service]),
        addressType: "IPv4",
        endpoints: addresses.map { Endpoint(addresses: [$0], conditions: EndpointConditions(ready: true, serving: true, terminating: false)) },
        ports: [EndpointPort(name: "http", protocol: "TCP", port: 8080)])
}
