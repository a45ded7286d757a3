import Foundation
import Runtime
import Synchronization
import KubeModels

/// The informer's state machine.
///
///     idle ──start──▶ listing ──ok, watch answered 200──▶ watching(rv) ──stream ended (timeout)──▶ watching(rv)
///                       │  ▲              │ ADDED/MODIFIED/DELETED/BOOKMARK: rv advances, stay
///                  error│  │              │ ERROR 410 event or HTTP 410 ──▶ relisting
///                       ▼  │              │ 429 / 5xx / transport error / stall ──▶ backingOff(.rewatch)
///             backingOff(.relist)         │ other ERROR event / 4xx ──▶ backingOff(.relist)
///                                         ▼
///     relisting ──ok──▶ watching (the list is diffed against the store: deletes for objects gone)
///     backingOff(next) ──delay with jitter──▶ next (relist, or rewatch from the last rv: no relist)
///     listing/relisting ──404, `absentIsEmpty` (or 403, `forbiddenIsEmpty`)──▶ absent (store emptied, synced) ──absentRetry──▶ relisting
///     any ──task cancelled──▶ stopped
public enum InformerState: Sendable, Equatable, CustomStringConvertible {
    public enum Next: Sendable, Equatable {
        case relist
        case rewatch
    }
    case idle
    case listing
    case watching(resourceVersion: String)
    /// `reason`: the error that caused it, for logs ("forbidden: list endpointslices ...").
    case backingOff(Next, delay: Duration, reason: String)
    case relisting
    /// The resource does not exist on the server (its CRD is not installed), or may not be read:
    /// taken as empty, the list retried after `retryIn`. Only with `InformerOptions.absentIsEmpty`
    /// (404) or `forbiddenIsEmpty` (403).
    case absent(retryIn: Duration, reason: String)
    case stopped

    public var description: String {
        switch self {
        case .idle: "idle"
        case .listing: "listing"
        case .watching(let rv): "watching(rv=\(rv))"
        case .backingOff(let next, let delay, let reason): "backingOff(\(next), \(delay.shortDescription)): \(reason)"
        case .relisting: "relisting"
        case .absent(let delay, let reason): "absent(retry in \(delay.shortDescription)): \(reason)"
        case .stopped: "stopped"
        }
    }
}

/// How an informer lists and watches.
public struct InformerOptions: Sendable {
    public var list: ListOptions
    public var pageSize: Int
    /// Each watch asks the server to end it after a random number of seconds in this range.
    public var watchTimeoutSeconds: ClosedRange<Int>
    /// How long past its timeout a silent watch is kept before it is closed and restarted.
    public var stallMargin: Duration
    public var backoff: BackoffPolicy
    /// A list answering 404 means "no such resource here" (an optional CRD): the store becomes
    /// empty and synced (so nothing waits for it) and the list is retried every `absentRetry`.
    public var absentIsEmpty: Bool
    /// A list answering 403 is taken as empty the same way (a kind the agent can do without,
    /// whose RBAC an operator may not have granted: it must not hold back the first snapshot).
    public var forbiddenIsEmpty: Bool = false
    public var absentRetry: Duration
    /// Injectable sleep (tests make backoff instantaneous and observable).
    public var sleep: @Sendable (Duration) async throws -> Void

    public init(
        list: ListOptions = ListOptions(), pageSize: Int = 500, watchTimeoutSeconds: ClosedRange<Int> = 300...600,
        stallMargin: Duration = .seconds(30), backoff: BackoffPolicy = BackoffPolicy(),
        absentIsEmpty: Bool = false, absentRetry: Duration = .seconds(60),
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    ) {
        self.list = list
        self.pageSize = pageSize
        self.watchTimeoutSeconds = watchTimeoutSeconds
        self.stallMargin = stallMargin
        self.backoff = backoff
        self.absentIsEmpty = absentIsEmpty
        self.absentRetry = absentRetry
        self.sleep = sleep
    }
}

/// List-then-watch for one resource, keeping a Store and delivering add/update/delete events.
/// `run()` loops until its task is cancelled.
public final class Informer<R: KubeResource>: Sendable {
    public let client: KubeClient
    public let options: InformerOptions
    public let store = Store<R>()
    private let handler: @Sendable (InformerEvent<R>) -> Void
    private let stateObserver: @Sendable (InformerState) -> Void
    private let currentState = Mutex<InformerState>(.idle)
    private let syncWaiters = Mutex(SyncWaiters())

    /// Who waits for the first list, and whether `run` has ended (then nobody waits).
    private struct SyncWaiters {
        var waiting: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextID: UInt64 = 0
        var stopped = false
    }

    /// - Parameters:
    ///   - handler: called for each change, in order, from the informer's task.
    ///   - onStateChange: called on every state transition (logging, metrics, tests).
    public init(
        client: KubeClient, options: InformerOptions = InformerOptions(),
        onStateChange: @escaping @Sendable (InformerState) -> Void = { _ in },
        handler: @escaping @Sendable (InformerEvent<R>) -> Void = { _ in }
    ) {
        self.client = client
        self.options = options
        self.handler = handler
        self.stateObserver = onStateChange
    }

    public var state: InformerState { currentState.withLock { $0 } }
    public var hasSynced: Bool { store.hasSynced }

