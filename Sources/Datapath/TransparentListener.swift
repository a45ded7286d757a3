import CPortwayBPF
import Foundation

/// An IPv4 address and port in host form, e.g. `10.96.0.10:80`.
public struct SocketEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// Dotted-quad address.
    public var address: String
    public var port: UInt16

    public init(address: String, port: UInt16) {
        self.address = address
        self.port = port
    }

    /// From a network-order address and port.
    init(address: UInt32, port: UInt16) {
        var sa = sockaddr_in()
        sa.sin_addr.s_addr = address
        sa.sin_port = port
        self.init(sa)
    }

    init(_ sa: sockaddr_in) {
        var a = sa.sin_addr
        var buf = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        inet_ntop(AF_INET, &a, &buf, socklen_t(buf.count))
        address = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        port = UInt16(bigEndian: sa.sin_port)
    }

    public var description: String { "\(address):\(port)" }
}

/// The listening side of the L7LB redirect, for the L7 proxy.
///
/// The datapath hands connections for an L7LB frontend to the socket listening on the
/// frontend's proxy port without rewriting their addresses (bpf_sk_assign, TPROXY style). The
/// listener must carry IP_TRANSPARENT so the kernel accepts connections to addresses that are not
/// the node's own (ClusterIPs, LoadBalancer IPs) and lets the accepted socket answer from them.
/// An accepted socket's peer is the real client and its local address is the frontend the client
/// dialled: `originalDestination(of:)` reads it. The descriptors are plain sockets (SwiftNIO can
/// adopt one with `ServerBootstrap.withBoundSocket`). Needs CAP_NET_ADMIN (or CAP_NET_RAW).
public enum TransparentListener {
    /// Why a listener could not be opened.
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public var step: String
        public var errno: Int32
        public var description: String { "cannot open the L7 proxy listener: \(step): \(errnoText(errno))" }
    }

    /// A TCP socket with IP_TRANSPARENT (and SO_REUSEADDR) bound to `address:port` and listening,
    /// in the calling thread's network namespace. Returns the file descriptor (the caller closes it).
    /// With `reusePort` (SO_REUSEPORT) a second process can listen on the same port meanwhile: a
    /// new agent takes over the proxy ports before the old one closes them.
    public static func openTCP(port: UInt16, address: String = "0.0.0.0", backlog: Int32 = 1024, reusePort: Bool = false) throws -> Int32 {
        let fd = try bound(type: SOCK_STREAM, port: port, address: address, reusePort: reusePort)
        guard listen(fd, backlog) == 0 else {
            let err = errno
            close(fd)
            throw Failure(step: "listen", errno: err)
        }
        return fd
    }

    /// A UDP socket with IP_TRANSPARENT and IP_RECVORIGDSTADDR bound to `address:port`. Datagrams
    /// handed to it keep the frontend as destination: `receive(from:)` reads it per datagram, and
    /// `send(_:to:from:)` answers from it.
    public static func openUDP(port: UInt16, address: String = "0.0.0.0") throws -> Int32 {
        let fd = try bound(type: SOCK_DGRAM, port: port, address: address)
        var one: Int32 = 1
        guard setsockopt(fd, SOL_IP, IP_RECVORIGDSTADDR, &one, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            let err = errno
            close(fd)
            throw Failure(step: "setsockopt IP_RECVORIGDSTADDR", errno: err)
        }
        return fd
    }

    /// One datagram handed to the proxy: who sent it and which frontend it was addressed to.
    public struct Datagram: Sendable, Equatable {
        public var payload: [UInt8]
        public var client: SocketEndpoint
        public var originalDestination: SocketEndpoint
    }

    /// Receives one datagram on a socket from `openUDP` (blocks).
    public static func receive(from fd: Int32, maxSize: Int = 65535) throws -> Datagram {
        var buf = [UInt8](repeating: 0, count: maxSize)
        var srcAddr: UInt32 = 0, dstAddr: UInt32 = 0, srcPort: UInt16 = 0, dstPort: UInt16 = 0
        let n = buf.withUnsafeMutableBytes {
            portway_dp_recv_origdst(fd, $0.baseAddress, UInt32($0.count), &srcAddr, &srcPort, &dstAddr, &dstPort)
        }
        guard n >= 0 else { throw Failure(step: "recvmsg", errno: -n) }
        return Datagram(
            payload: Array(buf.prefix(Int(n))), client: SocketEndpoint(address: srcAddr, port: srcPort),
            originalDestination: SocketEndpoint(address: dstAddr, port: dstPort))
    }

    /// Sends `payload` to the client from the frontend it addressed (a transparent socket bound
    /// to that address, which need not be local), so a client's connected socket accepts it.
    /// The socket is made in the calling thread's network namespace: call it from the listener's.
    public static func send(_ payload: [UInt8], to client: SocketEndpoint, from frontend: SocketEndpoint) throws {
        let fd = try bound(type: SOCK_DGRAM, port: frontend.port, address: frontend.address)
        defer { close(fd) }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = client.port.bigEndian
        guard inet_pton(AF_INET, client.address, &sa.sin_addr) == 1 else { throw Failure(step: "address \(client.address)", errno: EINVAL) }
        let sent = payload.withUnsafeBytes { bytes in
            withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        guard sent == payload.count else { throw Failure(step: "sendto \(client)", errno: sent < 0 ? errno : EMSGSIZE) }
    }

    /// The frontend an accepted connection was addressed to (its local address).
    public static func originalDestination(of fd: Int32) throws -> SocketEndpoint {
        try endpoint(fd, step: "getsockname", getsockname)
    }

    /// The client of an accepted connection (its peer).
    public static func client(of fd: Int32) throws -> SocketEndpoint {
        try endpoint(fd, step: "getpeername", getpeername)
    }

    private static func endpoint(
        _ fd: Int32, step: String, _ call: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32
    ) throws -> SocketEndpoint {
        var sa = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, &len) } }
        guard rc == 0 else { throw Failure(step: step, errno: errno) }
        return SocketEndpoint(sa)
    }

    private static func bound(type: __socket_type, port: UInt16, address: String, reusePort: Bool = false) throws -> Int32 {
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        guard inet_pton(AF_INET, address, &sa.sin_addr) == 1 else { throw Failure(step: "address \(address)", errno: EINVAL) }
        let fd = socket(AF_INET, Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(step: "socket", errno: errno) }
        var one: Int32 = 1
        let size = socklen_t(MemoryLayout<Int32>.size)
        if setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, size) != 0 || setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, size) != 0 {
            let err = errno
            close(fd)
            throw Failure(step: "setsockopt IP_TRANSPARENT", errno: err)
        }
        if reusePort, setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, size) != 0 {
            let err = errno
            close(fd)
            throw Failure(step: "setsockopt SO_REUSEPORT", errno: err)
        }
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let err = errno
            close(fd)
            throw Failure(step: "bind \(address):\(port)", errno: err)
        }
        return fd
    }
}
