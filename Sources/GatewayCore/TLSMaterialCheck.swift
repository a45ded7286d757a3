// The default certificate check of the Gateway builder: the PEM structure of a kubernetes.io/tls
// Secret, in pure Swift (this module has no TLS library). It catches what users get wrong most
// (garbage, a key in tls.crt, DER instead of PEM, a truncated paste); the agent and the CLI inject a
// check that really parses the chain and the key (L7Proxy) and sees a key that does not belong to
// the certificate, which no structural check can.

extension TLSMaterial {
    /// What is wrong with the PEM structure of this certificate chain and key, nil when it looks
    /// usable: `tls.crt` must hold at least one `CERTIFICATE` block and `tls.key` an unencrypted
    /// `PRIVATE KEY` (PKCS#8), `RSA PRIVATE KEY` or `EC PRIVATE KEY` block, each properly armored
    /// (BEGIN and END lines with the same label), with a base64 body that decodes to DER (an ASN.1
    /// SEQUENCE). Text outside the blocks is ignored, as OpenSSL does.
    public static let structuralProblem: CertificateValidator = { material in
        material.structuralProblem
    }

    /// See `TLSMaterial.structuralProblem` (the closure).
    public var structuralProblem: String? {
        switch PEM.blocks(certificateChain) {
        case .failure(let problem): return "tls.crt: \(problem.message)"
        case .success(let blocks):
            guard blocks.contains(where: { $0.label == "CERTIFICATE" }) else {
                let labels = blocks.map(\.label)
                return labels.isEmpty
                    ? "tls.crt holds no PEM block (expected -----BEGIN CERTIFICATE-----)"
                    : "tls.crt holds no CERTIFICATE block (found \(labels.joined(separator: ", ")))"
            }
        }
        switch PEM.blocks(privateKey) {
        case .failure(let problem): return "tls.key: \(problem.message)"
        case .success(let blocks):
            if blocks.contains(where: { $0.label == "ENCRYPTED PRIVATE KEY" || $0.encrypted }) {
                return "tls.key holds an encrypted private key (a Secret's key must not need a passphrase)"
            }
            guard blocks.contains(where: { PEM.privateKeyLabels.contains($0.label) }) else {
                let labels = blocks.map(\.label)
                return labels.isEmpty
                    ? "tls.key holds no PEM block (expected -----BEGIN PRIVATE KEY-----)"
                    : "tls.key holds no PRIVATE KEY block (found \(labels.joined(separator: ", ")))"
            }
        }
        return nil
    }
}

/// RFC 7468 textual encoding, as far as a structural check needs it.
enum PEM {
    static let privateKeyLabels: Set<String> = ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"]

    struct Block {
        var label: String
        var der: [UInt8]
        /// RFC 1421 headers saying `Proc-Type: 4,ENCRYPTED` (the legacy OpenSSL encryption).
        var encrypted: Bool
    }

    struct Problem: Error { var message: String }

    /// The blocks of `bytes`, in order; a block that is not well formed is a problem.
    static func blocks(_ bytes: [UInt8]) -> Result<[Block], Problem> {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            return .failure(Problem(message: "not text (binary data: DER instead of PEM?)"))
        }
        var out: [Block] = []
        var open: (label: String, line: Int, body: String, encrypted: Bool)?
        for (number, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            // (A CRLF is one Character, and a separator: no "\r" is left at the end.)
            var line = Substring(rawLine)
            while let last = line.last, last == " " || last == "\t" { line.removeLast() }
            while let first = line.first, first == " " || first == "\t" { line.removeFirst() }
            if var current = open {
                if line.hasPrefix("-----END ") {
                    guard line == "-----END \(current.label)-----" else {
                        return .failure(Problem(message: "line \(number + 1): \(line) does not close -----BEGIN \(current.label)----- of line \(current.line)"))
                    }
                    guard let der = Base64.decode(current.body), !der.isEmpty else {
                        return .failure(Problem(message: "the \(current.label) block of line \(current.line) is not base64"))
                    }
                    guard der.first == 0x30 else {
                        return .failure(Problem(message: "the \(current.label) block of line \(current.line) does not hold DER (no ASN.1 SEQUENCE)"))
                    }
                    out.append(Block(label: current.label, der: der, encrypted: current.encrypted))
                    open = nil
                } else if line.hasPrefix("-----BEGIN ") {
                    return .failure(Problem(message: "line \(number + 1): a BEGIN line inside the \(current.label) block of line \(current.line) (no END line)"))
                } else if line.contains(":") {
                    // RFC 1421 encapsulated headers (legacy encrypted keys).
                    if line.hasPrefix("Proc-Type:") && line.contains("ENCRYPTED") { current.encrypted = true }
                    open = current
                } else {
                    current.body += line
                    open = current
                }
            } else if line.hasPrefix("-----BEGIN ") && line.hasSuffix("-----") && line.count > "-----BEGIN -----".count {
                let label = String(line.dropFirst("-----BEGIN ".count).dropLast(5))
                open = (label, number + 1, "", false)
            }
        }
        if let current = open {
            return .failure(Problem(message: "the \(current.label) block of line \(current.line) has no END line (truncated?)"))
        }
        return .success(out)
    }
}
