/// Label and field selectors, the basics the real server supports: `k=v`, `k==v`, `k!=v`, `k`, `!k`,
/// comma-separated (AND); field selectors on metadata.name, metadata.namespace and (Secrets) type.
struct Selector: Sendable {
    enum Term: Sendable {
        case equals(String, String)
        case notEquals(String, String)
        case exists(String)
        case notExists(String)
    }
    var terms: [Term] = []

    init(_ text: String?) {
        guard let text, !text.isEmpty else { return }
        for raw in text.split(separator: ",") {
            let part = raw.trimmingCharacters(in: .whitespaces)
            if let r = part.range(of: "!=") {
                terms.append(.notEquals(String(part[..<r.lowerBound]), String(part[r.upperBound...])))
            } else if let r = part.range(of: "==") ?? part.range(of: "=") {
                terms.append(.equals(String(part[..<r.lowerBound]), String(part[r.upperBound...])))
            } else if part.hasPrefix("!") {
                terms.append(.notExists(String(part.dropFirst())))
            } else {
                terms.append(.exists(part))
            }
        }
    }

    func matches(_ values: [String: String]) -> Bool {
        terms.allSatisfy { term in
            switch term {
            case .equals(let k, let v): values[k] == v
            case .notEquals(let k, let v): values[k] != v
            case .exists(let k): values[k] != nil
            case .notExists(let k): values[k] == nil
            }
        }
    }
}

extension Selector {
    static func labels(of object: JSONValue) -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in object["metadata"]?["labels"]?.objectValue ?? [:] { out[k] = v.stringValue }
        return out
    }

    static func fields(of object: JSONValue) -> [String: String] {
        var out: [String: String] = [:]
        out["metadata.name"] = object["metadata"]?["name"]?.stringValue ?? ""
        out["metadata.namespace"] = object["metadata"]?["namespace"]?.stringValue ?? ""
        // A top-level `type` among the served kinds is a Secret's, which the real server selects on.
        if let type = object["type"]?.stringValue { out["type"] = type }
        return out
    }
}
import Foundation
