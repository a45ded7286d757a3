import Foundation
import KubeAPI
import KubeModels
import Testing

/// Kubeconfig mistakes are refused at start with a message saying what is wrong and where (issue
/// 12): before, a server without a scheme or with http:// was retried forever on HTTP 400, a
/// missing CA file forever on TLS errors, and a garbage file printed its raw bytes.
@Suite("Kubeconfig errors at start")
struct ConfigErrorTests {
    func configError(_ yaml: String, directory: String = "/nonexistent") -> String? {
        do {
            _ = try KubeConfig(yaml: yaml, directory: directory, source: "/etc/kc").clusterConfig()
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test("a server without a scheme, with http:// or another scheme, or without a host is rejected")
    func serverURL() {
        let token = indent(["token: t"], 4)
        #expect(configError(kubeconfig(server: "10.0.0.1:6443", cluster: "", user: token))
            == "cluster \"c1\": server 10.0.0.1:6443 has no scheme; write it as https://10.0.0.1:6443")
        #expect(configError(kubeconfig(server: "http://10.0.0.1:6443", cluster: "", user: token))
            == "cluster \"c1\": server http://10.0.0.1:6443 uses http://; the Kubernetes API is served over TLS: use https://")
        #expect(configError(kubeconfig(server: "ftp://10.0.0.1", cluster: "", user: token))
            == "cluster \"c1\": server ftp://10.0.0.1 has scheme ftp:// ; use https://")
        #expect(configError(kubeconfig(server: "https://", cluster: "", user: token))
            == "cluster \"c1\": server https:// is not a valid URL (https://HOST[:PORT])")
        #expect(configError(kubeconfig(server: "HTTPS://10.0.0.1:6443", cluster: "", user: token)) == nil)
    }

    @Test("a missing CA, client certificate or key file is rejected, naming the field and the path")
    func missingFiles() {
        #expect(configError(kubeconfig(server: "https://10.0.0.1", cluster: indent(["certificate-authority: ca.crt"], 4), user: indent(["token: t"], 4)))
            == "certificate-authority of cluster \"c1\": cannot read /nonexistent/ca.crt: no such file")
        #expect(configError(kubeconfig(server: "https://10.0.0.1", cluster: "", user: indent(["client-certificate: /no/cert.pem", "client-key: /no/key.pem"], 4)))
            == "client-certificate of user \"u1\": cannot read /no/cert.pem: no such file")
    }

    @Test("a garbage kubeconfig is described, never echoed", arguments: [
        ("\u{01}\u{02}SECRETBYTES\u{7f}", "not a valid kubeconfig"),
        ("SECRETBYTES just text", "the file is not a YAML mapping of clusters, users and contexts"),
        ("clusters: SECRETBYTES", "clusters: expected a list"),
        ("clusters:\n- name: c\n  cluster: [SECRETBYTES]", "clusters[0].cluster: expected a mapping"),
        ("clusters: [SECRETBYTES", "YAML syntax error at line"),
        ("", "the file is empty"),
        (String(repeating: "[", count: 5_000) + "SECRETBYTES", "nested more than 100 levels deep"),
    ])
    func garbage(_ yaml: String, _ expected: String) {
        do {
            _ = try KubeConfig(yaml: yaml, directory: "/", source: "/etc/kc")
            Issue.record("accepted")
        } catch {
            let message = "\(error)"
            #expect(message.hasPrefix("/etc/kc: not a valid kubeconfig: "))
            #expect(message.contains(expected), "\(message)")
            #expect(!message.contains("SECRETBYTES"), "\(message)")
        }
    }
}

@Suite("Durations in log lines")
struct DurationTextTests {
    @Test func shortDescriptions() {
        #expect(Duration.milliseconds(1_916.7055764385474).shortDescription == "1.9s")
        #expect(Duration.milliseconds(250).shortDescription == "250ms")
        #expect(Duration.microseconds(42).shortDescription == "42µs")
        #expect(Duration.seconds(42.4).shortDescription == "42s")
        #expect(Duration.seconds(200).shortDescription == "3m20s")
        let state = InformerState.backingOff(.rewatch, delay: .milliseconds(1_916.7), reason: "HTTP 503")
        #expect(state.description == "backingOff(rewatch, 1.9s): HTTP 503")
    }
}
