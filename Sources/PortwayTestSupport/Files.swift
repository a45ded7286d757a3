import Foundation
import Glibc

/// The package root (the directory holding Package.swift).
public let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)  // Sources/PortwayTestSupport/Files.swift
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// The project's read-only fixtures beside the package (`../shared`), or `$PORTWAY_SHARED_DIR`
/// (point it at a missing folder to check that the dependent tests skip, as in a user's clone).
public let sharedDirectory: String = {
    if let dir = ProcessInfo.processInfo.environment["PORTWAY_SHARED_DIR"], !dir.isEmpty { return dir }
    return URL(fileURLWithPath: packageRoot).deletingLastPathComponent().appendingPathComponent("shared").path
}()

/// The recorded API exchanges and objects (`../shared/k8s-api-traces`), read in place (never copied into the repo).
public let tracesDirectory: String = sharedDirectory + "/k8s-api-traces"

public struct TestFileError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A new directory `/tmp/<prefix>-XXXXXX`.
public func makeTempDirectory(_ prefix: String) throws -> String {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    guard let dir = mkdtemp(&template) else { throw TestFileError("mkdtemp /tmp/\(prefix)-XXXXXX: errno \(errno)") }
    return String(cString: dir)
}

/// A fresh directory under the system temporary directory, removed when `body` returns.
public func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("portway-test-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try body(dir)
}

/// Writes `text` to `path` as editors and ConfigMap updates do (a temporary file renamed over it),
/// so a poller never reads half a file.
public func write(_ text: String, to path: String) throws {
    let tmp = path + ".tmp-\(getpid())"
    try text.write(toFile: tmp, atomically: false, encoding: .utf8)
    guard rename(tmp, path) == 0 else { throw TestFileError("rename \(tmp): errno \(errno)") }
}

/// Writes `text` to `dir/relative`, creating parent directories.
public func write(_ text: String, to relative: String, in dir: String) throws {
    let url = URL(fileURLWithPath: dir).appendingPathComponent(relative)
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try text.write(to: url, atomically: true, encoding: .utf8)
}

/// A free loopback TCP port (bound and released), so parallel runs do not share a port.
public func freePort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFileError("socket: errno \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw TestFileError("bind 127.0.0.1:0: errno \(errno)") }
    return UInt16(bigEndian: address.sin_port)
}
