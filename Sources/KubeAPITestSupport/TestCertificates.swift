import Foundation

/// A throwaway PKI for the test API server, made with the `openssl` CLI in a temp directory:
/// a CA, a serving certificate for 127.0.0.1/localhost, and a client certificate (CN given).
public struct TestCertificates: Sendable {
    public let directory: String
    public var caCertPath: String { directory + "/ca.crt" }
    public var caKeyPath: String { directory + "/ca.key" }
    public var serverCertPath: String { directory + "/server.crt" }
    public var serverKeyPath: String { directory + "/server.key" }
    public var clientCertPath: String { directory + "/client.crt" }
    public var clientKeyPath: String { directory + "/client.key" }
    /// The client certificate's common name (the user the server sees).
    public let clientCommonName: String

    public struct OpenSSLFailed: Error, CustomStringConvertible {
        public var description: String
    }

    /// Generates everything (EC P-256 keys: fast). Blocking: call it from a test, not an event loop.
    public static func generate(clientCommonName: String = "cert-user") throws -> TestCertificates {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("portway-pki-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let certs = TestCertificates(directory: dir, clientCommonName: clientCommonName)
        try """
            subjectAltName=IP:127.0.0.1,DNS:localhost
            extendedKeyUsage=serverAuth
            """.write(toFile: dir + "/server.ext", atomically: true, encoding: .utf8)
        try "extendedKeyUsage=clientAuth\n".write(toFile: dir + "/client.ext", atomically: true, encoding: .utf8)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try openssl(["req", "-x509"] + ec + ["-keyout", certs.caKeyPath, "-out", certs.caCertPath, "-days", "2", "-subj", "/CN=portway-test-ca"], in: dir)
        for (name, cn, ext) in [("server", "127.0.0.1", "server.ext"), ("client", clientCommonName, "client.ext")] {
            try openssl(["req"] + ec + ["-keyout", "\(dir)/\(name).key", "-out", "\(dir)/\(name).csr", "-subj", "/CN=\(cn)"], in: dir)
            try openssl([
                "x509", "-req", "-in", "\(dir)/\(name).csr", "-CA", certs.caCertPath, "-CAkey", certs.caKeyPath,
                "-CAcreateserial", "-out", "\(dir)/\(name).crt", "-days", "2", "-extfile", "\(dir)/\(ext)",
            ], in: dir)
        }
        return certs
    }

    static func openssl(_ args: [String], in dir: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["openssl"] + args
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let message = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        if p.terminationStatus != 0 {
            throw OpenSSLFailed(description: "openssl \(args.first ?? "") failed: \(String(decoding: message, as: UTF8.self))")
        }
    }

    public func read(_ path: String) -> Data { FileManager.default.contents(atPath: path) ?? Data() }

    public func remove() { try? FileManager.default.removeItem(atPath: directory) }
}
