import Agent
import ArgumentParser
import BPFMaps
import Datapath
import FileSource
import Foundation
import GatewayCore
import L7Proxy
import LoadBalancer
import Logging
import ServiceLifecycle

/// `portway agent`: keeps the pinned maps in sync with the cluster state (file mode: `--from-dir`).
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run the node agent: program the eBPF load balancer from the Kubernetes API (or a directory of YAML files).",
        discussion: """
        Creates (or reuses) the pinned maps under --bpffs, loads and attaches the tc programs to every \
        --device, then watches the Kubernetes API (--kubeconfig/--context; in a pod, the in-cluster config) or, with \
        --from-dir, a directory of YAML files, and keeps the maps in sync with the Services and EndpointSlices. \
        SIGINT/SIGTERM stop the agent; the pinned maps and attached programs stay, so traffic keeps flowing.
        """
    )

    @Option(name: [.customShort("f"), .customLong("from-dir")], help: ArgumentHelp("Directory of YAML files, polled for changes (instead of the Kubernetes API).", valueName: "DIR"))
    var directory: String?

    @Option(help: ArgumentHelp("kubeconfig file (default: in-cluster config in a pod, else $KUBECONFIG or ~/.kube/config).", valueName: "FILE"))
    var kubeconfig: String?

    @Option(help: ArgumentHelp("kubeconfig context (default: its current-context).", valueName: "NAME"))
    var context: String?

    @Option(name: .customLong("device"), help: ArgumentHelp("An external device to attach the datapath to, repeatable.", valueName: "DEV"))
    var devices: [String] = []

    @OptionGroup var datapathFeatures: DatapathFeatureOptions

    @Flag(help: "Program the maps only; do not load or attach the BPF programs.")
    var noDatapath = false

    @Option(help: ArgumentHelp("The compiled datapath object (default: $PORTWAY_BPF_DIR/portway_lb.o, ./bpf/out/portway_lb.o, /usr/lib/portway/portway_lb.o).", valueName: "PATH"))
    var bpfObject: String?

    @Option(help: ArgumentHelp("This node's name (default: the host name).", valueName: "NAME"))
    var nodeName: String?

    @Option(help: ArgumentHelp(
        "An IPv4 address of this node, repeatable. Default: the InternalIP/ExternalIP addresses of the Node object named --node-name in DIR.",
        valueName: "IP"))
    var nodeIP: [String] = []

    @Option(help: "Where backends come from.")
    var endpointsSource: EndpointsSource = .endpointSlices

    @Option(help: ArgumentHelp("Seconds between full resyncs (translation from scratch and a repair of the maps); 0 turns them off.", valueName: "SECONDS"))
    var resyncInterval: Double = 300

    @Option(help: ArgumentHelp("The bpffs directory for the pinned maps.", valueName: "DIR"))
    var bpffs: String = BPFFS.defaultDirectory

    @OptionGroup var gatewayLeader: GatewayLeaderOptions

    @Option(help: "max_entries of pw_lb4_services (frontends plus their backend slots).")
    var serviceMapSize: UInt32 = MapSizes.defaults.services
    @Option(help: "max_entries of pw_lb4_backends.")
    var backendMapSize: UInt32 = MapSizes.defaults.backends
    @Option(help: "max_entries of pw_lb4_reverse_nat.")
    var revnatMapSize: UInt32 = MapSizes.defaults.reverseNAT
    @Option(help: "max_entries of pw_lb4_affinity.")
    var affinityMapSize: UInt32 = MapSizes.defaults.affinity
    @Option(help: "max_entries of pw_ct4 (connection tracking).")
    var ctMapSize: UInt32 = MapSizes.defaults.connectionTracking
    @Option(help: "max_entries of pw_snat4.")
    var snatMapSize: UInt32 = MapSizes.defaults.snat

    @Option(help: ArgumentHelp(
        "How the L7 proxy binds the Gateways' proxy ports: transparent (IP_TRANSPARENT, the target of the datapath's redirect), plain (0.0.0.0), loopback, or off. Default: transparent, plain with --no-datapath.",
        valueName: "MODE"))
    var proxyListen: ProxyListenMode?

    @Option(help: "Event loop threads of the L7 proxy (default: the number of cores).")
    var proxyThreads: Int?

    @OptionGroup var gatewayFlags: GatewayFlags

    @Option(help: ArgumentHelp(
        "Client connections the L7 proxy keeps open at once, all ports together; at the limit it stops accepting (new connections wait in the listen backlog) and closes idle keep-alive connections. Default: half of (the descriptor limit minus --fd-reserve).",
        valueName: "N"))
    var proxyMaxConnections: Int?

    @Option(help: ArgumentHelp(
        "Client connections one client address may hold open at the L7 proxy; beyond it its new connections are closed at once. Default: a quarter of --proxy-max-connections, at most 1024.",
        valueName: "N"))
    var proxyMaxConnectionsPerClient: Int?

    @Option(help: ArgumentHelp(
        "How the L7 proxy treats request paths before routing and forwarding: standard (percent-encoded unreserved characters decoded, dot segments removed, repeated slashes merged: what a normalizing backend would serve) or none (validated only). See docs/L7PROXY.md.",
        valueName: "MODE"))
    var proxyPathNormalization: PathNormalizationMode = .standard

    @Option(help: ArgumentHelp(
        "What the L7 proxy does with %2F and %5C in a path: reject (400), keep (routed and forwarded escaped) or unescape (decoded before normalizing; %5C is still refused).",
        valueName: "ACTION"))
    var proxyEscapedSlashes: PathNormalization.EscapedSlashes = .reject

    @Option(help: ArgumentHelp(
        "File descriptors kept for the agent's own work (maps, the API, files) when the proxy's connection limit is derived from the process's descriptor limit.",
        valueName: "N"))
    var fdReserve: Int = 256

    @Flag(help: ArgumentHelp(
        "Take over from the agent running on the same --bpffs without refusing a Gateway connection: listen on the proxy ports it programmed (SO_REUSEPORT) at once, wait for it to stop (SIGTERM it), then serve. Transparent proxy mode."))
    var takeOver = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func validate() throws {
        if let bad = nodeIP.first(where: { IPAddress($0) == nil }) { throw ValidationError("--node-ip \"\(bad)\" is not an IP address") }
        if !(resyncInterval >= 0) { throw ValidationError("--resync-interval must be 0 (off) or a number of seconds") }
        if Logger.Level(rawValue: logLevel) == nil { throw ValidationError("unknown --log-level \(logLevel)") }
        if devices.isEmpty && !noDatapath { throw ValidationError("give at least one --device (or --no-datapath to program the maps only)") }
        if let proxyThreads, proxyThreads < 1 { throw ValidationError("--proxy-threads must be at least 1") }
        if let proxyMaxConnections, proxyMaxConnections < 1 { throw ValidationError("--proxy-max-connections must be at least 1") }
        if let proxyMaxConnectionsPerClient, proxyMaxConnectionsPerClient < 1 {
            throw ValidationError("--proxy-max-connections-per-client must be at least 1")
        }
        if fdReserve < 0 { throw ValidationError("--fd-reserve must not be negative") }
        if let name = nodeName, name.isEmpty { throw ValidationError("--node-name must not be empty") }
        try gatewayLeader.validate()
        if directory != nil, kubeconfig != nil || context != nil { throw ValidationError("--from-dir reads files; it cannot be combined with --kubeconfig/--context") }
        if let directory {
            // A mistyped directory is an error now, not an empty state later.
            do { try FileSource.checkDirectory(directory) } catch { throw ValidationError("--from-dir: \(error)") }
        }
        for (flag, size) in [("--service-map-size", serviceMapSize), ("--backend-map-size", backendMapSize), ("--revnat-map-size", revnatMapSize),
                             ("--affinity-map-size", affinityMapSize), ("--ct-map-size", ctMapSize), ("--snat-map-size", snatMapSize)] where size == 0 {
            throw ValidationError("\(flag) must be at least 1")
        }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "portway.agent")
        // First: from here on SIGINT/SIGTERM never get the default action (see ShutdownSignals).
        let shutdown = ShutdownTrigger()
        let signals = ShutdownSignals { signal in
            logger.notice("signal \(signal): shutting down")
            shutdown.trigger()
        }
        let sizes = MapSizes(
            services: serviceMapSize, backends: backendMapSize, reverseNAT: revnatMapSize, affinity: affinityMapSize,
            connectionTracking: ctMapSize, snat: snatMapSize)
        var options = AgentOptions(
            nodeName: nodeName ?? ProcessInfo.processInfo.hostName, nodeAddresses: nodeIP.compactMap { IPAddress($0) },
            endpointsSource: endpointsSource, bpffs: bpffs, mapSizes: sizes,
            resyncInterval: resyncInterval > 0 ? .milliseconds(Int64(resyncInterval * 1000)) : nil)
        options.proxyPorts = gatewayFlags.proxyPorts.range
        // The proxy serves the Gateways of the class the leader writes status for, with the same certificate check.
        options.gateway = gatewayFlags.gateway
        let installer: DatapathInstaller?
        if noDatapath {
            installer = nil
        } else {
            let devices = devices, bpfObject = bpfObject, features = datapathFeatures
            installer = { maps in
                let byName = Dictionary(uniqueKeysWithValues: MapKind.allCases.map { ($0.pinName, maps[$0].maxEntries) })
                let options = features.options(devices: devices, bpffs: maps.directory, objectPath: bpfObject, mapSizes: byName)
                return try Datapath.install(options).map(\.description) + [Datapath.hostRouting(options)?.description ?? "host routing unknown"]
            }
        }
        let listen = proxyListen ?? (noDatapath ? .plain : .transparent)
        var preopened: [UInt16: CInt] = [:]
        if takeOver {
            options.waitForPinDirectory = true
            if listen == .transparent { preopened = Self.preopenProgrammedProxyPorts(bpffs: bpffs, logger: logger) }
        }
        // Every connection the proxy accepts costs a descriptor: take the hard limit, and keep a reserve.
        let descriptors = ConnectionLimits.raiseFileDescriptorLimit()
        var proxyOptions = ProxyOptions()
        proxyOptions.maxConnections = proxyMaxConnections
        proxyOptions.maxConnectionsPerClient = proxyMaxConnectionsPerClient
        proxyOptions.fileDescriptorReserve = fdReserve
        proxyOptions.pathNormalization = PathNormalization(
            normalize: proxyPathNormalization == .standard, escapedSlashes: proxyEscapedSlashes)
        if listen != .off {
            logger.info("proxy: \(proxyOptions.connectionLimits(fileDescriptorLimit: descriptors)) (descriptor limit \(descriptors), \(fdReserve) kept for the agent)")
        }
        let proxy = listen == .off ? nil : L7ProxyOutput(
            mode: listen, threads: proxyThreads, options: proxyOptions, retry: options.retry, preopened: preopened,
            listeners: noDatapath ? nil : L7ListenerMap(bpffs: bpffs), logger: Logger(label: "portway.proxy"))
        let pipeline = AgentPipeline(options: options, logger: logger, installer: installer, proxy: proxy)
        do {
            let services: [any ServiceLifecycle.Service]
            if let directory {
                let source = FileDirectorySource(directory: directory, logger: Logger(label: "portway.source.files"))
                services = try await shutdown.unlessTriggered { try await pipeline.services(source: source) }
            } else {
                let kube = try KubeClusterSource.fromConfiguration(kubeconfig: kubeconfig, context: context, scope: options.watchScope)
                if gatewayLeader.leaderElection {
                    // Every agent folds the Gateway state; the one holding the Lease writes Services and status.
                    let leader = GatewayLeadership(source: kube, identity: options.nodeName, settings: gatewayLeader.settings(controllerName: gatewayFlags.gatewayControllerName))
                    let source = ForwardingSource(kube) { leader.controller.send(.source($0)) }
                    services = try await shutdown.unlessTriggered { try await pipeline.services(source: source) } + [leader.controller, leader.election]
                } else {
                    services = try await shutdown.unlessTriggered { try await pipeline.services(source: kube) }
                }
            }
            var configuration = ServiceGroupConfiguration(services: services.map { .init(service: $0) }, logger: logger)
            configuration.maximumGracefulShutdownDuration = ShutdownTrigger.gracefulShutdownLimit
            let group = ServiceGroup(configuration: configuration)
            try await shutdown.run(group)
            logger.info("stopped; pinned maps (and attached programs) stay in place")
            // The map writer among the services holds the pin directory's lock: kept until the
            // process exits, so an agent waiting to take over writes only once this one is gone.
            withExtendedLifetime(services) {}
        } catch is CancellationError {
            logger.info("stopped before the first sync; pinned maps (and attached programs) stay in place")
        } catch {
            logger.critical("\(error)")
            throw ExitCode.failure
        }
        _ = signals
    }

    /// The takeover's first step: a transparent SO_REUSEPORT listener on every proxy port the pinned
    /// maps send Gateway traffic to. The kernel queues new connections on them while this agent waits
    /// for the pins; once the previous agent closes its listeners they get every new connection.
    /// Nothing is read from them until this agent serves. Best effort: without pins, none.
    static func preopenProgrammedProxyPorts(bpffs: String, logger: Logger) -> [UInt16: CInt] {
        guard let maps = try? MapSet.openExisting(bpffs: bpffs), let listing = try? LBListing.read(from: maps) else { return [:] }
        var sockets: [UInt16: CInt] = [:]
        for port in Set(listing.rows.compactMap(\.row.entry.l7ProxyPort)).sorted() {
            do {
                sockets[port] = try TransparentListener.openTCP(port: port, reusePort: true)
            } catch {
                logger.warning("take-over: cannot listen on proxy port \(port) yet: \(error)")
            }
        }
        logger.notice("take-over: listening on proxy ports \(sockets.keys.sorted()); serving once the previous agent stops")
        return sockets
    }
}

extension ProxyListenMode: ExpressibleByArgument {}
extension PathNormalization.EscapedSlashes: ExpressibleByArgument {}

/// `--proxy-path-normalization`.
enum PathNormalizationMode: String, CaseIterable, ExpressibleByArgument {
    case standard, none
}
