import NIOCore
import NIOHTTP1

/// One end of a raw byte tunnel between the client and backend connections after an `Upgrade`
/// (WebSocket and the like). Both ends live on the same event loop; each reads only while its
/// partner can write (backpressure), and closing one end closes the other.
final class TunnelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: TunnelHandler?
    private var context: ChannelHandlerContext?
    private var readPending = false
    private let idleTimeout: TimeAmount
    private var lastActivity: NIODeadline = .uptimeNanoseconds(0)
    private var idleCheck: Scheduled<Void>?

    private init(idleTimeout: TimeAmount) {
        self.idleTimeout = idleTimeout
    }

    /// Two connected ends: add one to each channel. The client end closes the tunnel after
    /// `idleTimeout` without a byte either way.
    static func pair(idleTimeout: TimeAmount = .hours(1)) -> (TunnelHandler, TunnelHandler) {
        let first = TunnelHandler(idleTimeout: idleTimeout)
        let second = TunnelHandler(idleTimeout: idleTimeout)
        first.partner = second
        second.partner = first
        return (first, second)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        lastActivity = context.eventLoop.now
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleCheck?.cancel()
        idleCheck = nil
        self.context = nil
        partner = nil
    }

    /// Arms the idle check on this end (one end per tunnel watches both directions).
    func watchIdleness() {
        guard let context else { return }
        let now = context.eventLoop.now
        let last = max(lastActivity, partner?.lastActivity ?? lastActivity)
        let quiet = now - last
        if quiet >= idleTimeout {
            context.close(promise: nil)
            return
        }
        idleCheck = context.eventLoop.assumeIsolated().scheduleTask(in: idleTimeout - quiet) { [weak self] in
            self?.watchIdleness()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastActivity = context.eventLoop.now
        // Flushed at once: bytes the HTTP decoder hands over when it is removed come without a
        // read-complete, and a tunnel read is a whole socket read anyway.
        partner?.context?.writeAndFlush(data, promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let partner = self.partner
        self.partner = nil
        partner?.partner = nil
        partner?.context?.close(promise: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.resumeRead() }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if partner?.context?.channel.isWritable ?? true {
            context.read()
        } else {
            readPending = true
        }
    }

    private func resumeRead() {
        guard readPending, let context else { return }
        readPending = false
        context.read()
    }

    /// Replaces the HTTP handlers of `channel` (from `firstHTTPHandler` on) by this end: added
    /// first, so bytes the HTTP decoder held back after the upgrade reach it when it is removed.
    func install(on channel: any Channel, removing handlers: [any RemovableChannelHandler]) throws {
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(self)
        for handler in handlers { sync.removeHandler(handler, promise: nil) }
    }
}

extension ChannelPipeline.SynchronousOperations {
    /// The handlers of the given types present in the pipeline.
    func present(_ types: [any ChannelHandler.Type]) -> [any RemovableChannelHandler] {
        types.compactMap { type in
            (try? self.context(handlerType: type))?.handler as? any RemovableChannelHandler
        }
    }
}
