import Foundation
import KubeAPI
import Yams

/// The envtest harness: a real etcd + kube-apiserver from `$KUBEBUILDER_ASSETS` (the
/// controller-runtime convention), on loopback, with a generated serving certificate, a
/// service-account key pair, a static token file (an admin in system:masters and an unprivileged
/// "viewer") and RBAC on. The Gateway API CRDs are installed from ../shared/gateway-api-crds; on an
/// older server that rejects their CEL rules they are installed without `x-kubernetes-validations`
/// (and this says so).
public final class EnvtestControlPlane: @unchecked Sendable {
    public static let adminToken = "envtest-admin-token"
    public static let viewerToken = "envtest-viewer-token"

    public let directory: String
    public let certificates: TestCertificates
    public let port: Int
    private var processes: [Process] = []
    /// Notes for the test log (e.g. CRDs installed without validation rules).
    public private(set) var notes: [String] = []

    public var url: String { "https://127.0.0.1:\(port)" }

    /// The folder holding kube-apiserver and etcd, or nil with the reason it is unusable.
    public static func assets(environment: [String: String] = ProcessInfo.processInfo.environment) -> (path: String?, reason: String) {
        guard let dir = environment["KUBEBUILDER_ASSETS"], !dir.isEmpty else {
            return (nil, "KUBEBUILDER_ASSETS not set (needs kube-apiserver and etcd)")
        }
        for binary in ["kube-apiserver", "etcd"] where !FileManager.default.isExecutableFile(atPath: "\(dir)/\(binary)") {
            return (nil, "KUBEBUILDER_ASSETS=\(dir) has no executable \(binary) (needs kube-apiserver and etcd)")
        }
        return (dir, "")
    }

    /// True when the binaries are there; otherwise prints "skipped: <reason>" once (used in `.enabled(if:)`).
    public static func availableOrPrintSkip() -> Bool { availability }

    private static let availability: Bool = {
        let a = assets()
        if a.path == nil { print("skipped: \(a.reason)") }
        return a.path != nil
    }()

    public func clusterConfig(token: String = EnvtestControlPlane.adminToken) -> ClusterConfig {
        ClusterConfig(server: url, tls: TLSSettings(caData: certificates.read(certificates.caCertPath)), credentials: Credentials(.token(token)))
    }

    /// Starts etcd and kube-apiserver, waits until ready, installs the CRDs. Blocking: call via `start()`.
    private init(assets: String, crdDirectory: String) throws {
        certificates = try TestCertificates.generate()
        directory = certificates.directory
        port = try Self.freePort()
        let etcdPort = try Self.freePort()
        let peerPort = try Self.freePort()
        try TestCertificates.openssl(["genrsa", "-out", "\(directory)/sa.key", "2048"], in: directory)
        try TestCertificates.openssl(["rsa", "-in", "\(directory)/sa.key", "-pubout", "-out", "\(directory)/sa.pub"], in: directory)
        try """
            \(Self.adminToken),admin,1,"system:masters"
            \(Self.viewerToken),viewer,2
            """.write(toFile: "\(directory)/tokens.csv", atomically: true, encoding: .utf8)

        processes.append(try Self.launch("\(assets)/etcd", [
            "--data-dir", "\(directory)/etcd", "--listen-client-urls", "http://127.0.0.1:\(etcdPort)",
            "--advertise-client-urls", "http://127.0.0.1:\(etcdPort)", "--listen-peer-urls", "http://127.0.0.1:\(peerPort)",
            "--initial-advertise-peer-urls", "http://127.0.0.1:\(peerPort)", "--initial-cluster", "default=http://127.0.0.1:\(peerPort)",
            "--unsafe-no-fsync=true",
        ], log: "\(directory)/etcd.log"))
        processes.append(try Self.launch("\(assets)/kube-apiserver", [
            "--etcd-servers", "http://127.0.0.1:\(etcdPort)", "--bind-address", "127.0.0.1", "--secure-port", String(port),
            "--tls-cert-file", certificates.serverCertPath, "--tls-private-key-file", certificates.serverKeyPath,
            "--client-ca-file", certificates.caCertPath, "--token-auth-file", "\(directory)/tokens.csv",
            "--service-account-key-file", "\(directory)/sa.pub", "--service-account-signing-key-file", "\(directory)/sa.key",
            "--service-account-issuer", "https://kubernetes.default.svc", "--authorization-mode", "RBAC",
            "--service-cluster-ip-range", "10.96.0.0/16", "--allow-privileged=true", "--cert-dir", "\(directory)/certs",
            "--disable-admission-plugins", "ServiceAccount",
        ], log: "\(directory)/kube-apiserver.log"))
        try waitReady()
        try installCRDs(from: crdDirectory)
    }

