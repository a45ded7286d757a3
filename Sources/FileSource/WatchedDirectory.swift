import Foundation
import KubeModels

/// A directory read again and again (the agent's `--from-dir`), remembering each file's last good
/// content: a file that stops loading keeps contributing what it held when it last loaded.
///
/// A file is good when it reads, passes the `YAMLLimits`, parses, and every object of a kind the
/// source reads decodes. A file that is not good (a syntax error, a truncated or half-written file,
/// `port: "80"`) keeps its last good content, with a problem naming the file, line and field. A file
/// that has never been good contributes nothing. A file truncated to 0 bytes that held objects is
/// taken for a writer part-way through (writers should rename files into place) and keeps them too.
public struct WatchedDirectory: Sendable {
    public let directory: String
    public let limits: YAMLLimits
    private var files: [String: FileState] = [:]

    private struct FileState: Sendable {
        var fingerprint: DirectoryFingerprint.File
        /// The content of the last load that was good; nil when it never was.
        var good: LoadResult?
        /// Why the current content is not used; nil when it is.
        var problem: String?
    }

    /// What the directory amounts to now.
    public struct View: Sendable {
        /// Every file's last good content, merged in path order (duplicate objects dropped with a warning).
        public var result: LoadResult
        /// One line per file whose current content is not used, e.g. `dir/web.yaml:7: Service demo/web:
        /// spec.ports[0].port: expected a number, found "80"; keeping the file's last good content`.
        public var problems: [String]
        /// True when every file has good content (its current or its last): nothing is missing.
        public var complete: Bool
    }

    public init(directory: String, limits: YAMLLimits = .default) {
        self.directory = directory
        self.limits = limits
    }

    /// Reloads the files whose fingerprint entry changed, forgets removed ones, and returns the view.
    public mutating func update(_ fingerprint: DirectoryFingerprint) -> View {
        var next: [String: FileState] = [:]
        for entry in fingerprint.files {
            if let state = files[entry.path], state.fingerprint == entry {
                next[entry.path] = state
                continue
            }
            next[entry.path] = load(entry, previous: files[entry.path]?.good)
        }
        files = next
        return view(order: fingerprint.files.map(\.path))
    }

    private func load(_ entry: DirectoryFingerprint.File, previous: LoadResult?) -> FileState {
        var state = FileState(fingerprint: entry, good: previous, problem: nil)
        let keeping = previous == nil ? "it has no good content yet, so it contributes nothing" : "keeping the file's last good content"
        let loaded: LoadResult
        do {
            let data = try DocumentLoader.read(file: entry.resolvedPath, displayName: entry.path, limits: limits)
            if data.isEmpty, let previous, previous.objectCount > 0 {
                state.problem = "\(entry.path) is empty (truncated, or a writer is part-way through: write a temporary file and rename it into place); \(keeping)"
                return state
            }
            var loader = DocumentLoader(limits: limits)
            try loader.load(data: data, file: entry.path)
            loaded = loader.result
        } catch {
            state.problem = "\(error); \(keeping)"
            return state
        }
        guard loaded.failedObjects == 0 else {
            let failures = loaded.warnings.filter { $0.message.hasSuffix("object ignored") }.map(\.description)
            state.problem = failures.map { $0.replacingOccurrences(of: "; object ignored", with: "") }.joined(separator: "\n")
                + "\n\(entry.path): \(loaded.failedObjects) object(s) do not decode; \(keeping)"
            return state
        }
        state.good = loaded
        return state
    }

    private func view(order: [String]) -> View {
        var parts: [(file: String, result: LoadResult)] = []
        var problems: [String] = []
        var complete = true
        for path in order {
            guard let state = files[path] else { continue }
            if let good = state.good { parts.append((path, good)) } else { complete = false }
            if let problem = state.problem { problems.append(problem) }
        }
        return View(result: FileSource.merge(parts), problems: problems, complete: complete)
    }
}

extension LoadResult {
    /// Objects in the snapshot (of every kind read).
    public var objectCount: Int { snapshot.objectCount }
}

extension ClusterSnapshot {
    /// Objects of every kind the file source reads, together.
    public var objectCount: Int {
        services.count + endpointSlices.count + endpoints.count + nodes.count + namespaces.count + secrets.count
            + gatewayClasses.count + gateways.count + httpRoutes.count + referenceGrants.count + listenerSets.count
            + configMaps.count + backendTLSPolicies.count
    }
}
