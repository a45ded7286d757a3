import CPortwayBPF
import Datapath
import Foundation

/// A stand-in for the L7 proxy: a `TransparentListener` on the proxy port in the node namespace
/// that answers every request line like backend.py does, with what the accepted socket shows:
/// `proxy PEER LOCAL` (PEER should be the real client, LOCAL the frontend the client dialled,
/// read with `TransparentListener.originalDestination`). With `udp`, every datagram is answered
/// the same way (LOCAL from IP_ORIGDSTADDR), sent from the frontend. Runs on its own thread until
/// `stop()`. Answering, it closes the connection first, as the proxy does after `Connection: close`.
final class ProxyStub: @unchecked Sendable {  // the fd and flag are only touched as documented
    private let fd: Int32
    private let stopped = NSLock()
    private var isStopped = false
    private let done = DispatchSemaphore(value: 0)
    private let udp: Bool
    private let name: String

    /// Opens the listener inside the namespace (the socket stays there) and starts serving. With
    /// `registerIn` (a bpffs directory), a TCP listener is registered in the datapath's
    /// `pw_l7_listeners`, as the agent registers its proxy's.
    /// `name` starts every answer; `reusePort` joins the port's SO_REUSEPORT group (a take-over).
    init(netns: String, port: UInt16, udp: Bool = false, registerIn bpffs: String? = nil, name: String = "proxy", reusePort: Bool = false) throws {
        self.udp = udp
        self.name = name
        fd = try inNetns(netns) {
            udp ? try TransparentListener.openUDP(port: port) : try TransparentListener.openTCP(port: port, reusePort: reusePort)
        }
        if let bpffs, !udp {
            do { try L7ListenerMap(bpffs: bpffs).register(port: port, listener: fd) } catch {
                close(fd)
                throw error
            }
        }
        // The serving thread lives in the namespace too: the UDP answers' sockets are made there.
        let thread = Thread { [self] in
            if portway_dp_enter_netns("/var/run/netns/\(netns)") == 0 { serve() }
            done.signal()
        }
        thread.start()
    }

    private var shouldStop: Bool {
        stopped.lock()
        defer { stopped.unlock() }
        return isStopped
    }

    private func serve() {
        while !shouldStop {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 100) > 0 else { continue }
            if udp {
                answerDatagram()
                continue
            }
            let conn = accept(fd, nil, nil)
            guard conn >= 0 else { continue }
            answer(conn)
            close(conn)
        }
    }

    /// Reads one line (bounded by a 2 s receive timeout) and answers it.
    private func answer(_ conn: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buf = [UInt8](repeating: 0, count: 512)
        var got = 0
        while got < buf.count {
            let n = buf.withUnsafeMutableBytes { recv(conn, $0.baseAddress! + got, $0.count - got, 0) }
            if n <= 0 { return }
            got += n
            if buf[0..<got].contains(UInt8(ascii: "\n")) { break }
        }
        let peer = (try? TransparentListener.client(of: conn).description) ?? "?"
        let local = (try? TransparentListener.originalDestination(of: conn).description) ?? "?"
        let reply = Array("\(name) \(peer) \(local)\n".utf8)
        _ = reply.withUnsafeBytes { send(conn, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    private func answerDatagram() {
        guard let datagram = try? TransparentListener.receive(from: fd) else { return }
        let reply = Array("\(name) \(datagram.client) \(datagram.originalDestination)\n".utf8)
        try? TransparentListener.send(reply, to: datagram.client, from: datagram.originalDestination)
    }

    /// Stops serving and closes the listener (a later client gets a reset).
    func stop() {
        stopped.lock()
        let already = isStopped
        isStopped = true
        stopped.unlock()
        if already { return }
        done.wait()
        close(fd)
    }

    /// The listener's socket cookie (what `L7ListenerMap.cookie(port:)` shows when it is registered).
    var cookie: UInt64 { (try? L7ListenerMap.cookie(of: fd)) ?? 0 }

    deinit { stop() }
}
