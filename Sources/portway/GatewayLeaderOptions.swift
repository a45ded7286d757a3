import Agent
import ArgumentParser
import Foundation
import GatewayCore
import LoadBalancer
import Logging

/// `portway agent` flags of the Gateway control plane's leader (cluster mode only).
struct GatewayLeaderOptions: ParsableArguments {
    @Flag(inversion: .prefixedNo, help: "Take part in the election of the agent that writes the Gateway Services and status (cluster mode).")
    var leaderElection = true

    @Option(help: ArgumentHelp("The Lease the agents elect their leader with.", valueName: "NAME"))
    var leaseName = "portway-gateway-leader"

    @Option(help: ArgumentHelp("The Lease's namespace (default: $POD_NAMESPACE, else the pod's namespace, else portway-system).", valueName: "NAMESPACE"))
    var leaseNamespace: String?

    @Option(help: ArgumentHelp("Seconds followers wait without seeing the Lease renewed before taking over.", valueName: "SECONDS"))
    var leaseDuration: Int = 15

    @Option(help: ArgumentHelp("Seconds a leader keeps leading without a successful renewal.", valueName: "SECONDS"))
    var renewDeadline: Int = 10

    @Option(help: ArgumentHelp("Seconds between reads (and the leader's renewals) of the Lease.", valueName: "SECONDS"))
    var retryPeriod: Int = 2

    @Option(help: ArgumentHelp("Seconds between renewals of this node's report Lease (what its proxy serves; stale after 4 periods without one).", valueName: "SECONDS"))
    var nodeReportPeriod: Int = 10

    @Option(help: ArgumentHelp("Type of the Gateways' Services: NodePort or LoadBalancer (a Gateway's portway.io/service-type annotation overrides it).", valueName: "TYPE"))
    var gatewayServiceType = "NodePort"

    func validate() throws {
        guard retryPeriod >= 1, renewDeadline > retryPeriod, leaseDuration > renewDeadline else {
            throw ValidationError("need 1 <= --retry-period < --renew-deadline < --lease-duration (seconds)")
        }
        guard nodeReportPeriod >= 1 else { throw ValidationError("--node-report-period must be at least 1 (seconds)") }
        guard ["NodePort", "LoadBalancer"].contains(gatewayServiceType) else {
            throw ValidationError("--gateway-service-type must be NodePort or LoadBalancer")
        }
        if leaseName.isEmpty || leaseNamespace?.isEmpty == true { throw ValidationError("--lease-name and --lease-namespace must not be empty") }
    }

    /// The namespace of the Lease: the flag, $POD_NAMESPACE, the pod's service account namespace, portway-system.
    var namespace: String {
        if let leaseNamespace { return leaseNamespace }
        if let env = ProcessInfo.processInfo.environment["POD_NAMESPACE"], !env.isEmpty { return env }
        let file = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
        if let text = try? String(contentsOfFile: file, encoding: .utf8), !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return "portway-system"
    }

    /// The leader's settings; `controllerName` is the agent's `--gateway-controller-name` (GatewayFlags).
    func settings(controllerName: String) -> GatewayLeaderSettings {
        GatewayLeaderSettings(
            leaseName: leaseName, leaseNamespace: namespace, leaseDuration: .seconds(leaseDuration), renewDeadline: .seconds(renewDeadline),
            retryPeriod: .seconds(retryPeriod), controllerName: controllerName, serviceType: gatewayServiceType)
    }
}
