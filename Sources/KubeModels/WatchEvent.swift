/// The `type` of one watch event line.
public enum WatchEventType: String, Codable, Hashable, Sendable {
    case added = "ADDED"
    case modified = "MODIFIED"
    case deleted = "DELETED"
    /// Carries only `metadata.resourceVersion`: the client's position advanced, nothing changed.
    case bookmark = "BOOKMARK"
    /// The object is a meta/v1 Status (e.g. code 410 Expired: the client must relist).
    case error = "ERROR"
}

/// One decoded watch event: `{"type": ..., "object": ...}` on one line of the stream.
public enum WatchEvent<Object: KubeResource>: Sendable {
    case added(Object)
    case modified(Object)
    case deleted(Object)
    /// The new resourceVersion from the bookmark object.
    case bookmark(resourceVersion: String)
    case error(Status)
}

/// A BOOKMARK's object: only `metadata.resourceVersion` matters.
public struct BookmarkObject: Decodable, Sendable {
    public struct Meta: Decodable, Sendable { public var resourceVersion: String? }
    public var metadata: Meta
}
