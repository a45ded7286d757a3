import Agent
import Foundation
import KubeAPI
import KubeAPITestSupport
import KubeModels
import LoadBalancer
import Testing

let crdDirectory: String = sharedDirectory + "/gateway-api-crds"

@Suite("envtest harness plumbing (runs everywhere)")
struct EnvtestHarnessTests {
    @Test("KUBEBUILDER_ASSETS: unset, missing binaries, complete")
    func assets() throws {
        #expect(EnvtestControlPlane.assets(environment: [:]).reason == "KUBEBUILDER_ASSETS not set (needs kube-apiserver and etcd)")
        #expect(EnvtestControlPlane.assets(environment: [:], controllerManager: true).reason
            == "KUBEBUILDER_ASSETS not set (needs kube-apiserver, kube-controller-manager and etcd)")
        let dir = try makeTempDirectory("portway-kcfg")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(EnvtestControlPlane.assets(environment: ["KUBEBUILDER_ASSETS": dir]).reason.contains("no executable kube-apiserver"))
        for name in ["kube-apiserver", "etcd"] {
            try "#!/bin/sh\n".write(toFile: "\(dir)/\(name)", atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: "\(dir)/\(name)")
        }
        #expect(EnvtestControlPlane.assets(environment: ["KUBEBUILDER_ASSETS": dir]).path == dir)
        #expect(EnvtestControlPlane.assets(environment: ["KUBEBUILDER_ASSETS": dir], controllerManager: true).reason.contains("no executable kube-controller-manager"))
    }

    @Test("in CI (or with PORTWAY_REQUIRE_CONTROL_PLANE=1) a missing control plane is a failure, not a skip")
    func requiredInCI() {
        #expect(EnvtestControlPlane.required(environment: ["CI": "true"]))
        #expect(EnvtestControlPlane.required(environment: ["PORTWAY_REQUIRE_CONTROL_PLANE": "1"]))
        #expect(!EnvtestControlPlane.required(environment: [:]))
        #expect(!EnvtestControlPlane.required(environment: ["CI": "false"]))
    }

    @Test("the kubeconfig the harness writes loads with the client's own loader")
    func kubeconfigRoundTrip() throws {
        let dir = try makeTempDirectory("portway-kcfg")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = EnvtestControlPlane.kubeconfig(server: "https://127.0.0.1:6443", caData: Data("CA".utf8), token: "t0k", user: "system:serviceaccount:a:b")
        try text.write(toFile: "\(dir)/config", atomically: true, encoding: .utf8)
        let config = try ClusterConfig.load(kubeconfig: "\(dir)/config", context: nil)
        #expect(config.server == "https://127.0.0.1:6443")
    }

    @Test("CEL validation rules are stripped at every depth for servers that reject them")
    func stripValidations() throws {
        let crd: [String: Any] = ["spec": ["versions": [["schema": ["openAPIV3Schema": ["x-kubernetes-validations": [["rule": "self.a"]], "properties": ["a": ["type": "string", "x-kubernetes-validations": [["rule": "x"]]]]]]]]]]
        let stripped = EnvtestControlPlane.strip(crd, key: "x-kubernetes-validations")
        let json = String(decoding: try JSONSerialization.data(withJSONObject: stripped), as: UTF8.self)
        #expect(!json.contains("x-kubernetes-validations"))
        #expect(json.contains("\"type\":\"string\""))
    }
}
