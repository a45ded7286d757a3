import Foundation

/// A fresh directory under the system temporary directory, removed when `body` returns.
func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("portway-filesource-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try body(dir)
}

/// Writes `text` to `dir/relative`, creating parent directories.
func write(_ text: String, to relative: String, in dir: String) throws {
    let url = URL(fileURLWithPath: dir).appendingPathComponent(relative)
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try text.write(to: url, atomically: true, encoding: .utf8)
}

/// ../shared/k8s-api-traces, relative to the package root (never copied into the repository);
/// `$PORTWAY_SHARED_DIR` overrides the shared folder (point it at a missing folder to check that
/// the dependent tests skip, as they must in a user's clone).
let tracesDirectory: String = {
    if let dir = ProcessInfo.processInfo.environment["PORTWAY_SHARED_DIR"], !dir.isEmpty { return dir + "/k8s-api-traces" }
    return URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("../shared/k8s-api-traces").standardizedFileURL.path
}()

/// Whether the recorded objects are there; prints once why the tests needing them are skipped.
let recordedObjectsPresent: Bool = {
    let ok = FileManager.default.fileExists(atPath: tracesDirectory + "/objs.yaml")
    if !ok { print("skipped: tests needing \(tracesDirectory)/objs.yaml (../shared beside the package, or $PORTWAY_SHARED_DIR): it is absent") }
    return ok
}()
