import Foundation
import KubeAPI
import Yams

/// The envtest harness: a real etcd + kube-apiserver from `$KUBEBUILDER_ASSETS` (the
/// controller-runtime convention), on loopback, with a generated serving certificate, a
/// service-account key pair (so the TokenRequest API issues ServiceAccount tokens), a static token
/// file (an admin in system:masters and an unprivileged "viewer") and RBAC on. The Gateway API CRDs
/// are installed from a directory when given; on an older server that rejects their CEL rules they
/// are installed without `x-kubernetes-validations` (and this says so). Optionally it also runs
/// kube-controller-manager with the EndpointSlice controllers (for end-to-end tests), and API
/// servers can be stopped, restarted and added (sharing the same etcd) to play outages.
public final class EnvtestControlPlane: @unchecked Sendable {
    public static let adminToken = "envtest-admin-token"
    public static let viewerToken = "envtest-viewer-token"

    public let directory: String
    public let certificates: TestCertificates
    /// The primary API server's port.
    public let port: Int
    private let assets: String
    private let etcdPort: Int
    private let lock = NSLock()
    private var etcd: Process?
    private var controllerManager: Process?
    /// Running API servers by port.
    private var apiServers: [Int: Process] = [:]
    /// Kills the control plane if the test process dies without `stop()`.
    private let reaper: Reaper
    /// Notes for the test log (e.g. CRDs installed without validation rules).
    public private(set) var notes: [String] = []

    public var url: String { "https://127.0.0.1:\(port)" }

    /// Whether a missing control plane is a failure rather than a skip: in CI (`CI=true`) or with
    /// `PORTWAY_REQUIRE_CONTROL_PLANE=1`.
    public static func required(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        environment["CI"] == "true" || environment["PORTWAY_REQUIRE_CONTROL_PLANE"] == "1"
    }

    /// The folder holding kube-apiserver and etcd (and kube-controller-manager when `controllerManager`),
    /// or nil with the reason it is unusable.
    public static func assets(
        environment: [String: String] = ProcessInfo.processInfo.environment, controllerManager: Bool = false
    ) -> (path: String?, reason: String) {
        let needs = controllerManager ? "kube-apiserver, kube-controller-manager and etcd" : "kube-apiserver and etcd"
        guard let dir = environment["KUBEBUILDER_ASSETS"], !dir.isEmpty else {
            return (nil, "KUBEBUILDER_ASSETS not set (needs \(needs))")
        }
        let binaries = ["kube-apiserver", "etcd"] + (controllerManager ? ["kube-controller-manager"] : [])
        for binary in binaries where !FileManager.default.isExecutableFile(atPath: "\(dir)/\(binary)") {
            return (nil, "KUBEBUILDER_ASSETS=\(dir) has no executable \(binary) (needs \(needs))")
        }
        return (dir, "")
    }

    /// True when the binaries are there; otherwise prints "skipped: <reason>" once (used in
    /// `.enabled(if:)`). In CI it returns true anyway, so the suite runs and fails with the reason.
    public static func availableOrPrintSkip() -> Bool { availability }

    private static let availability: Bool = {
        let a = assets()
        if a.path == nil {
            if required() {
                print("CI: the real control plane is required; running the envtest suites so that they fail: \(a.reason)")
                return true
            }
            print("skipped: \(a.reason)")
        }
        return a.path != nil
    }()

    public func clusterConfig(token: String = EnvtestControlPlane.adminToken, port: Int? = nil) -> ClusterConfig {
        ClusterConfig(
            server: "https://127.0.0.1:\(port ?? self.port)", tls: TLSSettings(caData: certificates.read(certificates.caCertPath)),
            credentials: Credentials(.token(token)))
    }

    /// A kubeconfig file for `server` with a bearer token and the test CA inline.
    public static func kubeconfig(server: String, caData: Data, token: String, user: String = "user") -> String {
        """
        apiVersion: v1
        kind: Config
        clusters:
        - name: envtest
          cluster: {server: "\(server)", certificate-authority-data: \(caData.base64EncodedString())}
        users:
        - name: \(user)
          user: {token: "\(token)"}
        contexts:
        - name: envtest
          context: {cluster: envtest, user: \(user)}
        current-context: envtest

        """
    }

