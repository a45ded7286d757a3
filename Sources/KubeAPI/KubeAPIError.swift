import CoreMetrics
import Foundation
import KubeModels
import Synchronization

/// `portway_api_errors_total{code}`: every error answer of the API server by HTTP code, and
/// failures on the way there as code "transport". Recorded through swift-metrics' global factory
/// (the agent bootstraps it with its Prometheus registry; elsewhere it is a no-op).
enum APIErrorMetrics {
    private static let counters = Mutex<[String: CoreMetrics.Counter]>([:])

    static func count(code: String) {
        let counter = counters.withLock { all in
            if let counter = all[code] { return counter }
            let counter = CoreMetrics.Counter(label: "portway_api_errors_total", dimensions: [("code", code)])
            all[code] = counter
            return counter
        }
        counter.increment()
    }
}

/// What a request was doing, for error messages: "list endpointslices (discovery.k8s.io) cluster-wide".
public struct RequestDescription: Sendable, CustomStringConvertible {
    public var verb: String
    public var resource: ResourceDescriptor
    public var namespace: String?
    public var name: String?

    public var description: String {
        var text = "\(verb) \(resource.plural)"
        if !resource.group.isEmpty { text += " (\(resource.group))" }
        if let name { text += " \"\(name)\"" }
        if resource.namespaced {
            text += namespace.map { " in namespace \($0)" } ?? " cluster-wide"
        }
        return text
    }
}

/// An error from the API server (decoded from its Status body) or from the way there.
public struct KubeAPIError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable {
        /// The server answered with an error status; `status` is its decoded Status body when it had one.
        case server(code: Int, status: Status?)
        case transport(TransportError)
        /// The response was not what the API promises (bad JSON).
        case decoding(String)
    }

    public var kind: Kind
    public var request: RequestDescription

    /// The HTTP code (or the Status code of a watch ERROR event), nil for transport/decoding errors.
    public var code: Int? {
        if case .server(let code, _) = kind { return code }
        return nil
    }

    public var status: Status? {
        if case .server(_, let status) = kind { return status }
        return nil
    }

    public var reason: String? { status?.reason }

    /// 410 Gone / Expired: the resourceVersion is too old, relist.
    public var isExpired: Bool { code == 410 || reason == "Expired" || reason == "Gone" }
    /// 429 or 5xx: the server is overloaded or failing; back off and retry the same request.
    public var isRetryable: Bool {
        switch kind {
        case .server(let code, _): return code == 429 || code >= 500
        case .transport: return true
        case .decoding: return false
        }
    }

    public var description: String {
        switch kind {
        case .server(let code, let status):
            let message = status?.message ?? "HTTP \(code)"
            switch code {
            case 401: return "unauthorized: \(request): \(message)"
            case 403: return "forbidden: \(request): \(message)"
            default:
                let reason = status?.reason.map { $0.prefix(1).lowercased() + $0.dropFirst() } ?? "HTTP \(code)"
                return "\(reason): \(request): \(message)"
            }
        case .transport(let error): return "\(request): \(error)"
        case .decoding(let detail): return "\(request): bad response: \(detail)"
        }
    }

    /// Builds the error for a non-2xx response, decoding its Status body when there is one.
    static func fromResponse(code: Int, body: Data, request: RequestDescription) -> KubeAPIError {
        APIErrorMetrics.count(code: String(code))
        // An error body is bounded like every other JSON body; one over the limits is just not decoded.
        let status = (try? JSONLimits.default.check(body)) == nil ? nil : try? JSONDecoder().decode(Status.self, from: body)
        return KubeAPIError(kind: .server(code: code, status: status?.kind == "Status" || status?.code != nil ? status : nil), request: request)
    }
}