    /// Starts a control plane (on its own thread: process launches and waits block).
    public static func start(crdDirectory: String) async throws -> EnvtestControlPlane {
        guard let assets = assets().path else { throw HarnessError(description: assets().reason) }
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<EnvtestControlPlane, any Error>) in
            Thread {
                do { c.resume(returning: try EnvtestControlPlane(assets: assets, crdDirectory: crdDirectory)) } catch { c.resume(throwing: error) }
            }.start()
        }
    }

    public func stop() {
        for p in processes.reversed() where p.isRunning {
            p.terminate()
            p.waitUntilExit()
        }
        processes = []
        certificates.remove()
    }

    deinit { stop() }

    public struct HarnessError: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    // MARK: helpers (blocking; run on the harness thread)

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw HarnessError(description: "cannot find a free port") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    static func launch(_ path: String, _ args: [String], log: String) throws -> Process {
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        return p
    }

    /// Synchronous request through the shared curl transport (harness setup only).
    func request(_ method: String, _ path: String, body: Data? = nil) throws -> HTTPResponse {
        let req = HTTPRequest(
            method: method, url: url + path,
            headers: ["Authorization: Bearer \(Self.adminToken)", "Content-Type: application/json", "Accept: application/json"],
            body: body, timeout: .seconds(30), tls: TLSSettings(caData: certificates.read(certificates.caCertPath)))
        let box = ResultBox()
        let done = DispatchSemaphore(value: 0)
        Task {
            do { box.result = .success(try await CurlTransport.shared.send(req)) } catch { box.result = .failure(error) }
            done.signal()
        }
        done.wait()
        return try box.result!.get()
    }

    final class ResultBox: @unchecked Sendable {
        var result: Result<HTTPResponse, any Error>?
    }

    private func waitReady() throws {
        for _ in 0..<600 {
            if processes.contains(where: { !$0.isRunning }) {
                let log = (try? String(contentsOfFile: "\(directory)/kube-apiserver.log", encoding: .utf8)) ?? ""
                throw HarnessError(description: "control plane exited early; kube-apiserver log tail:\n\(log.suffix(2000))")
            }
            if let r = try? request("GET", "/readyz"), r.status == 200 { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw HarnessError(description: "kube-apiserver not ready after 60 s (logs in \(directory))")
    }

    /// Installs every CRD YAML; on a 422 mentioning x-kubernetes-validations (an older server),
    /// retries without those rules and records a note.
    private func installCRDs(from dir: String) throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }.sorted()
        for file in files {
            let text = try String(contentsOfFile: "\(dir)/\(file)", encoding: .utf8)
            for document in try Yams.load_all(yaml: text) {
                guard let object = document as? [String: Any], object["kind"] as? String == "CustomResourceDefinition" else { continue }
                let name = (object["metadata"] as? [String: Any])?["name"] as? String ?? file
                var r = try request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body: try JSONSerialization.data(withJSONObject: Self.jsonSafe(object)))
                if r.status == 422 || r.status == 400 {
                    let stripped = Self.strip(object, key: "x-kubernetes-validations")
                    r = try request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body: try JSONSerialization.data(withJSONObject: Self.jsonSafe(stripped)))
                    if r.status < 300 {
                        let note = "installed CRD \(name) WITHOUT x-kubernetes-validations (the server rejected its validation rules)"
                        notes.append(note)
                        print(note)
                    }
                }
                guard r.status < 300 || r.status == 409 else {
                    throw HarnessError(description: "installing CRD \(name): HTTP \(r.status): \(String(decoding: r.body, as: UTF8.self))")
                }
            }
        }
        // Wait until the Gateway API is served.
        for _ in 0..<300 {
            if let r = try? request("GET", "/apis/gateway.networking.k8s.io/v1/gateways"), r.status == 200 { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw HarnessError(description: "Gateway API CRDs not established after 30 s")
    }

    /// `value` with every `key` removed at any depth (used to drop CEL rules an old server rejects).
    public static func strip(_ value: Any, key: String) -> Any {
        if let dict = value as? [String: Any] {
            var out: [String: Any] = [:]
            for (k, v) in dict where k != key { out[k] = strip(v, key: key) }
            return out
        }
        if let array = value as? [Any] { return array.map { strip($0, key: key) } }
        return value
    }

    /// Yams yields Date/Int/Double/Bool; JSONSerialization wants Foundation types only.
    static func jsonSafe(_ value: Any) -> Any {
        if let dict = value as? [String: Any] { return dict.mapValues(jsonSafe) }
        if let array = value as? [Any] { return array.map(jsonSafe) }
        if let date = value as? Date { return ISO8601DateFormatter().string(from: date) }
        if value is NSNull { return NSNull() }
        return value
    }
}
