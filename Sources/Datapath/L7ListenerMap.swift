import CLibBPF
import CPortwayBPF
import Foundation

/// The L7 proxy's listening sockets as the datapath finds them: the SOCKHASH `pw_l7_listeners`
/// (created and pinned under the bpffs directory by the loader), proxy port → listener.
///
/// `pw_sk_lookup`, on the node's network namespace, steers a TCP connection for an L7LB frontend
/// to the listener registered for its proxy port through the kernel's own socket lookup, so a SYN
/// that meets the node's TIME_WAIT socket of a reused client port recycles it and is served at
/// once. A port with no registered listener is served by the tc programs' `bpf_sk_assign` as
/// before (without that TIME_WAIT handling).
///
/// There is nothing to unregister: the kernel removes an entry when its socket closes. So an agent
/// closing its listener never removes the one another agent registered over it (a take-over: the
/// second agent's SO_REUSEPORT listener replaces the first's entry, and the kernel picks among the
/// group's listeners after the program has chosen one).
public struct L7ListenerMap: Sendable, CustomStringConvertible {
    /// The pin of the map.
    public let path: String

    public init(bpffs: String) {
        path = (bpffs as NSString).appendingPathComponent(PW_MAP_L7_LISTENERS)
    }

    public var description: String { path }

    /// Why a listener could not be registered or read.
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public var step: String
        public var errno: Int32
        public var description: String { "\(step): \(errnoText(errno))" }
    }

    /// Registers `fd`, a listening TCP socket in the datapath's network namespace, as the listener
    /// of proxy port `port`, replacing the one registered before.
    public func register(port: UInt16, listener fd: Int32) throws {
        try withMap { map in
            var key = pw_l7_listener_key(proxy_port: UInt32(port))
            var value = UInt64(fd)
            guard bpf_map_update_elem(map, &key, &value, UInt64(BPF_ANY)) == 0 else {
                throw Failure(step: "registering the listener of proxy port \(port) in \(path)", errno: errno)
            }
        }
    }

    /// The socket cookie (`SO_COOKIE`) of the listener registered for `port`, nil when none is.
    public func cookie(port: UInt16) throws -> UInt64? {
        try withMap { map in
            var key = pw_l7_listener_key(proxy_port: UInt32(port))
            var value: UInt64 = 0
            guard bpf_map_lookup_elem(map, &key, &value) == 0 else {
                if errno == ENOENT { return nil }
                throw Failure(step: "reading the listener of proxy port \(port) in \(path)", errno: errno)
            }
            return value
        }
    }

    private func withMap<T>(_ body: (Int32) throws -> T) throws -> T {
        let fd = bpf_obj_get(path)
        guard fd >= 0 else { throw Failure(step: "opening \(path)", errno: errno) }
        defer { close(fd) }
        return try body(fd)
    }

    /// The socket cookie of `fd` (what `cookie(port:)` returns for it when it is registered).
    public static func cookie(of fd: Int32) throws -> UInt64 {
        var cookie: UInt64 = 0
        var len = socklen_t(MemoryLayout<UInt64>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) == 0 else { throw Failure(step: "SO_COOKIE", errno: errno) }
        return cookie
    }
}
