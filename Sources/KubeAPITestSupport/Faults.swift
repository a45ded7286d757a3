/// A fault the test server injects into matching requests.
public enum InjectedFault: Sendable, Equatable {
    /// Answer with this HTTP code and a Status body (429 TooManyRequests, 500 InternalError, 503,
    /// 410 Expired, 401, 403...). 429 carries `Retry-After: 1`.
    case status(Int)
    /// Watch: HTTP 200, then one ERROR event with a 410 Expired Status (like watch-410.http), then end.
    case watchExpired
    /// Watch: HTTP 200 headers, then silence, and the stream does NOT end at its timeout.
    case stall
}

/// A request the server saw, for assertions.
public struct RecordedRequest: Sendable, CustomStringConvertible {
    public var method: String
    public var verb: String
    public var plural: String
    public var path: String
    public var query: [String: String]
    public var user: String?
    public var userAgent: String?
    public var contentType: String?

    public var description: String { "\(verb) \(plural) \(path)" }
}

struct FaultRule {
    var fault: InjectedFault
    var verb: String?
    var plural: String?
    var remaining: Int
}

extension APIFailure {
    static func forFault(code: Int) -> APIFailure {
        switch code {
        case 401: APIFailure(code: 401, reason: "Unauthorized", message: "Unauthorized")
        case 410: APIFailure.expired("The resourceVersion for the provided list is too old.")
        case 429: APIFailure(code: 429, reason: "TooManyRequests", message: "Too many requests, please try again later.",
                             details: .object(["retryAfterSeconds": .number(1)]))
        case 503: APIFailure(code: 503, reason: "ServiceUnavailable", message: "the server is currently unable to handle the request")
        case 504: APIFailure(code: 504, reason: "Timeout", message: "Timeout: request did not complete within the allotted timeout")
        default: APIFailure(code: code, reason: "InternalError", message: "Internal error occurred: injected fault")
        }
    }
}