    /// Starts etcd and kube-apiserver, waits until ready, installs the CRDs. Blocking: call via `start()`.
    private init(assets: String, crdDirectory: String?, controllerManager: Bool) throws {
        self.assets = assets
        certificates = try TestCertificates.generate()
        directory = certificates.directory
        reaper = try Reaper(directory: directory)
        port = try Self.freePort()
        etcdPort = try Self.freePort()
        let peerPort = try Self.freePort()
        do {
            try TestCertificates.openssl(["genrsa", "-out", "\(directory)/sa.key", "2048"], in: directory)
            try TestCertificates.openssl(["rsa", "-in", "\(directory)/sa.key", "-pubout", "-out", "\(directory)/sa.pub"], in: directory)
            try """
                \(Self.adminToken),admin,1,"system:masters"
                \(Self.viewerToken),viewer,2
                """.write(toFile: "\(directory)/tokens.csv", atomically: true, encoding: .utf8)

            etcd = try Self.launch("\(assets)/etcd", [
                "--data-dir", "\(directory)/etcd", "--listen-client-urls", "http://127.0.0.1:\(etcdPort)",
                "--advertise-client-urls", "http://127.0.0.1:\(etcdPort)", "--listen-peer-urls", "http://127.0.0.1:\(peerPort)",
                "--initial-advertise-peer-urls", "http://127.0.0.1:\(peerPort)", "--initial-cluster", "default=http://127.0.0.1:\(peerPort)",
                "--unsafe-no-fsync=true",
            ], log: "\(directory)/etcd.log")
            etcd.map { reaper.register(pid: $0.processIdentifier) }
            try launchAPIServer(port: port)
            if let crdDirectory { try installCRDs(from: crdDirectory) }
            if controllerManager { try launchControllerManager() }
        } catch {
            stop()
            throw error
        }
    }

    /// Starts a control plane (on its own thread: process launches and waits block). Without
    /// `crdDirectory` (or when it does not exist) no CRDs are installed and a note says so.
    public static func start(crdDirectory: String?, controllerManager: Bool = false) async throws -> EnvtestControlPlane {
        guard let assets = assets(controllerManager: controllerManager).path else {
            throw HarnessError(description: assets(controllerManager: controllerManager).reason)
        }
        return try await blocking { try EnvtestControlPlane(assets: assets, crdDirectory: crdDirectory, controllerManager: controllerManager) }
    }

