import BPFMaps
import LoadBalancer

extension LBListing {
    /// The Cilium-style table (docs/CLI-JSON.md).
    public var table: String { renderLBTable(rows.map(\.row)) }

    /// The JSON document: translate's entries plus `serviceID`, `revNatID`, and per backend
    /// `backendID` and `slot`; `service` is null (the maps do not hold it).
    public var json: JSONObject {
        let services: [JSONValue] = rows.map { row, ids in
            var object = Views.json(for: row.entry) { i, backend in
                var b = Views.json(for: backend)
                b["backendID"] = .integer(ids[i])
                b["slot"] = .integer(row.slots?[i])
                return b
            }
            object.insert("serviceID", .integer(row.revNatID), before: "type")
            object.insert("revNatID", .integer(row.revNatID), before: "type")
            object["service"] = .null
            return .object(object)
        }
        return ["services": .array(services), "warnings": .array(warnings.map { .object(Views.json(for: $0)) })]
    }
}
