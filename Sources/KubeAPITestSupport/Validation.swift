/// The bits of server-side validation tests rely on (Invalid 422 with causes, shaped like create-422.http).
enum Validation {
    static func validate(_ r: ServedResource, _ o: JSONValue) throws {
        guard r.plural == "services", r.group.isEmpty else { return }
        let name = o["metadata"]?["name"]?.stringValue ?? ""
        var causes: [(field: String, message: String)] = []
        if case .array(let ports)? = o["spec"]?["ports"] {
            for (i, p) in ports.enumerated() {
                for field in ["port", "targetPort", "nodePort"] {
                    if case .number(let n)? = p[field], n < 1 || n > 65535 {
                        causes.append(("spec.ports[\(i)].\(field)", "Invalid value: \(Int(n)): must be between 1 and 65535, inclusive"))
                    }
                }
            }
        }
        guard !causes.isEmpty else { return }
        // As the real server's aggregate error: one cause bare, several in brackets.
        let summary = causes.map { "\($0.field): \($0.message)" }.joined(separator: ", ")
        throw APIFailure(
            code: 422, reason: "Invalid", message: "Service \"\(name)\" is invalid: \(causes.count == 1 ? summary : "[\(summary)]")",
            details: .object([
                "name": .string(name), "kind": .string("Service"),
                "causes": .array(causes.map { .object(["reason": .string("FieldValueInvalid"), "message": .string($0.message), "field": .string($0.field)]) }),
            ]))
    }
}
