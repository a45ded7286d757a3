import KubeModels

/// CA certificates read from ConfigMaps (`ca.crt`), for frontend client-certificate validation
/// and BackendTLSPolicy alike: the ConfigMap must exist with a non-empty `ca.crt` that the
/// validator takes. Each ConfigMap's PEM is checked once per build, however many listeners or
/// policies name it.
struct CABundleReader {
    let validator: CACertificateValidator
    private var verdicts: [NamespacedName: String?] = [:]

    init(validator: @escaping CACertificateValidator) {
        self.validator = validator
    }

    /// The PEM of `configMap` (named `target`; nil when it does not exist), or why it cannot be
    /// used: a message for the reason `InvalidCACertificateRef`, naming the ConfigMap.
    mutating func pem(of configMap: ConfigMap?, _ target: NamespacedName) -> Result<[UInt8], CABundleProblem> {
        guard let configMap else { return .failure(CABundleProblem(message: "ConfigMap \(target) does not exist")) }
        guard let text = configMap.caCertificate, !text.isEmpty else {
            return .failure(CABundleProblem(message: "ConfigMap \(target) has no \(ConfigMap.caCertificateKey)"))
        }
        let pem = Array(text.utf8)
        let verdict: String?
        if let checked = verdicts[target] {
            verdict = checked
        } else {
            verdict = validator(pem)
            verdicts[target] = .some(verdict)
        }
        if let verdict { return .failure(CABundleProblem(message: "ConfigMap \(target): \(ConfigMap.caCertificateKey) \(verdict)")) }
        return .success(pem)
    }

    /// `bundle` with `pem` appended, on a line of its own.
    static func append(_ pem: [UInt8], to bundle: inout [UInt8]) {
        if !bundle.isEmpty, bundle.last != UInt8(ascii: "\n") { bundle.append(UInt8(ascii: "\n")) }
        bundle += pem
    }
}

/// Why a ConfigMap's CA certificate cannot be used (reason `InvalidCACertificateRef`).
struct CABundleProblem: Error {
    let message: String
}
