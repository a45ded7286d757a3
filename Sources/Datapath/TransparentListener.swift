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
    public static func openTCP(port: UInt16, address: String = "0.0.0.0", backlog: Int32 = 1024) throws -> Int32 {
        let fd = try bound(type: SOCK_STREAM, port: port, address: address)
        guard listen(fd, backlog) == 0 else {
            let err = errno
            close(fd)
            throw Failure(step: "listen", errno: err)
        }
        return fd
    }

    /// A UDP socket with IP_TRANSPARENT bound to `address:port`. Datagrams handed to it keep the
    /// frontend as destination; enable IP_RECVORIGDSTADDR on it to read that per datagram.
    public static func openUDP(port: UInt16, address: String = "0.0.0.0") throws -> Int32 {
        try bound(type: SOCK_DGRAM, port: port, address: address)
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

    private static func bound(type: __socket_type, port: UInt16, address: String) throws -> Int32 {
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