    /// Returns once the first list has been applied, or when the calling task is cancelled, or
    /// once `run` has ended (a source stopping before its informers ever synced must not hang on
    /// an informer that has already stopped).
    public func waitForSync() async {
        if hasSynced { return }
        let id = syncWaiters.withLock { w in
            defer { w.nextID += 1 }
            return w.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let done = syncWaiters.withLock { w -> Bool in
                    if store.hasSynced || w.stopped || Task.isCancelled { return true }
                    w.waiting[id] = c
                    return false
                }
                if done { c.resume() }
            }
        } onCancel: {
            syncWaiters.withLock { $0.waiting.removeValue(forKey: id) }?.resume()
        }
    }

    private func transition(_ s: InformerState) {
        currentState.withLock { $0 = s }
        stateObserver(s)
    }

    /// Runs the state machine until the task is cancelled.
    public func run() async {
        var backoff = BackoffState()
        var next: InformerState.Next = .relist
        var resourceVersion = ""
        syncWaiters.withLock { $0.stopped = false }
        transition(.idle)
        while !Task.isCancelled {
            // List (first time or relist), then watch until something breaks.
            if next == .relist {
                transition(store.hasSynced ? .relisting : .listing)
                do {
                    let list = try await client.list(R.self, options: options.list, pageSize: options.pageSize)
                    let events = store.replace(with: list.items)
                    resourceVersion = list.resourceVersion
                    // The list's events before the waiters: a first snapshot built from the store
                    // once they resume already holds them (sent after it, they were every object twice).
                    for e in events { handler(e) }
                    resumeSyncWaiters()
                } catch let error as KubeAPIError where (error.code == 404 && options.absentIsEmpty) || (error.code == 403 && options.forbiddenIsEmpty) {
                    if Task.isCancelled { break }
                    // Objects seen before (the CRD was removed) are deleted; waiters stop waiting.
                    let events = store.replace(with: [])
                    resourceVersion = ""
                    for e in events { handler(e) }
                    resumeSyncWaiters()
                    backoff = BackoffState()
                    transition(.absent(retryIn: options.absentRetry, reason: error.description))
                    do { try await options.sleep(options.absentRetry) } catch { break }
                    continue
                } catch {
                    if Task.isCancelled { break }
                    let delay = backoff.next(policy: options.backoff, now: .now)
                    transition(.backingOff(.relist, delay: delay, reason: "\(error)"))
                    do { try await options.sleep(delay) } catch { break }
                    continue
                }
            }
            let outcome = await watchOnce(from: &resourceVersion)
            if Task.isCancelled { break }
            switch outcome {
            case .ended:
                next = .rewatch
            case .expired:
                next = .relist
            case .failed(let then, let reason):
                next = then
                let delay = backoff.next(policy: options.backoff, now: .now)
                transition(.backingOff(then, delay: delay, reason: reason))
                do { try await options.sleep(delay) } catch { break }
            }
        }
        transition(.stopped)
        resumeSyncWaiters(stopping: true)
    }

    /// Resumes the waiters once synced; `stopping` (the end of `run`) resumes them anyway, and
    /// so does every `waitForSync` from then on.
    private func resumeSyncWaiters(stopping: Bool = false) {
        guard stopping || store.hasSynced else { return }
        let waiters = syncWaiters.withLock { w -> [CheckedContinuation<Void, Never>] in
            defer { w.waiting = [:] }
            if stopping { w.stopped = true }
            return Array(w.waiting.values)
        }
        for w in waiters { w.resume() }
    }

    enum WatchOutcome {
        /// The server closed the stream normally (its timeout): watch again from the last rv.
        case ended
        /// 410: the rv is too old; relist.
        case expired
        case failed(then: InformerState.Next, reason: String)
    }

    private func watchOnce(from resourceVersion: inout String) async -> WatchOutcome {
        let timeout = Int.random(in: options.watchTimeoutSeconds)
        // `watching` only once the server has answered: "watching again" must mean it.
        let from = resourceVersion
        let stream = client.watch(R.self, options: WatchOptions(
            list: options.list, resourceVersion: resourceVersion, allowBookmarks: true,
            timeoutSeconds: timeout, stallMargin: options.stallMargin)) { [self] in transition(.watching(resourceVersion: from)) }
        do {
            for try await event in stream {
                switch event {
                case .added(let o), .modified(let o):
                    handler(store.upsert(o))
                    if let rv = o.metadata.resourceVersion { resourceVersion = rv }
                case .deleted(let o):
                    handler(store.remove(o))
                    if let rv = o.metadata.resourceVersion { resourceVersion = rv }
                case .bookmark(let rv):
                    if !rv.isEmpty { resourceVersion = rv }
                case .error(let status):
                    if status.code == 410 || status.reason == "Expired" || status.reason == "Gone" { return .expired }
                    return .failed(then: .relist, reason: "watch ERROR event: \(status.message ?? status.reason ?? "unknown")")
                }
                currentState.withLock { $0 = .watching(resourceVersion: resourceVersion) }
            }
            return .ended
        } catch let error as KubeAPIError {
            if error.isExpired { return .expired }
            if case .transport(let t) = error.kind, t.isTimeout, t.afterResponseHead {
                // A stream silent past its timeout + margin: close it and start a new one at once.
                return .ended
            }
            return .failed(then: error.isRetryable ? .rewatch : .relist, reason: error.description)
        } catch {
            return .failed(then: .rewatch, reason: "\(error)")
        }
    }
}
