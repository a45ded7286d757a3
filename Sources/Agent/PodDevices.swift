import BPFMaps
import Datapath
import Foundation
import Logging
import Runtime
import ServiceLifecycle
import Synchronization

/// The datapath's attachments while the agent runs: the external devices are fixed, the pods'
/// host-side devices follow the pods. The pipeline's installer calls `install(maps:)` once, when
/// the pins are taken; `PodDeviceWatcher` calls `setPodDevices(_:)` when the devices change, which
/// loads the programs again with the new set (the pinned links of devices that stay are swapped in
/// place, atomically: their traffic is not interrupted), attaches to the new devices, and unpins
/// the links of devices that went away (the kernel detached those with the device).
public final class DatapathController: Sendable {
    private struct State {
        var maps: MapSet?
        var podDevices: [String]
    }
    private let state: Mutex<State>
    /// Serializes installs (the pipeline's first one and the watcher's).
    private let installing = Mutex(())
    private let options: @Sendable (_ podDevices: [String], _ bpffs: String, _ mapSizes: [String: UInt32]) -> DatapathOptions

    /// - Parameter options: the datapath options for a set of pod devices (the rest is fixed).
    public init(
        podDevices: [String],
        options: @escaping @Sendable (_ podDevices: [String], _ bpffs: String, _ mapSizes: [String: UInt32]) -> DatapathOptions
    ) {
        state = Mutex(State(maps: nil, podDevices: podDevices))
        self.options = options
    }

    /// The pod devices attached (or to attach at the first install).
    public var podDevices: [String] { state.withLock { $0.podDevices } }

    /// The pipeline's installer: loads and attaches with the current pod devices. Blocking.
    public func install(maps: MapSet) throws -> [String] {
        try installing.withLock { _ in
            let devices = state.withLock { s -> [String] in
                s.maps = maps
                return s.podDevices
            }
            let options = options(devices, maps.directory, Self.sizes(maps))
            let attached = try Datapath.install(options)
            Datapath.pruneLinks(options)
            return attached.map(\.description) + [Datapath.hostRouting(options)?.description ?? "host routing unknown"]
        }
    }

    /// A new set of pod devices: installs again when it differs and the datapath is installed
    /// (before that, the first install takes it). Blocking. Returns what changed, nil when nothing did.
    public func setPodDevices(_ devices: [String]) throws -> (added: [String], removed: [String])? {
        try installing.withLock { _ in
            let (previous, maps) = state.withLock { s -> ([String], MapSet?) in
                defer { s.podDevices = devices }
                return (s.podDevices, s.maps)
            }
            guard previous != devices else { return nil }
            let change = (added: devices.filter { !previous.contains($0) }, removed: previous.filter { !devices.contains($0) })
            guard let maps else { return change }
            let options = options(devices, maps.directory, Self.sizes(maps))
            do {
                try Datapath.install(options)
            } catch {
                // Keep the old set so the next change (or rescan) tries again.
                state.withLock { $0.podDevices = previous }
                throw error
            }
            Datapath.pruneLinks(options)
            return change
        }
    }

    private static func sizes(_ maps: MapSet) -> [String: UInt32] {
        Dictionary(uniqueKeysWithValues: MapKind.allCases.map { ($0.pinName, maps[$0].maxEntries) })
    }
}

/// Follows the pods' host-side devices of the node (`--auto-pod-devices`): rtnetlink link
/// notifications wake it, it lists the links again and hands the new set to the
/// `DatapathController`. Why netlink rather than the Pods of the node from the API server: the
/// device is what the programs attach to, it exists before the Pod's status names an IP and after
/// the API server has forgotten the Pod, and the kernel tells about it at once, without RBAC on
/// Pods or a mapping from Pod to device that depends on the CNI. A failed attach is retried at the
/// next change and every `rescan`.
public struct PodDeviceWatcher: ServiceLifecycle.Service {
    let controller: DatapathController
    let external: [String]
    let prefix: String
    let rescan: Duration
    let logger: Logger

    public init(controller: DatapathController, external: [String], prefix: String, rescan: Duration = .seconds(30), logger: Logger) {
        self.controller = controller
        self.external = external
        self.prefix = prefix
        self.rescan = rescan
        self.logger = logger
    }

    /// The pod devices now.
    public static func scan(external: [String], prefix: String) throws -> [String] {
        NetworkDevices.podDevices(try NetworkDevices.list(), prefix: prefix, excluding: external)
    }

    public func run() async throws {
        let stop = LockBox(false)
        // Its own blocking executor: the netlink wait blocks (in short waits, so a stop is seen).
        let executor = BlockingExecutor(label: "portway.pod-devices")
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                _ = try? await executor.run { [controller, external, prefix, rescan, logger] in
                    let events: LinkEvents
                    do { events = try LinkEvents() } catch {
                        logger.error("pod devices: \(error); pods that start later get no tc programs")
                        return
                    }
                    var lastScan = ContinuousClock.now
                    var changed = true
                    while !stop.value.withLock({ $0 }) {
                        if changed || ContinuousClock.now - lastScan > rescan {
                            lastScan = ContinuousClock.now
                            do {
                                let devices = try Self.scan(external: external, prefix: prefix)
                                if let change = try controller.setPodDevices(devices) {
                                    logger.info("pod devices: attached \(change.added), detached \(change.removed); now \(devices.count)")
                                }
                            } catch {
                                logger.warning("pod devices: \(error); retrying at the next change")
                            }
                        }
                        // Short waits: a burst of link messages (a pod's veth coming up) is taken together.
                        changed = events.wait(timeoutMilliseconds: 200)
                    }
                }
            } onCancel: {
                stop.value.withLock { $0 = true }
            }
        } onGracefulShutdown: {
            stop.value.withLock { $0 = true }
        }
    }
}
