import BPFMaps
import GatewayCore
import L7Proxy
import LoadBalancer
import Runtime

/// What `portway agent` is told on its command line.
public struct AgentOptions: Sendable {
    /// This node's name (backends on it are local for traffic policies).
    public var nodeName: String
    /// This node's addresses (`--node-ip`); empty: the InternalIP/ExternalIP of the Node object
    /// named `nodeName` in the source (which is then watched).
    public var nodeAddresses: [IPAddress]
    public var endpointsSource: EndpointsSource
    /// The bpffs directory of the pinned maps (`--bpffs`).
    public var bpffs: String
    public var mapSizes: MapSizes
    /// How often the full path runs and the outputs are repaired (`--resync-interval`); nil: never.
    public var resyncInterval: Duration?
    /// Backoff for frontends an output failed to program.
    public var retry: BackoffPolicy
    /// Where the Gateways' L7 proxy ports are allocated.
    public var proxyPorts: ClosedRange<UInt16>
    /// Wait for the agent holding the pin directory to stop instead of failing (a takeover).
    public var waitForPinDirectory = false
    /// How the Gateways are built: Portway's controller name, and the certificate check (NIOSSL,
    /// as the proxy loads them: a Secret it refuses is reported, never served).
    public var gateway = GatewayOptions.node()

    public init(
        nodeName: String, nodeAddresses: [IPAddress] = [], endpointsSource: EndpointsSource = .endpointSlices,
        bpffs: String = BPFFS.defaultDirectory, mapSizes: MapSizes = .defaults, resyncInterval: Duration? = .seconds(300),
        retry: BackoffPolicy = .retries(), proxyPorts: ClosedRange<UInt16> = GatewayPlan.defaultProxyPortRange
    ) {
        self.nodeName = nodeName
        self.nodeAddresses = nodeAddresses
        self.endpointsSource = endpointsSource
        self.bpffs = bpffs
        self.mapSizes = mapSizes
        self.resyncInterval = resyncInterval
        self.retry = retry
        self.proxyPorts = proxyPorts
    }

    /// The translator's options (node addresses from the Node object when none are given).
    public var translatorOptions: TranslatorOptions {
        TranslatorOptions(nodeName: nodeName, nodeAddresses: nodeAddresses, endpointsSource: endpointsSource)
    }

    /// What the API source watches: no Node when `--node-ip` is given.
    public var watchScope: WatchScope {
        WatchScope(nodeName: nodeName, endpointsSource: endpointsSource, watchNode: nodeAddresses.isEmpty)
    }
}

extension GatewayOptions {
    /// The options of a node (agent, leader, `portway routes`/`explain`): certificates checked with
    /// the proxy's TLS library, so that status, the CLI and the proxy agree on every Secret.
    public static func node(controllerName: String = GatewayOptions.defaultControllerName) -> GatewayOptions {
        GatewayOptions(
            controllerName: controllerName, certificateValidator: NIOSSLCertificateValidator.validate,
            caCertificateValidator: NIOSSLCACertificateValidator.validate)
    }
}
