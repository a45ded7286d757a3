import Foundation

/// A cheap summary of a directory's YAML files (names, sizes, modification times): poll it and
/// reload when it changes.
public struct DirectoryFingerprint: Hashable, Sendable {
    public struct File: Hashable, Sendable {
        /// The path as shown in warnings (directory + relative path).
        public var path: String
        public var size: UInt64
        /// Modification time, seconds since 1970 (sub-second where the file system has it).
        public var modified: Double
        /// The file a symlink resolves to (a ConfigMap update swaps the link, not the file).
        public var resolvedPath: String
    }

    public var files: [File]
}

extension FileSource {
    /// The fingerprint of the files `load(directory:)` would read.
    public static func fingerprint(directory: String) throws(FileSourceError) -> DirectoryFingerprint {
        var files: [DirectoryFingerprint.File] = []
        for file in try yamlFiles(in: directory) {
            // A file that vanished since the listing is left out; any other failure is the caller's error.
            guard let attributes = try DirectoryListing.attributes(of: file.path) else { continue }
            files.append(DirectoryFingerprint.File(
                path: file.displayName, size: attributes.size, modified: attributes.modified, resolvedPath: attributes.resolved))
        }
        return DirectoryFingerprint(files: files)
    }
}
