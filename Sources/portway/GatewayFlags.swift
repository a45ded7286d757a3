import Agent
import ArgumentParser
import GatewayCore

/// The Gateway flags every command shares (`agent`, `routes`, `explain`): one spelling, one
/// meaning, so the CLI explains exactly the Gateways the agent serves.
struct GatewayFlags: ParsableArguments {
    @Option(help: ArgumentHelp("The spec.controllerName of the GatewayClasses whose Gateways Portway serves.", valueName: "NAME"))
    var gatewayControllerName = GatewayOptions.defaultControllerName

    @Option(help: ArgumentHelp(
        "The range the Gateways' proxy ports are allocated from, FIRST-LAST (one port per Gateway listener port; kept across restarts).",
        valueName: "RANGE"))
    var proxyPorts = PortRange(GatewayPlan.defaultProxyPortRange)

    /// The Gateway options of this node (certificates checked with the proxy's TLS library).
    var gateway: GatewayOptions { .node(controllerName: gatewayControllerName) }
}

/// `FIRST-LAST`: two ports, 1-65535, the first not above the last.
struct PortRange: ExpressibleByArgument, CustomStringConvertible {
    var range: ClosedRange<UInt16>

    init(_ range: ClosedRange<UInt16>) { self.range = range }

    init?(argument: String) {
        let parts = argument.split(separator: "-")
        guard parts.count == 2, let first = UInt16(parts[0]), let last = UInt16(parts[1]), first > 0, first <= last else { return nil }
        range = first...last
    }

    var description: String { "\(range.lowerBound)-\(range.upperBound)" }
    var defaultValueDescription: String { description }
}
