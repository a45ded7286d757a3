import Foundation

/// Finds the compiled datapath object `portway_lb.o`.
public enum ObjectLocator {
    /// The object's file name.
    public static let fileName = "portway_lb.o"

    /// The candidate paths, in search order: the explicit path, `$PORTWAY_BPF_DIR/portway_lb.o`,
    /// `./bpf/out/portway_lb.o`, `/usr/lib/portway/portway_lb.o`.
    public static func candidates(
        explicit: String?,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        currentDirectory: String = FileManager.default.currentDirectoryPath
    ) -> [String] {
        if let explicit, !explicit.isEmpty { return [explicit] }
        var paths: [String] = []
        if let dir = environment["PORTWAY_BPF_DIR"], !dir.isEmpty {
            paths.append((dir as NSString).appendingPathComponent(fileName))
        }
        paths.append((currentDirectory as NSString).appendingPathComponent("bpf/out/\(fileName)"))
        paths.append("/usr/lib/portway/\(fileName)")
        return paths
    }

    /// The first candidate that exists, or `DatapathError.objectNotFound`.
    public static func locate(
        explicit: String?,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        currentDirectory: String = FileManager.default.currentDirectoryPath
    ) throws -> String {
        let paths = candidates(explicit: explicit, environment: environment, currentDirectory: currentDirectory)
        for path in paths where FileManager.default.isReadableFile(atPath: path) {
            return path
        }
        throw DatapathError.objectNotFound(searched: paths)
    }
}
