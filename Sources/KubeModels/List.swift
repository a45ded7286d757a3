/// meta/v1 ListMeta: the list's resourceVersion (shared by all pages) and the pagination cursor.
public struct ListMeta: Codable, Hashable, Sendable {
    public var resourceVersion: String?
    /// Non-empty when more pages follow; pass it back as `continue`.
    public var `continue`: String?
    /// How many items follow this page (an estimate the server may omit).
    public var remainingItemCount: Int?

    public init(resourceVersion: String? = nil, continue: String? = nil, remainingItemCount: Int? = nil) {
        self.resourceVersion = resourceVersion
        self.continue = `continue`
        self.remainingItemCount = remainingItemCount
    }
}

/// A `<Kind>List` page. `items` may be `null` on the wire; that decodes as an empty list.
public struct KubeList<Item: KubeResource>: Codable, Sendable {
    public var kind: String?
    public var apiVersion: String?
    public var metadata: ListMeta
    public var items: [Item]

    public init(metadata: ListMeta = ListMeta(), items: [Item] = []) {
        self.kind = Item.resource.kind + "List"
        self.apiVersion = Item.resource.apiVersion
        self.metadata = metadata
        self.items = items
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decodeIfPresent(String.self, forKey: .kind)
        apiVersion = try c.decodeIfPresent(String.self, forKey: .apiVersion)
        metadata = try c.decodeIfPresent(ListMeta.self, forKey: .metadata) ?? ListMeta()
        items = try c.decodeIfPresent([Item].self, forKey: .items) ?? []
    }
}
