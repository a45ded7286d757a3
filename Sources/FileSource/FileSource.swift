import Foundation
import KubeModels
import LoadBalancer

/// Loads Kubernetes objects from a directory of YAML files (the offline source of `portway
/// translate` and `portway agent --from-dir`).
///
/// Files named `*.yaml` or `*.yml` are read recursively in path order (hidden files and
/// directories, such as a mounted ConfigMap's `..data`, are skipped). A file may hold several
/// documents, and a document may be a `kind: List` (or `ServiceList`…) whose `items` are read.
/// Objects of the kinds in `FileSource.kinds` go into the snapshot; other kinds are listed in
/// `LoadResult.ignored`. A YAML syntax error stops the load with an error naming the file and
/// line; an object that cannot be decoded is skipped with a `LoadWarning` and the load goes on.
public enum FileSource {
    /// Loads every YAML file under `directory`. A file over a `YAMLLimits` limit is skipped with a
    /// warning; the same object (kind, namespace, name) defined twice is taken once, from the
    /// first file in path order, with a warning naming both files.
    public static func load(directory: String, limits: YAMLLimits = .default) throws(FileSourceError) -> LoadResult {
        var files: [(file: String, result: LoadResult)] = []
        for file in try yamlFiles(in: directory) {
            do {
                files.append((file.displayName, try load(file: file.path, displayName: file.displayName, limits: limits)))
            } catch .limit(let name, let line, let problem) {
                let warning = LoadWarning(file: name, line: line, object: "file", field: "limits", message: problem + "; file ignored")
                files.append((file.displayName, LoadResult(warnings: [warning])))
            }
        }
        return merge(files)
    }

    /// Loads one YAML file; `displayName` is the name warnings and errors use for it.
    public static func load(file: String, displayName: String? = nil, limits: YAMLLimits = .default) throws(FileSourceError) -> LoadResult {
        var loader = DocumentLoader(limits: limits)
        try loader.load(file: file, displayName: displayName ?? file)
        return loader.result
    }

    /// Loads YAML text; `file` is the name warnings and errors use for it.
    public static func load(yaml: String, file: String = "<yaml>", limits: YAMLLimits = .default) throws(FileSourceError) -> LoadResult {
        var loader = DocumentLoader(limits: limits)
        try loader.load(yaml: yaml, file: file)
        return loader.result
    }

    /// Loads a file's bytes (what the fuzzer feeds): not UTF-8 is an error like any other.
    public static func load(data: Data, file: String = "<yaml>", limits: YAMLLimits = .default) throws(FileSourceError) -> LoadResult {
        var loader = DocumentLoader(limits: limits)
        try loader.load(data: data, file: file)
        return loader.result
    }

    /// Fails when `directory` does not exist, is not a directory or cannot be listed.
    public static func checkDirectory(_ directory: String) throws(FileSourceError) {
        _ = try yamlFiles(in: directory)
    }

    /// Joins the results of several files, in order (every kind of `ClusterSnapshot`: a kind added
    /// there must be added here; FileSourceTests check it). An object (kind, namespace, name) already
    /// taken from an earlier file, or earlier in the same file, is dropped with a warning naming
    /// both places: the translator must see each object once.
    public static func merge(_ files: [(file: String, result: LoadResult)]) -> LoadResult {
        var merger = Merger()
        for (file, result) in files {
            merger.merged.warnings += result.warnings
            merger.merged.ignored += result.ignored
            merger.merged.failedObjects += result.failedObjects
            // Every kind of the registry (a kind forgotten here would vanish from file mode).
            for kind in ResourceRegistry.kinds { merger.take(kind, of: result.snapshot, from: file) }
            merger.merged.warnings += merger.duplicates
            merger.duplicates = []
        }
        return merger.merged
    }

    private struct Merger {
        var merged = LoadResult()
        var seen: [String: String] = [:]
        var duplicates: [LoadWarning] = []

        mutating func take<K: AnyResourceKind>(_ kind: K, of snapshot: ClusterSnapshot, from file: String) {
            let declaration = kind.declaration
            for object in declaration.objects(snapshot) {
                let namespace = K.Resource.resource.namespaced ? (object.metadata.namespace ?? "default") : ""
                let identity = "\(K.Resource.resource.kind) " + (namespace.isEmpty ? "" : namespace + "/") + object.metadata.name
                if let first = seen[identity] {
                    let place = first == file ? "earlier in the same file" : "in \(first)"
                    duplicates.append(LoadWarning(file: file, line: nil, object: identity, field: "", message: "also defined \(place); this definition is ignored"))
                    continue
                }
                seen[identity] = file
                declaration.store(&merged.snapshot, object)
            }
        }
    }

