import LoadBalancer

/// The table header, as Cilium prints it.
public let lbTableHeader = ("SERVICE ADDRESS", "BACKEND ADDRESS (REVNAT_ID) (SLOT)")

/// Renders the `bpf lb list` table: per frontend a master line (slot 0)
/// `10.96.0.10:53/UDP (0)  0.0.0.0:0 (3) (0) [ClusterIP, non-routable]`, with
/// `(L7LB Proxy Port: N)` appended for L7LB frontends, then one line per backend slot
/// `10.96.0.10:53/UDP (1)  10.244.0.141:53/UDP (3) (1)` (a backend that is not active ends with
/// its state, e.g. `[terminating]`). The first column is padded so the second lines up.
public func renderLBTable(_ rows: [LBTableRow]) -> String {
    var lines: [(String, String)] = [lbTableHeader]
    for row in rows {
        let entry = row.entry
        let revNat = row.revNatID.map(String.init) ?? "-"
        let none = entry.frontend.address.ipv4 != nil ? "0.0.0.0:0" : "[::]:0"
        var master = "\(none) (\(revNat)) (0) [\(entry.flags.names.joined(separator: ", "))]"
        if let port = entry.l7ProxyPort { master += " (L7LB Proxy Port: \(port))" }
        lines.append(("\(entry.frontend) (0)", master))
        for (i, backend) in entry.backends.enumerated() {
            let slot = row.slots.flatMap { i < $0.count ? $0[i] : nil } ?? i + 1
            var line = "\(backendAddress(backend)) (\(revNat)) (\(slot))"
            if backend.state != .active { line += " [\(backend.state.rawValue)]" }
            lines.append(("\(entry.frontend) (\(slot))", line))
        }
    }
    let width = lines.map(\.0.count).max() ?? 0
    var out = ""
    for (first, second) in lines {
        out += first + String(repeating: " ", count: width - first.count + 2) + second + "\n"
    }
    return out
}

/// The table of a translation: no IDs are known, so reverse-NAT IDs print as `-` and slots
/// follow the backend order.
public func renderLBTable(_ state: DesiredL4State) -> String {
    renderLBTable(state.entries.map { LBTableRow(entry: $0) })
}

/// `10.244.0.141:53/UDP`, or `[fd00::1]:53/UDP` for IPv6.
func backendAddress(_ backend: Backend) -> String {
    switch backend.address {
    case .v4(let a): "\(a):\(backend.port)/\(backend.proto.rawValue)"
    case .v6(let a): "[\(a)]:\(backend.port)/\(backend.proto.rawValue)"
    }
}
