import KubeModels

/// A rule's HTTPRoute `timeouts`, validated at build time. In seconds; nil: not set (the proxy's
/// own settings apply); 0: set to "0s", which disables that timeout (the spec's "SHOULD disable").
public struct RouteTimeouts: Hashable, Codable, Sendable {
    /// `timeouts.request`: from the request head to the end of the response (504 while no response
    /// head was sent).
    public var request: Double?
    /// `timeouts.backendRequest`: one upstream attempt, from its connect to the end of the backend's
    /// response (504 while no response head was sent).
    public var backendRequest: Double?

    public init(request: Double? = nil, backendRequest: Double? = nil) {
        self.request = request
        self.backendRequest = backendRequest
    }

    public var isEmpty: Bool { request == nil && backendRequest == nil }

    /// Validates a rule's `timeouts` (nil: none). Refused: a value that is not a Gateway API
    /// Duration, and a backendRequest longer than a non-zero request (the spec's CEL rule, which
    /// an API server without CEL does not apply).
    public static func lower(_ timeouts: HTTPRouteTimeouts?) -> Result<RouteTimeouts, RouteFilter.Unsupported> {
        guard let timeouts else { return .success(RouteTimeouts()) }
        var out = RouteTimeouts()
        for (field, text) in [("request", timeouts.request), ("backendRequest", timeouts.backendRequest)] {
            guard let text else { continue }
            guard let seconds = GatewayDuration.seconds(text) else {
                return .failure(RouteFilter.Unsupported(
                    message: "timeouts.\(field) \"\(text)\" is not a Gateway API duration (e.g. 500ms, 10s, 1h2m3s: up to four of h, m, s, ms in that order, 1-5 digits each)"))
            }
            if field == "request" { out.request = seconds } else { out.backendRequest = seconds }
        }
        if let request = out.request, let backend = out.backendRequest, request > 0, backend > request {
            return .failure(RouteFilter.Unsupported(message: "timeouts.backendRequest (\(timeouts.backendRequest!)) is longer than timeouts.request (\(timeouts.request!))"))
        }
        return .success(out)
    }
}

/// The Gateway API Duration (GEP-2257): `^([0-9]{1,5}(h|m|s|ms)){1,4}$`, a strict subset of Go's
/// `time.ParseDuration`, with each unit at most once and in descending order (h, m, s, ms).
public enum GatewayDuration {
    /// The duration in seconds, nil when `text` is not a Gateway API Duration.
    public static func seconds(_ text: String) -> Double? {
        let units: [(name: String, seconds: Double)] = [("h", 3600), ("m", 60), ("s", 1), ("ms", 0.001)]
        var rest = Substring(text)
        var total = 0.0
        var next = 0  // index of the smallest unit still allowed
        var parts = 0
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard (1...5).contains(digits.count), let value = Int(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            // "ms" before "m": the longest unit name that matches.
            guard let index = units.indices.filter({ rest.hasPrefix(units[$0].name) }).max(by: { units[$0].name.count < units[$1].name.count }),
                  index >= next
            else { return nil }
            rest = rest.dropFirst(units[index].name.count)
            total += Double(value) * units[index].seconds
            next = index + 1
            parts += 1
        }
        return parts == 0 ? nil : total
    }

    /// `seconds` as a Gateway API Duration, largest units first, rounded to milliseconds:
    /// 0.5 → "500ms", 3723.25 → "1h2m3s250ms", 0 → "0s". What `routes` and `explain` print.
    public static func format(_ seconds: Double) -> String {
        var rest = Int((seconds * 1000).rounded())
        guard rest > 0 else { return "0s" }
        var out = ""
        for (name, ms) in [("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] where rest >= ms {
            out += "\(rest / ms)\(name)"
            rest %= ms
        }
        return out
    }
}

extension RouteTimeouts {
    /// `request 500ms`, `backendRequest 0s (disabled)`: the timeouts set, for `routes` and `explain`.
    public var descriptions: [String] {
        [("request", request), ("backendRequest", backendRequest)].compactMap { name, value in
            value.map { "\(name) \(GatewayDuration.format($0))\($0 == 0 ? " (disabled)" : "")" }
        }
    }
}

/// A rule's HTTPRoute `retry` (v1.6), validated at build time. A request is sent again, after
/// `backoffSeconds`, when its attempt answered one of `codes`, failed to connect, was reset or
/// closed before a response head, or ran past the backendRequest timeout; at most `attempts` times.
/// Never once a byte of the response reached the client, and never with a body that was streamed
/// beyond what the proxy buffers (docs/L7PROXY.md).
public struct RouteRetry: Hashable, Codable, Sendable {
    /// Response status codes that are retried (400-599), sorted.
    public var codes: [Int]
    /// Retries at most (after the first attempt).
    public var attempts: Int
    /// The least wait between attempts, in seconds.
    public var backoffSeconds: Double

    /// The retries when `attempts` is not set: one, as Envoy-based peers do.
    public static let defaultAttempts = 1
    /// The backoff when `backoff` is not set: 25 ms (Envoy's base interval).
    public static let defaultBackoffSeconds = 0.025
    /// The most `attempts` Portway takes: a retry storm against a failing backend multiplies its load.
    public static let maxAttempts = 10

    public init(codes: [Int] = [], attempts: Int = RouteRetry.defaultAttempts, backoffSeconds: Double = RouteRetry.defaultBackoffSeconds) {
        self.codes = codes
        self.attempts = attempts
        self.backoffSeconds = backoffSeconds
    }

    /// Validates a rule's `retry` (nil: none). Refused: a code outside 400-599, attempts below 1 or
    /// above `maxAttempts`, a backoff that is not a Gateway API Duration.
    public static func lower(_ retry: HTTPRouteRetry?) -> Result<RouteRetry?, RouteFilter.Unsupported> {
        guard let retry else { return .success(nil) }
        var out = RouteRetry()
        for code in retry.codes ?? [] {
            guard (400...599).contains(code) else {
                return .failure(RouteFilter.Unsupported(message: "retry.codes \(code) is not within 400-599"))
            }
        }
        out.codes = Array(Set(retry.codes ?? [])).sorted()
        if let attempts = retry.attempts {
            guard (1...maxAttempts).contains(attempts) else {
                return .failure(RouteFilter.Unsupported(message: "retry.attempts \(attempts) is not within 1-\(maxAttempts)"))
            }
            out.attempts = attempts
        }
        if let text = retry.backoff {
            guard let seconds = GatewayDuration.seconds(text) else {
                return .failure(RouteFilter.Unsupported(message: "retry.backoff \"\(text)\" is not a Gateway API duration"))
            }
            out.backoffSeconds = seconds
        }
        return .success(out)
    }
}
