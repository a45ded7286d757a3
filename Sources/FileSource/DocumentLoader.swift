import Foundation
import KubeModels
import Yams

/// Walks the YAML documents of one or more files and fills a `LoadResult`.
struct DocumentLoader {
    private(set) var result = LoadResult()

    let limits: YAMLLimits

    init(limits: YAMLLimits = .default) {
        self.limits = limits
    }

    mutating func load(file path: String, displayName: String) throws(FileSourceError) {
        try load(data: try Self.read(file: path, displayName: displayName, limits: limits), file: displayName)
    }

    /// The file's bytes; a file over the size limit is refused before it is read whole.
    static func read(file path: String, displayName: String, limits: YAMLLimits) throws(FileSourceError) -> Data {
        let url = URL(fileURLWithPath: path)
        if let size = (try? url.resourceValues(forKeys: [.fileSizeKey]))?.fileSize, size > limits.maxFileBytes {
            throw .limit(file: displayName, line: nil, problem: "file is \(size) bytes, more than the limit of \(limits.maxFileBytes)")
        }
        do {
            return try Data(contentsOf: url)
        } catch {
            throw .unreadableFile(path: displayName, reason: Self.reason(error))
        }
    }

    mutating func load(data: Data, file: String) throws(FileSourceError) {
        guard let text = String(data: data, encoding: .utf8) else {
            throw .unreadableFile(path: file, reason: "not UTF-8 text")
        }
        try load(yaml: text, file: file)
    }

    mutating func load(yaml: String, file: String) throws(FileSourceError) {
        // Editors on some systems write a UTF-8 byte order mark, which libyaml rejects.
        let yaml = yaml.hasPrefix("\u{FEFF}") ? String(yaml.dropFirst()) : yaml
        // Bounded before parsing: the composer recurses once per level (a deep file would crash it).
        do {
            try YAMLPreScan(limits: limits).check(yaml)
        } catch {
            throw .limit(file: file, line: error.line, problem: error.problem)
        }
        var documents: [Yams.Node] = []
        do {
            var sequence = try Yams.compose_all(yaml: yaml)
            while let node = sequence.next() { documents.append(node) }
            if let error = sequence.error { throw error }
        } catch {
            throw Self.syntaxError(error, file: file, yaml: yaml)
        }
        for node in documents { add(node, file: file) }
    }

    /// Adds one document (or List item).
    private mutating func add(_ node: Yams.Node, file: String) {
        let line = node.mark?.line
        guard let mapping = node.mapping else {
            if let scalar = node.scalar, ["", "~", "null", "Null", "NULL"].contains(scalar.string) { return }  // Empty document.
            warn(file, line, object: "document", field: "", "not a mapping; ignored")
            return
        }
        guard let kind = mapping["kind"]?.string, !kind.isEmpty else {
            warn(file, line, object: "document", field: "kind", "no kind; ignored")
            return
        }
        let apiVersion = mapping["apiVersion"]?.string ?? ""
        if kind == "List" || (kind.hasSuffix("List") && mapping["items"] != nil) {
            guard let items = mapping["items"] else { return }
            if let sequence = items.sequence {
                for item in sequence { add(item, file: file) }
            } else if items.scalar == nil || !["", "~", "null"].contains(items.scalar?.string ?? "") {
                warn(file, items.mark?.line ?? line, object: kind, field: "items", "not a list; ignored")
            }
            return
        }
        let label = Self.label(kind: kind, mapping: mapping)
        guard let objectKind = FileSource.kinds[kind], objectKind.matches(apiVersion: apiVersion) else {
            let name = mapping["metadata"]?["name"]?.string ?? ""
            result.ignored.append(IgnoredObject(file: file, line: line, apiVersion: apiVersion, kind: kind, name: name))
            return
        }
        do {
            try objectKind.decode(node, &result.snapshot)
        } catch let error as DecodingError {
            let (path, message) = Self.describe(error, in: node)
            result.failedObjects += 1
            warn(file, Self.line(of: path, in: node) ?? line, object: label, field: Self.fieldPath(path), message + "; object ignored")
        } catch {
            result.failedObjects += 1
            warn(file, line, object: label, field: "", "\(error); object ignored")
        }
    }