    /// The YAML files under `directory`, sorted by their path relative to it. Any failure to list
    /// the tree (out of file descriptors included) is an error, never an empty or partial list.
    static func yamlFiles(in directory: String) throws(FileSourceError) -> [(path: String, displayName: String)] {
        let root = URL(fileURLWithPath: directory, isDirectory: true).standardizedFileURL.path
        let files = try DirectoryListing.files(under: root, shownAs: directory) { name in
            let ext = (name as NSString).pathExtension.lowercased()
            return ext == "yaml" || ext == "yml"
        }.sorted { $0.relative < $1.relative }
        let shown = directory.hasSuffix("/") ? directory : directory + "/"
        return files.map { ($0.path, shown + $0.relative) }
    }
}

/// What a load found.
public struct LoadResult: Hashable, Sendable {
    public var snapshot: ClusterSnapshot
    /// Objects that were skipped because they could not be decoded, and documents without a kind.
    public var warnings: [LoadWarning]
    /// Objects of kinds this source does not read (e.g. ConfigMaps, Deployments).
    public var ignored: [IgnoredObject]
    /// Objects of kinds this source reads that failed to decode (each has a warning).
    public var failedObjects = 0

    public init(snapshot: ClusterSnapshot = ClusterSnapshot(), warnings: [LoadWarning] = [], ignored: [IgnoredObject] = []) {
        self.snapshot = snapshot
        self.warnings = warnings
        self.ignored = ignored
    }
}

/// An object that was skipped, with where it is and why.
public struct LoadWarning: Hashable, Sendable, CustomStringConvertible {
    /// The file, as given (the directory joined with the file's relative path).
    public var file: String
    /// The line of the offending field (or of the object) when known, from 1.
    public var line: Int?
    /// `Kind namespace/name` (or `Kind name` for cluster-scoped objects), or "document" when the
    /// document has no kind.
    public var object: String
    /// The field path, e.g. `spec.ports[0].port`; "" when the problem is the whole object.
    public var field: String
    public var message: String

    public init(file: String, line: Int?, object: String, field: String, message: String) {
        self.file = file
        self.line = line
        self.object = object
        self.field = field
        self.message = message
    }

    /// `file:line`.
    public var location: String { line.map { "\(file):\($0)" } ?? file }

    /// `file:line: Service demo/web: spec.ports[0].port: expected a number`.
    public var description: String {
        "\(location): \(object)" + (field.isEmpty ? "" : ": \(field)") + ": \(message)"
    }
}

/// An object of a kind the source does not read.
public struct IgnoredObject: Hashable, Sendable {
    public var file: String
    public var line: Int?
    public var apiVersion: String
    public var kind: String
    public var name: String

    public init(file: String, line: Int?, apiVersion: String, kind: String, name: String) {
        self.file = file
        self.line = line
        self.apiVersion = apiVersion
        self.kind = kind
        self.name = name
    }
}

/// Why a load failed as a whole.
public enum FileSourceError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The directory does not exist, is not a directory, or cannot be listed.
    case unreadableDirectory(path: String, reason: String)
    /// A file cannot be read (or is not UTF-8).
    case unreadableFile(path: String, reason: String)
    /// The YAML in `file` is malformed at `line` (from 1).
    case syntax(file: String, line: Int?, column: Int?, problem: String)
    /// `file` is over a `YAMLLimits` limit (found before parsing, at `line` when known).
    case limit(file: String, line: Int?, problem: String)

    public var description: String {
        switch self {
        case .unreadableDirectory(let path, let reason): "cannot read directory \(path): \(reason)"
        case .unreadableFile(let path, let reason): "cannot read file \(path): \(reason)"
        case .syntax(let file, let line, let column, let problem):
            "YAML syntax error in \(file)" + (line.map { ":\($0)" } ?? "") + (column.map { ":\($0)" } ?? "") + ": \(problem)"
        case .limit(let file, let line, let problem):
            "\(file)" + (line.map { ":\($0)" } ?? "") + ": refused before parsing: \(problem)"
        }
    }
}
