import GatewayCore

// The lowered HTTPRoute filters (`RouteFilter`, GatewayCore) in the proxy's terms: what a matched
// rule, and the backend chosen for it, do to the request and response. Pure.

/// The effect of a matched rule's filters.
public enum RuleFilters {
    /// Applies `filters` to `forward`; returns the redirect instead when the rule has a
    /// RequestRedirect (the proxy answers it without forwarding).
    public static func apply(_ filters: [RouteFilter], to forward: inout ForwardDecision) -> RedirectDecision? {
        var redirect: RedirectDecision?
        for filter in filters {
            switch filter {
            case .requestHeaderModifier(let modifier):
                forward.requestHeaders = forward.requestHeaders.followed(by: modifier)
            case .responseHeaderModifier(let modifier):
                forward.responseHeaders = forward.responseHeaders.followed(by: modifier)
            case .urlRewrite(let rewrite):
                forward.rewrite = rewrite
            case .requestRedirect(var decision):
                decision.route = forward.route
                redirect = decision
            case .requestMirror(let mirror):
                // A mirror whose backendRef did not resolve is not configured (ResolvedRefs=False).
                guard mirror.backend.failure == nil else { continue }
                forward.mirrors.append(MirrorTarget(
                    upstream: GatewayRouteTableRouter.upstream(mirror.backend),
                    numerator: UInt64(max(0, mirror.numerator)), denominator: UInt64(max(0, mirror.denominator))))
            case .cors(let policy):
                forward.cors = policy
            }
        }
        return redirect
    }
}

/// The filters of a backendRef: applied only to requests forwarded to that backend, after the rule's.
public enum BackendFilters {
    /// Adds `filters`' header modifiers to `upstream` (the only kinds a backendRef takes: the
    /// builder refuses the others, so none reaches here).
    public static func apply(_ filters: [RouteFilter], to upstream: inout WeightedUpstream) {
        for filter in filters {
            switch filter {
            case .requestHeaderModifier(let modifier):
                upstream.requestHeaders = upstream.requestHeaders.followed(by: modifier)
            case .responseHeaderModifier(let modifier):
                upstream.responseHeaders = upstream.responseHeaders.followed(by: modifier)
            case .requestRedirect, .urlRewrite, .requestMirror, .cors:
                continue
            }
        }
    }
}
