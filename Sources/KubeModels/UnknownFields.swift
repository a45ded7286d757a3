// Which fields of an object the slim models do not know. Most models ignore unknown fields (the API
// has many Portway never reads); the HTTPRoute spec does not: a field Portway does not know may
// change what a request gets (a retry, a mirror, session persistence), so the route must not be
// served as if it were absent. The models that matter record the names they skipped
// (`unknownFields`); `HTTPRoute.unknownFieldPaths` lists them for status and logs.

/// A coding key for any name: reads every key an object has.
struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension Decoder {
    /// The keys of the object being decoded that `Keys` does not name, sorted.
    func unknownKeys<Keys: CodingKey & CaseIterable>(besides known: Keys.Type) throws -> [String] {
        let names = Set(Keys.allCases.map(\.stringValue))
        return try container(keyedBy: AnyCodingKey.self).allKeys.map(\.stringValue).filter { !names.contains($0) }.sorted()
    }
}

extension HTTPRoute {
    /// Every field of `spec` the models do not know, as paths (`spec.rules[0].retry`,
    /// `spec.rules[1].filters[0].cors`), in document order. Empty for a route Portway reads whole.
    public var unknownFieldPaths: [String] {
        var out = spec.unknownFields.map { "spec.\($0)" }
        for (r, rule) in (spec.rules ?? []).enumerated() {
            let base = "spec.rules[\(r)]"
            out += rule.unknownFields.map { "\(base).\($0)" }
            out += (rule.retry?.unknownFields ?? []).map { "\(base).retry.\($0)" }
            for (m, match) in (rule.matches ?? []).enumerated() {
                out += match.unknownFields.map { "\(base).matches[\(m)].\($0)" }
            }
            func filters(_ list: [HTTPRouteFilter]?, at path: String) {
                for (f, filter) in (list ?? []).enumerated() {
                    out += filter.unknownFieldPaths.map { "\(path).filters[\(f)].\($0)" }
                }
            }
            filters(rule.filters, at: base)
            for (b, ref) in (rule.backendRefs ?? []).enumerated() {
                out += ref.unknownFields.map { "\(base).backendRefs[\(b)].\($0)" }
                filters(ref.filters, at: "\(base).backendRefs[\(b)]")
            }
        }
        return out
    }
}

extension HTTPRouteFilter {
    /// The filter's unknown fields and those of its redirect, rewrite, mirror and CORS settings.
    var unknownFieldPaths: [String] {
        unknownFields + (requestRedirect?.unknownFields ?? []).map { "requestRedirect.\($0)" }
            + (urlRewrite?.unknownFields ?? []).map { "urlRewrite.\($0)" }
            + (requestMirror?.unknownFields ?? []).map { "requestMirror.\($0)" }
            + (requestMirror?.backendRef.unknownFields ?? []).map { "requestMirror.backendRef.\($0)" }
            + (cors?.unknownFields ?? []).map { "cors.\($0)" }
    }
}
