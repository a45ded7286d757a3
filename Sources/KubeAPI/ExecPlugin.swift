import Foundation
import Runtime

/// A kubeconfig `exec` credential plugin (client.authentication.k8s.io/v1 or v1beta1).
public struct ExecPlugin: Sendable, Hashable {
    public var command: String
    public var args: [String]
    public var env: [String: String]
    public var apiVersion: String
    /// The directory relative commands resolve against (the kubeconfig's).
    public var workingDirectory: String?

    public init(command: String, args: [String] = [], env: [String: String] = [:], apiVersion: String = "client.authentication.k8s.io/v1", workingDirectory: String? = nil) {
        self.command = command
        self.args = args
        self.env = env
        self.apiVersion = apiVersion
        self.workingDirectory = workingDirectory
    }

    /// What a plugin run produced.
    public struct Credential: Sendable {
        public var token: String
        /// Time until `status.expirationTimestamp`; nil = valid until a 401.
        public var expiresIn: Duration?
    }

    private struct ExecCredential: Codable {
        struct Status: Codable {
            var token: String?
            var expirationTimestamp: String?
        }
        var apiVersion: String?
        var kind: String?
        var status: Status?
    }

    /// Runs the plugin (on its own thread) and parses its ExecCredential.
    public func run() async throws -> Credential {
        let request = try JSONEncoder().encode(
            ["apiVersion": apiVersion, "kind": "ExecCredential"] as [String: String])
        let plugin = self
        let output = try await credentialExecutor.run { try plugin.runProcess(input: request) }
        let credential: ExecCredential
        do {
            credential = try JSONDecoder().decode(ExecCredential.self, from: output)
        } catch {
            throw ConfigError("exec plugin \(command): output is not an ExecCredential: \(error)")
        }
        guard let token = credential.status?.token, !token.isEmpty else {
            throw ConfigError("exec plugin \(command): ExecCredential has no status.token")
        }
        var expiresIn: Duration?
        if let stamp = credential.status?.expirationTimestamp {
            guard let date = parseRFC3339(stamp) else { throw ConfigError("exec plugin \(command): bad expirationTimestamp \(stamp)") }
            expiresIn = .milliseconds(Int64(date.timeIntervalSinceNow * 1000))
        }
        return Credential(token: token, expiresIn: expiresIn)
    }

    /// A configured, not yet started plugin process with its output pipes.
    private func makeProcess(input: Data) -> (Process, Pipe, Pipe) {
        let process = Process()
        var path = command
        if !command.hasPrefix("/"), command.contains("/"), let dir = workingDirectory {
            path = (dir as NSString).appendingPathComponent(command)
        }
        if path.contains("/") {
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = args
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [command] + args
        }
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in env { environment[k] = v }
        environment["KUBERNETES_EXEC_INFO"] = String(decoding: input, as: UTF8.self)
        process.environment = environment
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = FileHandle.nullDevice
        return (process, stdout, stderr)
    }

    /// Starts the plugin. "Text file busy" (ETXTBSY: the binary was just written, and a process
    /// forked meanwhile still holds it open for writing) passes within moments: retried briefly.
    private func start(input: Data) throws -> (Process, Pipe, Pipe) {
        var attempt = 0
        while true {
            attempt += 1
            let (process, stdout, stderr) = makeProcess(input: input)
            do {
                try process.run()
                return (process, stdout, stderr)
            } catch {
                let underlying = (error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError
                guard attempt < 10, underlying?.domain == NSPOSIXErrorDomain, underlying?.code == Int(ETXTBSY) else {
                    throw ConfigError("exec plugin \(command): cannot start: \(error)")
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
    }

    private func runProcess(input: Data) throws -> Data {
        let (process, stdout, stderr) = try start(input: input)
        // Drain stderr on its own thread so a chatty plugin cannot block on a full pipe while we read stdout.
        let errData = LockBox(Data())
        let errDone = DispatchSemaphore(value: 0)
        let errHandle = stderr.fileHandleForReading
        Thread {
            let data = errHandle.readDataToEndOfFile()
            errData.value.withLock { $0 = data }
            errDone.signal()
        }.start()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        errDone.wait()
        let err = errData.value.withLock { $0 }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let message = String(decoding: err, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw ConfigError("exec plugin \(command) exited with \(process.terminationStatus): \(message)")
        }
        return out
    }
}

/// Parses RFC 3339 timestamps with or without fractional seconds.
func parseRFC3339(_ text: String) -> Date? {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime]
    if let d = f.date(from: text) { return d }
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return f.date(from: text)
}
