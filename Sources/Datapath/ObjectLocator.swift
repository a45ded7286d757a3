import CPortwayBuild
import Foundation

/// The compiled datapath (`portway_lb.o`) to load: embedded in the binary at build time, or a file
/// given for development.
public enum DatapathObject: Sendable, Equatable, CustomStringConvertible {
    /// The object compiled into this binary (`make build` embeds bpf/out/portway_lb.o).
    case embedded
    /// An object file: `--bpf-object PATH` or `$PORTWAY_BPF_DIR/portway_lb.o`.
    case file(String)

    public var description: String {
        switch self {
        case .embedded: "the embedded datapath object"
        case .file(let path): path
        }
    }

    /// The bytes compiled into this binary; empty when the build embedded none (a plain
    /// `swift build` before `make bpf`).
    public static var embeddedBytes: UnsafeRawBufferPointer {
        var size = 0
        guard let base = portway_build_bpf_object(&size), size > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base, count: size)
    }
}

/// Chooses the datapath object. Nothing is searched on disk: an explicit path (`--bpf-object`),
/// else `$PORTWAY_BPF_DIR/portway_lb.o` (development: a freshly compiled object without relinking),
/// else the object embedded in the binary.
public enum ObjectLocator {
    /// The object's file name.
    public static let fileName = "portway_lb.o"

    /// The object to load, or `DatapathError.objectNotFound` naming what was tried.
    public static func locate(
        explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> DatapathObject {
        var path: String?
        if let explicit, !explicit.isEmpty {
            path = explicit
        } else if let dir = environment["PORTWAY_BPF_DIR"], !dir.isEmpty {
            path = (dir as NSString).appendingPathComponent(fileName)
        }
        if let path {
            guard FileManager.default.isReadableFile(atPath: path) else { throw DatapathError.objectNotFound(searched: [path]) }
            return .file(path)
        }
        guard DatapathObject.embeddedBytes.count > 0 else { throw DatapathError.objectNotFound(searched: []) }
        return .embedded
    }
}
