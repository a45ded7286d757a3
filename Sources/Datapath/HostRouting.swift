import CLibBPF
import CPortwayBPF
import Foundation

/// Whether the programs forward translated packets themselves (eBPF host routing:
/// bpf_fib_lookup + bpf_redirect / bpf_redirect_neigh, bypassing the stack's forwarding and
/// netfilter) or leave forwarding to the stack, and why.
public struct HostRoutingMode: Sendable, Equatable, CustomStringConvertible {
    public var enabled: Bool
    /// Why: the flag, or what the kernel lacks.
    public var reason: String

    public var description: String { "host routing \(enabled ? "on" : "off") (\(reason))" }

    /// The mode for a request (`--no-host-routing` turns it off), given what this kernel offers.
    public static func decide(requested: Bool) -> HostRoutingMode {
        guard requested else { return HostRoutingMode(enabled: false, reason: "--no-host-routing: the stack forwards") }
        guard portway_dp_have_host_routing() == 1 else {
            return HostRoutingMode(enabled: false, reason: "the kernel lacks bpf_redirect_neigh/bpf_fib_lookup for tc: the stack forwards")
        }
        return HostRoutingMode(enabled: true, reason: "bpf_fib_lookup + bpf_redirect_neigh, bypassing the stack's forwarding")
    }

    /// The mode compiled into a loaded program (read from its configuration), or nil if the
    /// program has none (an older object) or cannot be read.
    public static func ofProgram(id: UInt32) -> HostRoutingMode? {
        var config = pw_dp_config()
        let rc = withUnsafeMutableBytes(of: &config) { portway_dp_prog_config(id, $0.baseAddress, UInt32($0.count)) }
        guard rc == 0 else { return nil }
        if config.flags & UInt32(PW_CFG_HOST_ROUTING) != 0 {
            return HostRoutingMode(enabled: true, reason: "bpf_fib_lookup + bpf_redirect_neigh, bypassing the stack's forwarding")
        }
        if config.flags & UInt32(PW_CFG_HOST_ROUTING_UNSUPPORTED) != 0 {
            return HostRoutingMode(enabled: false, reason: "the kernel lacks bpf_redirect_neigh/bpf_fib_lookup for tc: the stack forwards")
        }
        return HostRoutingMode(enabled: false, reason: "--no-host-routing: the stack forwards")
    }
}
