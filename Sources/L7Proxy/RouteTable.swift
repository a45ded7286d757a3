import NIOConcurrencyHelpers
import Synchronization

/// Holds the current route table. Swapping is atomic: each request reads the table once, when its
/// head arrives, and finishes on that table; the next request on a keep-alive connection sees the new one.
public final class RouteTableHolder: Sendable {
    private let box: Mutex<any RequestRouter>

    public init(_ router: any RequestRouter = FixedRouter.notFound) {
        self.box = Mutex(router)
    }

    /// The table new requests are routed with.
    public var current: any RequestRouter { box.withLock { $0 } }

    /// Installs a new table for every request whose head arrives from now on.
    public func swap(_ router: any RequestRouter) {
        box.withLock { $0 = router }
    }
}
