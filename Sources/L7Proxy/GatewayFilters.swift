import KubeModels

// The Gateway API HTTPRoute filters (KubeModels) in the proxy's terms. Pure; the route-table
// adapter applies them to the rule a request matched.

extension HeaderModifier {
    /// A RequestHeaderModifier or ResponseHeaderModifier filter.
    public init(_ filter: HTTPHeaderFilter) {
        self.init(
            set: (filter.set ?? []).map { HeaderField($0.name, $0.value) },
            add: (filter.add ?? []).map { HeaderField($0.name, $0.value) },
            remove: filter.remove ?? [])
    }

    /// Both modifiers in order (the later one's edits applied after the earlier one's).
    func followed(by next: HeaderModifier) -> HeaderModifier {
        HeaderModifier(set: set + next.set, add: add + next.add, remove: remove + next.remove)
    }
}

extension PathModifier {
    /// A path modifier; `matchedPrefix` is the rule's PathPrefix value (ReplacePrefixMatch needs it).
    /// nil when the modifier is incomplete or ReplacePrefixMatch has no prefix match to replace.
    public init?(_ modifier: HTTPPathModifier, matchedPrefix: String?) {
        switch modifier.type {
        case "ReplaceFullPath":
            guard let full = modifier.replaceFullPath else { return nil }
            self = .replaceFullPath(full)
        case "ReplacePrefixMatch":
            guard let replacement = modifier.replacePrefixMatch, let matchedPrefix else { return nil }
            self = .replacePrefixMatch(matchedPrefix: matchedPrefix, replacement: replacement)
        default:
            return nil
        }
    }
}

/// The effect of a matched rule's filters.
public enum RuleFilters {
    /// Applies `filters` to `forward`; returns the redirect instead when the rule has a
    /// RequestRedirect (the proxy answers it without forwarding). Unknown filter types are skipped
    /// (the control plane reports them in status).
    public static func apply(_ filters: [HTTPRouteFilter], matchedPrefix: String?, to forward: inout ForwardDecision) -> RedirectDecision? {
        var redirect: RedirectDecision?
        for filter in filters {
            switch filter.type {
            case "RequestHeaderModifier":
                if let modifier = filter.requestHeaderModifier {
                    forward.requestHeaders = forward.requestHeaders.followed(by: HeaderModifier(modifier))
                }
            case "ResponseHeaderModifier":
                if let modifier = filter.responseHeaderModifier {
                    forward.responseHeaders = forward.responseHeaders.followed(by: HeaderModifier(modifier))
                }
            case "URLRewrite":
                if let rewrite = filter.urlRewrite {
                    forward.rewrite = URLRewrite(
                        hostname: rewrite.hostname, path: rewrite.path.flatMap { PathModifier($0, matchedPrefix: matchedPrefix) })
                }
            case "RequestRedirect":
                if let spec = filter.requestRedirect {
                    redirect = RedirectDecision(
                        scheme: spec.scheme, hostname: spec.hostname, port: spec.port,
                        path: spec.path.flatMap { PathModifier($0, matchedPrefix: matchedPrefix) },
                        statusCode: spec.statusCode ?? 302, route: forward.route)
                }
            default:
                continue
            }
        }
        return redirect
    }
}

/// The filters of a backendRef: applied only to requests forwarded to that backend, after the rule's.
public enum BackendFilters {
    /// Adds `filters`' header modifiers to `upstream`. Other types are skipped (the control plane
    /// reports them in the route's status: only the header modifiers are supported on a backendRef).
    public static func apply(_ filters: [HTTPRouteFilter], to upstream: inout WeightedUpstream) {
        for filter in filters {
            switch filter.type {
            case "RequestHeaderModifier":
                if let modifier = filter.requestHeaderModifier {
                    upstream.requestHeaders = upstream.requestHeaders.followed(by: HeaderModifier(modifier))
                }
            case "ResponseHeaderModifier":
                if let modifier = filter.responseHeaderModifier {
                    upstream.responseHeaders = upstream.responseHeaders.followed(by: HeaderModifier(modifier))
                }
            default:
                continue
            }
        }
    }
}