    /// Runs blocking harness work on its own thread.
    public static func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            Thread { c.resume(with: Result { try body() }) }.start()
        }
    }

    /// Stops everything (SIGKILL: the data is thrown away anyway, and a graceful kube-apiserver
    /// shutdown waits for its open watches) and removes the directory.
    public func stop() {
        let all: [Process] = lock.withLock {
            let list = [controllerManager].compactMap { $0 } + Array(apiServers.values) + [etcd].compactMap { $0 }
            controllerManager = nil
            apiServers = [:]
            etcd = nil
            return list
        }
        for p in all { Self.kill(p) }
        certificates.remove()
    }

    deinit { stop() }

    // MARK: outages

    /// Stops the API server on `port` (default: the primary). `graceful` sends SIGTERM (kube-apiserver
    /// then drains for a while), otherwise SIGKILL. Blocking.
    public func stopAPIServer(port: Int? = nil, graceful: Bool = false) {
        let p = lock.withLock { apiServers.removeValue(forKey: port ?? self.port) }
        guard let p else { return }
        if graceful, p.isRunning {
            p.terminate()
            for _ in 0..<300 where p.isRunning { Thread.sleep(forTimeInterval: 0.1) }
        }
        Self.kill(p)
    }

    /// Starts (again) an API server on `port` (default: the primary's) against the same etcd, and
    /// waits until it is ready. A new port makes a second API server (an HA control plane). Blocking.
    public func launchAPIServer(port: Int? = nil) throws {
        let port = port ?? self.port
        let p = try Self.launch("\(assets)/kube-apiserver", [
            "--etcd-servers", "http://127.0.0.1:\(etcdPort)", "--bind-address", "127.0.0.1", "--secure-port", String(port),
            "--tls-cert-file", certificates.serverCertPath, "--tls-private-key-file", certificates.serverKeyPath,
            "--client-ca-file", certificates.caCertPath, "--token-auth-file", "\(directory)/tokens.csv",
            "--service-account-key-file", "\(directory)/sa.pub", "--service-account-signing-key-file", "\(directory)/sa.key",
            "--service-account-issuer", "https://kubernetes.default.svc", "--authorization-mode", "RBAC",
            "--service-cluster-ip-range", "10.96.0.0/16", "--allow-privileged=true", "--cert-dir", "\(directory)/certs-\(port)",
            "--disable-admission-plugins", "ServiceAccount",
        ], log: "\(directory)/kube-apiserver-\(port).log")
        reaper.register(pid: p.processIdentifier)
        lock.withLock { apiServers[port] = p }
        try waitReady(port: port, process: p)
    }

    /// A free port for another API server.
    public func newPort() throws -> Int { try Self.freePort() }

    private func launchControllerManager() throws {
        let kubeconfig = "\(directory)/controller-manager.kubeconfig"
        try Self.kubeconfig(server: url, caData: certificates.read(certificates.caCertPath), token: Self.adminToken, user: "admin")
            .write(toFile: kubeconfig, atomically: true, encoding: .utf8)
        let p = try Self.launch("\(assets)/kube-controller-manager", [
            "--kubeconfig", kubeconfig, "--controllers", "endpointslice,endpoint,endpointslicemirroring,garbagecollector,namespace",
            "--leader-elect=false", "--secure-port=0", "--concurrent-service-endpoint-syncs=5",
            "--endpointslice-updates-batch-period=0s", "--endpoint-updates-batch-period=0s",
        ], log: "\(directory)/kube-controller-manager.log")
        reaper.register(pid: p.processIdentifier)
        lock.withLock { controllerManager = p }
        Thread.sleep(forTimeInterval: 0.5)
        guard p.isRunning else {
            let log = (try? String(contentsOfFile: "\(directory)/kube-controller-manager.log", encoding: .utf8)) ?? ""
            throw HarnessError(description: "kube-controller-manager exited at once:\n\(log.suffix(2000))")
        }
    }

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

    static func kill(_ p: Process) {
        if p.isRunning { Glibc.kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
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
    func request(_ method: String, _ path: String, body: Data? = nil, port: Int? = nil) throws -> HTTPResponse {
        let req = HTTPRequest(
            method: method, url: "https://127.0.0.1:\(port ?? self.port)" + path,
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

    private func waitReady(port: Int, process: Process) throws {
        for _ in 0..<900 {
            if !process.isRunning || etcd?.isRunning == false {
                let log = (try? String(contentsOfFile: "\(directory)/kube-apiserver-\(port).log", encoding: .utf8)) ?? ""
                throw HarnessError(description: "control plane exited early; kube-apiserver log tail:\n\(log.suffix(2000))")
            }
            if let r = try? request("GET", "/readyz", port: port), r.status == 200 { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw HarnessError(description: "kube-apiserver not ready after 90 s (logs in \(directory))")
    }

    /// Installs every CRD YAML; on a 422 mentioning x-kubernetes-validations (an older server),
    /// retries without those rules and records a note.
    private func installCRDs(from dir: String) throws {
        guard FileManager.default.fileExists(atPath: dir) else {
            notes.append("no CRDs installed: \(dir) is absent")
            return
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }.sorted()
        var installed: [String] = []
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
                installed.append(name)
            }
        }
        try waitUntilEstablished(crds: installed)
    }

    /// Waits until every CRD named is usable, as a client that creates its objects right away
    /// needs: its `Established` condition True (the server accepted its names and serves it), and
    /// then a list of each served version answering 200 (the handler serving the new resource may
    /// lag the condition a little). Without the wait, a create right after the install can get
    /// `404 the server could not find the requested resource`. Blocking: the harness thread only.
    func waitUntilEstablished(crds names: [String], limit: Duration = .seconds(60)) throws {
        let deadline = ContinuousClock.now + limit
        for name in names {
            var paths: [String]?
            while paths == nil {
                if let r = try? request("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/\(name)"), r.status == 200,
                   let crd = try? JSONSerialization.jsonObject(with: r.body) as? [String: Any] {
                    paths = Self.servedPaths(ifEstablished: crd)
                }
                if paths == nil {
                    guard ContinuousClock.now < deadline else { throw HarnessError(description: "CRD \(name) not Established after \(limit)") }
                    Thread.sleep(forTimeInterval: 0.05)
                }
            }
            for path in paths ?? [] {
                while (try? request("GET", path + "?limit=1"))?.status != 200 {
                    guard ContinuousClock.now < deadline else { throw HarnessError(description: "CRD \(name) Established but \(path) not served after \(limit)") }
                    Thread.sleep(forTimeInterval: 0.05)
                }
            }
        }
    }

    /// The list path of each served version of `crd` ("/apis/gateway.networking.k8s.io/v1/httproutes"),
    /// or nil while its `Established` condition is not True.
    static func servedPaths(ifEstablished crd: [String: Any]) -> [String]? {
        let conditions = (crd["status"] as? [String: Any])?["conditions"] as? [[String: Any]] ?? []
        guard conditions.contains(where: { $0["type"] as? String == "Established" && $0["status"] as? String == "True" }) else { return nil }
        let spec = crd["spec"] as? [String: Any] ?? [:]
        guard let group = spec["group"] as? String, let plural = (spec["names"] as? [String: Any])?["plural"] as? String else { return nil }
        let versions = (spec["versions"] as? [[String: Any]] ?? []).filter { $0["served"] as? Bool == true }.compactMap { $0["name"] as? String }
        // A cluster-wide list, for namespaced kinds too (the admin may list everything).
        return versions.map { "/apis/\(group)/\($0)/\(plural)" }
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
