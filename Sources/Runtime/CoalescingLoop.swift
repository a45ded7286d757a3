/// The agent's one service loop: events are pushed from anywhere (sources, other services), taken
/// together — whatever arrived while the last step ran, no fixed debounce — and handed to one step
/// function, which may ask to be woken again at a deadline (a retry, a resync). The reconciler,
/// each output, the proxy output and the Gateway leader are step functions of it: batching, waking
/// and shutdown are decided here once.
public final class CoalescingLoop<Event: Sendable>: Sendable {
    private enum Item: Sendable {
        case event(Event)
        /// The timer armed for deadline number `generation` fired.
        case deadline(generation: UInt64)
    }

    private let inbox = Inbox<Item>()

    public init() {}

    /// Hands an event to the loop (from any task or thread; ignored once the loop finished).
    public func send(_ event: Event) { inbox.push(.event(event)) }

    /// Ends the loop after the events already sent.
    public func finish() { inbox.finish() }

    /// Runs steps until the calling task is cancelled or `finish` was called. `step` gets the
    /// events in arrival order (possibly none, when only its deadline passed) and whether the
    /// deadline it last asked for has passed; it returns the next deadline (nil: none). A new
    /// deadline replaces the previous one: one timer per loop.
    public func run(_ step: (_ events: [Event], _ deadlinePassed: Bool) async -> ContinuousClock.Instant?) async {
        var timer: Task<Void, Never>?
        var armed: ContinuousClock.Instant?
        var generation: UInt64 = 0
        defer { timer?.cancel() }
        while let batch = await inbox.next() {
            var events: [Event] = []
            var passed = false
            for item in batch {
                switch item {
                case .event(let event): events.append(event)
                case .deadline(let fired): if fired == generation { passed = true }
                }
            }
            // A timer that fired for a deadline since replaced wakes nobody.
            guard !events.isEmpty || passed else { continue }
            if passed { armed = nil }
            let next = await step(events, passed)
            guard next != armed else { continue }
            timer?.cancel()
            timer = nil
            armed = next
            generation &+= 1
            guard let next else { continue }
            let inbox = inbox, current = generation
            timer = Task {
                do { try await Task.sleep(until: next, clock: .continuous) } catch { return }
                inbox.push(.deadline(generation: current))
            }
        }
    }
}
