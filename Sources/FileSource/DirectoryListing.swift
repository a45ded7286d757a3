import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Lists a directory tree with plain `opendir`/`readdir`/`stat`, reporting every failure.
///
/// Foundation's directory enumerator stops silently when a call fails (out of file descriptors:
/// `EMFILE`), which a poller cannot tell from an empty directory; an empty listing then looked like
/// "every object deleted" and emptied the node's maps. Here a failed open, read or stat is an error
/// (the caller keeps its last good state); only an entry that vanished between `readdir` and `stat`
/// (`ENOENT`: a file being replaced, a dangling symlink) is skipped.
enum DirectoryListing {
    struct Entry {
        /// The path relative to the listed root, `/`-separated.
        var relative: String
        /// The absolute path (symlinks not resolved).
        var path: String
    }

    /// The regular files (or symlinks to regular files) under `root` whose extension passes
    /// `include`, in no particular order. Hidden entries (a leading `.`, e.g. a ConfigMap mount's
    /// `..data`) are skipped; symlinked directories are not followed (no cycles).
    /// Errors name the directory as `shownAs` (what the user gave).
    static func files(under root: String, shownAs shown: String, include: (String) -> Bool) throws(FileSourceError) -> [Entry] {
        var status = stat()
        guard stat(root, &status) == 0 else {
            let code = errno
            throw .unreadableDirectory(path: shown, reason: code == ENOENT ? "no such directory" : describe(code))
        }
        guard status.st_mode & S_IFMT == S_IFDIR else { throw .unreadableDirectory(path: shown, reason: "not a directory") }
        var entries: [Entry] = []
        try walk(root, relative: "", shownRoot: shown, include: include, into: &entries)
        return entries
    }

    /// Reads one directory whole and closes it before descending, so at most one directory
    /// descriptor is open at a time however deep the tree is.
    private static func walk(
        _ directory: String, relative: String, shownRoot: String, include: (String) -> Bool, into entries: inout [Entry]
    ) throws(FileSourceError) {
        let shown = relative.isEmpty ? shownRoot : shownRoot + "/" + relative
        var names: [String] = []
        guard let handle = opendir(directory) else {
            throw .unreadableDirectory(path: shown, reason: describe(errno))
        }
        while true {
            errno = 0
            guard let entry = readdir(handle) else {
                let code = errno
                closedir(handle)
                if code != 0 { throw .unreadableDirectory(path: shown, reason: "reading its entries: \(describe(code))") }
                break
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if !name.hasPrefix(".") { names.append(name) }
        }
        for name in names {
            let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
            let relativePath = relative.isEmpty ? name : relative + "/" + name
            var status = stat()
            guard stat(path, &status) == 0 else {
                let code = errno
                if code == ENOENT { continue }
                throw .unreadableDirectory(path: shownRoot, reason: "cannot stat \(relativePath): \(describe(code))")
            }
            switch status.st_mode & S_IFMT {
            case S_IFDIR:
                var link = stat()
                guard lstat(path, &link) == 0 else {
                    let code = errno
                    if code == ENOENT { continue }
                    throw .unreadableDirectory(path: shownRoot, reason: "cannot stat \(relativePath): \(describe(code))")
                }
                if link.st_mode & S_IFMT == S_IFLNK { continue }
                try walk(path, relative: relativePath, shownRoot: shownRoot, include: include, into: &entries)
            case S_IFREG:
                if include(name) { entries.append(Entry(relative: relativePath, path: path)) }
            default:
                continue
            }
        }
    }

    /// Size and modification time of the file `path` resolves to, and the resolved path; nil when
    /// it vanished (ENOENT). Any other failure is an error.
    static func attributes(of path: String) throws(FileSourceError) -> (size: UInt64, modified: Double, resolved: String)? {
        var status = stat()
        guard stat(path, &status) == 0 else {
            let code = errno
            if code == ENOENT { return nil }
            throw .unreadableFile(path: path, reason: describe(code))
        }
        let resolved: String
        if let real = realpath(path, nil) {
            resolved = String(cString: real)
            free(real)
        } else {
            let code = errno
            if code == ENOENT { return nil }
            throw .unreadableFile(path: path, reason: "resolving it: \(describe(code))")
        }
        let modified = Double(status.st_mtim.tv_sec) + Double(status.st_mtim.tv_nsec) / 1e9
        return (UInt64(status.st_size), modified, resolved)
    }

    static func describe(_ code: Int32) -> String { String(cString: strerror(code)) }
}
