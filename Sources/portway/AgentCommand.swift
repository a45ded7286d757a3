import Agent
import ArgumentParser
import BPFMaps
import CoreMetrics
import Datapath
import FileSource
import Foundation
import GatewayCore
import KubeAPI
import KubeModels
import L7Proxy
import LoadBalancer
import Logging
import Prometheus
import Runtime
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

    @Option(name: .customLong("device"), help: ArgumentHelp(
        "An external device to attach the datapath to, repeatable. Default: the device holding the node's address (--node-ip, else the Node's InternalIP).",
        valueName: "DEV"))
    var devices: [String] = []

    @Flag(help: ArgumentHelp(
        "Attach to every pod's host-side device as pods come and go: veths whose peer is in another network namespace, named with --pod-device-prefix (netlink link notifications)."))
    var autoPodDevices = false

    @Option(help: ArgumentHelp("With --auto-pod-devices, only devices whose name starts with this (the CNI's naming: veth for the bridge plugin; empty: any).", valueName: "PREFIX"))
    var podDevicePrefix = ""

    @OptionGroup var datapathFeatures: DatapathFeatureOptions

    @Flag(help: "Program the maps only; do not load or attach the BPF programs.")
    var noDatapath = false

    @Option(help: ArgumentHelp("A datapath object file to load instead of the one embedded in the binary (default: $PORTWAY_BPF_DIR/portway_lb.o when set; development).", valueName: "PATH"))
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

    @Option(help: "Log line format: text, json or logfmt.")
    var logFormat: LogFormat = .text

    @Flag(help: "Log one line per request the L7 proxy answers (route, status, duration).")
    var proxyAccessLog = false

    @Option(help: ArgumentHelp("TCP port of the health and metrics listener (/healthz, /readyz, /metrics) on all addresses; 0: none.", valueName: "PORT"))
    var healthPort: Int = 9966

    @Option(help: ArgumentHelp("A Unix socket serving the same (for `portway probe` in the kubelet's exec probes: per pod, unlike a host-network port).", valueName: "PATH"))
    var healthSocket: String?

    func validate() throws {
        if let bad = nodeIP.first(where: { IPAddress($0) == nil }) { throw ValidationError("--node-ip \"\(bad)\" is not an IP address") }
        if !(resyncInterval >= 0) { throw ValidationError("--resync-interval must be 0 (off) or a number of seconds") }
        if Logger.Level(rawValue: logLevel) == nil { throw ValidationError("unknown --log-level \(logLevel)") }
        if devices.isEmpty && !noDatapath && directory != nil && nodeIP.isEmpty {
            throw ValidationError("give --device, or --node-ip to find the device holding it (or --no-datapath to program the maps only)")
        }
        if !(0...65535).contains(healthPort) { throw ValidationError("--health-port must be 0 (none) to 65535") }
        if autoPodDevices && noDatapath { throw ValidationError("--auto-pod-devices needs the datapath (not --no-datapath)") }
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
        HeapTrim.configureAllocator()
        let level = Logger.Level(rawValue: logLevel) ?? .info
        let format = logFormat
        LoggingSystem.bootstrap { label in
            if format == .text {
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
            return StructuredLogHandler(label: label, format: format, level: level)
        }
        let logger = Logger(label: "portway.agent")
        let nodeName = nodeName ?? ProcessInfo.processInfo.hostName
        logger.notice("portway \(portwayVersion) (commit \(portwayCommit)) starting on node \(nodeName)")
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
            nodeName: nodeName, nodeAddresses: nodeIP.compactMap { IPAddress($0) },
            endpointsSource: endpointsSource, bpffs: bpffs, mapSizes: sizes,
            resyncInterval: resyncInterval > 0 ? .milliseconds(Int64(resyncInterval * 1000)) : nil)
        options.proxyPorts = gatewayFlags.proxyPorts.range
        // The proxy serves the Gateways of the class the leader writes status for, with the same certificate check.
        options.gateway = gatewayFlags.gateway

        // Health, readiness and metrics answer from the start: a take-over stands by before it serves.
        let telemetry = AgentTelemetry(
            nodeName: nodeName, version: portwayVersion, commit: portwayCommit, resyncInterval: options.resyncInterval,
            accessLog: proxyAccessLog ? Logger(label: "portway.proxy.access") : nil)
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: telemetry.registry))
        telemetry.setPhase(takeOver ? .standby : .starting)
        let health = HealthServer(telemetry: telemetry, port: healthPort == 0 ? nil : healthPort, socketPath: healthSocket)
        do { try await health.start() } catch {
            logger.critical("health listener: \(error)")
            throw ExitCode.failure
        }

        let kube: KubeClusterSource?
        do {
            kube = directory != nil ? nil : try KubeClusterSource.fromConfiguration(
                kubeconfig: kubeconfig, context: context, scope: options.watchScope, observe: { telemetry.informer($0, $1) })
        } catch {
            logger.critical("\(error)")
            await health.close()
            throw ExitCode.failure
        }
        let controller: DatapathController?
        var external = devices
        if noDatapath {
            controller = nil
        } else {
            if external.isEmpty {
                do {
                    external = [try await Self.uplink(nodeIPs: nodeIP, nodeName: nodeName, client: kube?.client, logger: logger)]
                } catch {
                    logger.critical("\(error)")
                    await health.close()
                    throw ExitCode.failure
                }
            }
            let bpfObject = bpfObject, features = datapathFeatures, external = external
            let pods = autoPodDevices ? ((try? PodDeviceWatcher.scan(external: external, prefix: podDevicePrefix)) ?? []) : []
            controller = DatapathController(podDevices: pods) { podDevices, bpffs, mapSizes in
                var options = features.options(devices: external, bpffs: bpffs, objectPath: bpfObject, mapSizes: mapSizes)
                options.podDevices = features.podDevices + podDevices.filter { !features.podDevices.contains($0) }
                return options
            }
        }
        var installer: DatapathInstaller?
        if let controller {
            installer = { maps in try controller.install(maps: maps) }
        }
        let listen = proxyListen ?? (noDatapath ? .plain : .transparent)
        if listen == .transparent { Self.enableListenerMigration(logger: logger) }
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
        // In cluster mode the node tells the leader what its proxy serves (a Lease beside the election's).
        let reporter = listen == .off ? nil : kube.map {
            NodeReportPublisher(
                client: $0.client, namespace: gatewayLeader.namespace, node: options.nodeName, renewPeriod: .seconds(gatewayLeader.nodeReportPeriod),
                retry: options.retry)
        }
        let proxy = listen == .off ? nil : L7ProxyOutput(
            mode: listen, threads: proxyThreads, options: proxyOptions, retry: options.retry, preopened: preopened,
            listeners: noDatapath ? nil : L7ListenerMap(bpffs: bpffs), logger: Logger(label: "portway.proxy"),
            metrics: telemetry.proxyMetrics, onPending: { telemetry.proxyPortsPending($0) },
            onProgrammed: reporter.map { reporter in { @Sendable report in reporter.send(report) } },
            onRouteChange: { telemetry.routeChanged($0) })
        let pipeline = AgentPipeline(options: options, logger: logger, installer: installer, onSync: { telemetry.mapsWritten($0) }, proxy: proxy)
        do {
            var services: [any ServiceLifecycle.Service]
            if let directory {
                let source = FileDirectorySource(directory: directory, logger: Logger(label: "portway.source.files"))
                services = try await shutdown.unlessTriggered { try await pipeline.services(source: source) }
            } else if let kube {
                if gatewayLeader.leaderElection {
                    // Every agent folds the Gateway state; the one holding the Lease writes Services and status.
                    let leader = GatewayLeadership(
                        source: kube, identity: options.nodeName, settings: gatewayLeader.settings(controllerName: gatewayFlags.gatewayControllerName),
                        onLeadership: { telemetry.leadership($0) })
                    let source = ForwardingSource(kube) { leader.controller.send(.source($0)) }
                    services = try await shutdown.unlessTriggered { try await pipeline.services(source: source) } + [leader.controller, leader.election]
                } else {
                    services = try await shutdown.unlessTriggered { try await pipeline.services(source: kube) }
                }
            } else {
                services = []
            }
            if let reporter { services.append(reporter) }
            if telemetry.phase == .standby { telemetry.setPhase(.starting) }
            if let controller, autoPodDevices {
                services.append(PodDeviceWatcher(
                    controller: controller, external: external, prefix: podDevicePrefix, logger: Logger(label: "portway.devices")))
            }
            // The health listener first: a ServiceGroup stops in reverse order, so it answers to the end.
            var configuration = ServiceGroupConfiguration(services: ([health] + services).map { .init(service: $0) }, logger: logger)
            configuration.maximumGracefulShutdownDuration = ShutdownTrigger.gracefulShutdownLimit
            let group = ServiceGroup(configuration: configuration)
            try await shutdown.run(group)
            logger.info("stopped; pinned maps (and attached programs) stay in place")
            // The map writer among the services holds the pin directory's lock: kept until the
            // process exits, so an agent waiting to take over writes only once this one is gone.
            withExtendedLifetime(services) {}
        } catch is CancellationError {
            await health.close()
            logger.info("stopped before the first sync; pinned maps (and attached programs) stay in place")
        } catch {
            await health.close()
            logger.critical("\(error)")
            throw ExitCode.failure
        }
        _ = signals
    }

    /// `net.ipv4.tcp_migrate_req=1` in this network namespace: when an agent closes its proxy
    /// listeners after a take-over, the connections still queued on them move to the new agent's
    /// sockets (same port, SO_REUSEPORT) instead of being reset. Best effort, logged once when set.
    static func enableListenerMigration(logger: Logger) {
        let path = "/proc/sys/net/ipv4/tcp_migrate_req"
        guard let value = try? String(contentsOfFile: path, encoding: .utf8), value.trimmingCharacters(in: .whitespacesAndNewlines) == "0" else { return }
        do {
            try "1\n".write(toFile: path, atomically: false, encoding: .utf8)
            logger.info("set net.ipv4.tcp_migrate_req=1: connections queued on a replaced agent's proxy ports move to the new one")
        } catch {
            logger.warning("cannot set net.ipv4.tcp_migrate_req=1 (\(error)): an agent take-over may reset connections queued at that moment")
        }
    }

    /// The node's uplink: the device holding the node's address (`--node-ip`, else the InternalIP of
    /// the Node named `nodeName`, read once from the API server).
    static func uplink(nodeIPs: [String], nodeName: String, client: KubeClient?, logger: Logger) async throws -> String {
        var addresses = nodeIPs
        if addresses.isEmpty, let client {
            let node = try await client.get(Node.self, name: nodeName)
            addresses = (node.status?.addresses ?? []).filter { $0.type == "InternalIP" }.map(\.address)
            if addresses.isEmpty { throw ValidationError("Node \(nodeName) has no InternalIP: give --device") }
        }
        guard let device = NetworkDevices.deviceHolding(addresses) else {
            throw ValidationError("no device of this network namespace holds \(addresses.joined(separator: ", ")): give --device")
        }
        logger.info("uplink: \(device) (holds \(addresses.joined(separator: ", ")); --device overrides)")
        return device
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
extension LogFormat: ExpressibleByArgument {}
