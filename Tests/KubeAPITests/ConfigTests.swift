import Foundation
import KubeAPI
import KubeAPITestSupport
import KubeModels
import Testing

/// A scratch directory for kubeconfigs, token files and plugin scripts.
func kubeconfig(server: String, cluster: String, user: String, currentContext: String? = "ctx", context: String = "ctx", namespace: String? = nil) -> String {
    """
    apiVersion: v1
    kind: Config
    \(currentContext.map { "current-context: \($0)" } ?? "")
    clusters:
    - name: c1
      cluster:
        server: \(server)
    \(cluster)
    users:
    - name: u1
      user:
    \(user)
    contexts:
    - name: \(context)
      context:
        cluster: c1
        user: u1
    \(namespace.map { "    namespace: \($0)" } ?? "")
    """
}

func indent(_ lines: [String], _ n: Int) -> String { lines.map { String(repeating: " ", count: n) + $0 }.joined(separator: "\n") }

@Suite("Configuration forms, each used against the test API server")
struct ConfigTests {
    func check(_ config: ClusterConfig, _ server: TestAPIServer, user: String) async throws {
        _ = try await KubeClient(config: config).list(Service.self)
        #expect(server.requests.last?.user == user)
    }

    @Test("kubeconfig: each credential and trust form")
    func kubeconfigForms() async throws {
        let server = try await TestAPIServer.started(tokens: ["test-token": "admin", "file-token": "file-user"])
        let certs = server.certificates
        let dir = try makeTempDirectory("portway-kcfg")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Relative paths resolve against the kubeconfig's directory.
        try FileManager.default.createDirectory(atPath: dir + "/pki", withIntermediateDirectories: true)
        for (from, to) in [(certs.caCertPath, "pki/ca.crt"), (certs.clientCertPath, "pki/client.crt"), (certs.clientKeyPath, "pki/client.key")] {
            try FileManager.default.copyItem(atPath: from, toPath: "\(dir)/\(to)")
        }
        try "file-token\n".write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        let caData = certs.read(certs.caCertPath).base64EncodedString()
        let cases: [(String, String, String, String)] = [
            ("token + CA data", indent(["certificate-authority-data: \(caData)"], 4), indent(["token: test-token"], 4), "admin"),
            ("tokenFile (relative) + CA file (relative)", indent(["certificate-authority: pki/ca.crt"], 4), indent(["tokenFile: token"], 4), "file-user"),
            ("client certificate data", indent(["certificate-authority-data: \(caData)"], 4),
             indent(["client-certificate-data: \(certs.read(certs.clientCertPath).base64EncodedString())", "client-key-data: \(certs.read(certs.clientKeyPath).base64EncodedString())"], 4), "cert-user"),
            ("client certificate files", indent(["certificate-authority: \(dir)/pki/ca.crt"], 4), indent(["client-certificate: pki/client.crt", "client-key: pki/client.key"], 4), "cert-user"),
            ("insecure-skip-tls-verify", indent(["insecure-skip-tls-verify: true"], 4), indent(["token: test-token"], 4), "admin"),
        ]
        for (name, cluster, user, expectedUser) in cases {
            let path = "\(dir)/config-\(name.filter(\.isLetter))"
            try kubeconfig(server: server.url, cluster: cluster, user: user, namespace: "demo").write(toFile: path, atomically: true, encoding: .utf8)
            let config = try KubeConfig.load(paths: [path]).clusterConfig()
            #expect(config.namespace == "demo", "\(name)")
            do {
                try await check(config, server, user: expectedUser)
            } catch {
                Issue.record("\(name): \(error)")
            }
        }
        // Without the CA (and not insecure) the server's certificate is refused.
        let path = dir + "/config-untrusted"
        try kubeconfig(server: server.url, cluster: "", user: indent(["token: test-token"], 4)).write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try await KubeClient(config: try KubeConfig.load(paths: [path]).clusterConfig()).list(Service.self)
            Issue.record("an untrusted server was accepted")
        } catch let error as KubeAPIError {
            guard case .transport = error.kind else { Issue.record("expected a TLS transport error, got \(error)"); return }
        }
        try await server.stop()
    }

    @Test("bad kubeconfigs give clear errors")
    func badConfigs() throws {
        let cases: [(String, String)] = [
            ("clusters: [oops", "not a valid kubeconfig"),
            ("current-context: nope\ncontexts: []", "context \"nope\" not found"),
            ("contexts:\n- name: a\n  context: {cluster: missing}\ncurrent-context: a", "cluster \"missing\" of context \"a\" not found"),
            ("users:\n- name: u\n  user: {client-key-data: '%%%'}", "not valid base64"),
            ("clusters: []", "no current-context"),
        ]
        for (yaml, message) in cases {
            do {
                _ = try KubeConfig(yaml: yaml, directory: "/tmp").clusterConfig()
                Issue.record("accepted: \(yaml)")
            } catch let error as ConfigError {
                #expect(error.description.contains(message), "\(error.description)")
            }
        }
    }

    @Test("$KUBECONFIG lists merge like kubectl: first file wins per name, current-context from the first that sets it")
    func mergedList() async throws {
        let server = try await TestAPIServer.started(tokens: ["test-token": "admin", "second": "second-user"])
        let dir = try makeTempDirectory("portway-kcfg")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let caData = server.certificates.read(server.certificates.caCertPath).base64EncodedString()
        // File 1: no current-context; its user u1 (token test-token) wins over file 2's u1.
        let first = """
            users:
            - name: u1
              user: {token: test-token}
            clusters:
            - name: c1
              cluster: {server: "\(server.url)", certificate-authority-data: \(caData)}
            """
        let second = kubeconfig(server: "https://127.0.0.1:1", cluster: "", user: indent(["token: second"], 4), currentContext: "ctx")
        try first.write(toFile: dir + "/one", atomically: true, encoding: .utf8)
        try second.write(toFile: dir + "/two", atomically: true, encoding: .utf8)
        let paths = KubeConfig.defaultPaths(explicit: nil, environment: ["KUBECONFIG": "\(dir)/one:\(dir)/missing:\(dir)/two"])
        #expect(paths.count == 3)
        let merged = try KubeConfig.load(paths: paths)
        #expect(merged.currentContext == "ctx")
        #expect(merged.clusters["c1"]?.server == server.url)
        try await check(try merged.clusterConfig(), server, user: "admin")
        // An explicit --kubeconfig wins over $KUBECONFIG; --context picks a context.
        #expect(KubeConfig.defaultPaths(explicit: "/x", environment: ["KUBECONFIG": "/y"]) == ["/x"])
        #expect(KubeConfig.defaultPaths(explicit: nil, environment: ["HOME": "/home/me"]) == ["/home/me/.kube/config"])
        #expect(throws: ConfigError.self) { try merged.clusterConfig(context: "other") }
        try await server.stop()
    }

    @Test("exec credential plugin: cached until expirationTimestamp, re-run after, and after a 401")
    func execPlugin() async throws {
        let server = try await TestAPIServer.started(tokens: ["exec-token": "exec-user"])
        let dir = try makeTempDirectory("portway-kcfg")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func plugin(_ name: String, expiry: String) throws -> String {
            let script = """
                #!/bin/sh
                echo run >> "\(dir)/\(name).count"
                printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s","expirationTimestamp":"%s"}}' "$TOKEN" "\(expiry)"
                """
            try script.write(toFile: "\(dir)/\(name).sh", atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: "\(dir)/\(name).sh")
            return name
        }
        func runs(_ name: String) -> Int {
            (try? String(contentsOfFile: "\(dir)/\(name).count", encoding: .utf8))?.split(separator: "\n").count ?? 0
        }
        let caData = server.certificates.read(server.certificates.caCertPath).base64EncodedString()
        func config(_ name: String) throws -> ClusterConfig {
            let user = indent([
                "exec:", "  apiVersion: client.authentication.k8s.io/v1", "  command: ./\(name).sh",
                "  env:", "  - {name: TOKEN, value: exec-token}",
            ], 4)
            let yaml = kubeconfig(server: server.url, cluster: indent(["certificate-authority-data: \(caData)"], 4), user: user)
            try yaml.write(toFile: "\(dir)/\(name).yaml", atomically: true, encoding: .utf8)
            return try KubeConfig.load(paths: ["\(dir)/\(name).yaml"]).clusterConfig()
        }
        // Valid for a long time: one run serves many requests.
        let longLived = KubeClient(config: try config(try plugin("long", expiry: "2099-01-01T00:00:00Z")))
        for _ in 0..<3 { _ = try await longLived.list(Service.self) }
        #expect(runs("long") == 1)
        #expect(server.requests.last?.user == "exec-user")
        // Already expired: every request runs the plugin again.
        let expired = KubeClient(config: try config(try plugin("expired", expiry: "2020-01-01T00:00:00Z")))
        for _ in 0..<3 { _ = try await expired.list(Service.self) }
        #expect(runs("expired") == 3)
        // A 401 drops the cached token, so the next request runs the plugin again.
        server.removeToken("exec-token")
        await #expect(throws: KubeAPIError.self) { _ = try await longLived.list(Service.self) }
        server.addToken("exec-token", user: "exec-user")
        _ = try await longLived.list(Service.self)
        #expect(runs("long") == 2)
        try await server.stop()
    }

    @Test("a failing exec plugin is a clear error carrying its stderr")
    func execPluginFails() async throws {
        let dir = try makeTempDirectory("portway-kcfg")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "#!/bin/sh\necho 'please run: login' >&2\nexit 3\n".write(toFile: dir + "/fail.sh", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir + "/fail.sh")
        let plugin = ExecPlugin(command: "./fail.sh", workingDirectory: dir)
        do {
            _ = try await plugin.run()
            Issue.record("no error")
        } catch let error as ConfigError {
            #expect(error.description == "exec plugin ./fail.sh exited with 3: please run: login")
        }
        try "#!/bin/sh\necho not-json\n".write(toFile: dir + "/bad.sh", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir + "/bad.sh")
        await #expect(throws: ConfigError.self) { _ = try await ExecPlugin(command: "./bad.sh", workingDirectory: dir).run() }
    }

    @Test("in-cluster config: service account files, token re-read as it rotates")
    func inCluster() async throws {
        let server = try await TestAPIServer.started(tokens: ["sa-token-1": "system:serviceaccount:portway:agent"])
        let root = try makeTempDirectory("portway-kcfg")
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.copyItem(atPath: server.certificates.caCertPath, toPath: root + "/ca.crt")
        try "sa-token-1".write(toFile: root + "/token", atomically: true, encoding: .utf8)
        try "portway\n".write(toFile: root + "/namespace", atomically: true, encoding: .utf8)
        let env = ["KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": String(server.port)]
        let config = try ClusterConfig.inCluster(environment: env, root: root, tokenRefresh: .zero)
        #expect(config.namespace == "portway")
        #expect(config.server == server.url)
        try await check(config, server, user: "system:serviceaccount:portway:agent")
        // kubelet rotates the token: the next request carries the new one.
        server.addToken("sa-token-2", user: "rotated")
        try "sa-token-2".write(toFile: root + "/token", atomically: true, encoding: .utf8)
        try await check(config, server, user: "rotated")
        // Not in a pod: a clear error.
        #expect(throws: ConfigError.self) { try ClusterConfig.inCluster(environment: [:], root: root) }
        try await server.stop()
    }
}