    private mutating func warn(_ file: String, _ line: Int?, object: String, field: String, _ message: String) {
        result.warnings.append(LoadWarning(file: file, line: line, object: object, field: field, message: message))
    }

    /// `Service demo/web`; cluster-scoped kinds without a namespace print `Node node-a`.
    static func label(kind: String, mapping: Yams.Node.Mapping) -> String {
        let metadata = mapping["metadata"]
        let name = metadata?["name"]?.string ?? ""
        let shownName = name.isEmpty ? "(no name)" : name
        if let namespace = metadata?["namespace"]?.string, !namespace.isEmpty { return "\(kind) \(namespace)/\(shownName)" }
        if let known = FileSource.kinds[kind], !known.descriptor.namespaced { return "\(kind) \(shownName)" }
        return "\(kind) default/\(shownName)"
    }

    /// `spec.ports[0].port` from a coding path.
    static func fieldPath(_ path: [any CodingKey]) -> String {
        var out = ""
        for key in path {
            if let index = key.intValue {
                out += "[\(index)]"
            } else {
                out += (out.isEmpty ? "" : ".") + key.stringValue
            }
        }
        return out
    }

    /// The node at `path`, following mappings by key and sequences by index.
    static func node(at path: [any CodingKey], in root: Yams.Node) -> Yams.Node? {
        var node = root
        for key in path {
            if let index = key.intValue, let sequence = node.sequence {
                guard index >= 0, index < sequence.count else { return nil }
                node = sequence[index]
            } else if let next = node.mapping?[key.stringValue] {
                node = next
            } else {
                return nil
            }
        }
        return node
    }

    /// The line of the deepest node of `path` that exists.
    static func line(of path: [any CodingKey], in root: Yams.Node) -> Int? {
        var prefix = path
        while true {
            if let line = node(at: prefix, in: root)?.mark?.line { return line }
            if prefix.isEmpty { return nil }
            prefix.removeLast()
        }
    }

    /// The failing field's path and a message a person can act on.
    static func describe(_ error: DecodingError, in root: Yams.Node) -> ([any CodingKey], String) {
        switch error {
        case .typeMismatch(let type, let context):
            return (context.codingPath, "expected \(typeName(type)), found \(found(at: context.codingPath, in: root))")
        case .valueNotFound(let type, let context):
            return (context.codingPath, "expected \(typeName(type)), found null")
        case .keyNotFound(let key, let context):
            return (context.codingPath + [key], "required field is missing")
        case .dataCorrupted(let context):
            return (context.codingPath, context.debugDescription)
        @unknown default:
            return ([], "\(error)")
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is Int64.Type, is Int32.Type, is UInt16.Type: "a number"
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        // Yams reports a structural mismatch with its node types.
        case is Yams.Node.Sequence.Type: "a list"
        case is Yams.Node.Mapping.Type: "a mapping"
        case is Yams.Node.Scalar.Type: "a single value"
        default: String(describing: type)
        }
    }

    private static func found(at path: [any CodingKey], in root: Yams.Node) -> String {
        switch node(at: path, in: root) {
        case .scalar(let s)?: "\"\(s.string)\""
        case .sequence?: "a list"
        case .mapping?: "a mapping"
        case nil: "nothing"
        }
    }

    static func syntaxError(_ error: any Error, file: String, yaml: String) -> FileSourceError {
        switch error as? YamlError {
        case .scanner(let context, let problem, let mark, _)?, .parser(let context, let problem, let mark, _)?,
             .composer(let context, let problem, let mark, _)?:
            let detail = context.map { "\(problem) (\($0.text))" } ?? problem
            return .syntax(file: file, line: mark.line, column: mark.column, problem: detail)
        case .reader(let problem, let offset, _, _)?:
            let line = offset.map { off in yaml.utf8.prefix(off).reduce(1) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) } }
            return .syntax(file: file, line: line, column: nil, problem: problem)
        default:
            return .syntax(file: file, line: nil, column: nil, problem: "\(error)")
        }
    }

    static func reason(_ error: any Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain,
           let code = POSIXErrorCode(rawValue: Int32(underlying.code)) {
            return String(cString: strerror(code.rawValue))
        }
        return ns.localizedDescription
    }
}
