import KubeModels

/// The Gateway API conformance features (v1.6.1 names, `pkg/features` upstream) Portway claims:
/// the one list. The leader writes it as the GatewayClass's `status.supportedFeatures`, and
/// docs/GATEWAY-API.md's feature table must list exactly these as passing (a test compares them),
/// so a claim cannot drift from the tests behind it. A feature is here only when every upstream
/// test of it has a Portway test that passes, with real traffic through the Gateway NodePort where
/// the upstream test sends traffic.
public enum GatewayFeatures {
    /// Sorted in ascending order, as the spec requires of `supportedFeatures`.
    public static let supported: [String] = [
        "GatewayPort8080",
        "HTTPRoute303RedirectStatusCode",
        "HTTPRoute307RedirectStatusCode",
        "HTTPRoute308RedirectStatusCode",
        "HTTPRouteBackendRequestHeaderModification",
        "HTTPRouteBackendTimeout",
        "HTTPRouteCORS",
        "HTTPRouteHostRewrite",
        "HTTPRouteMethodMatching",
        "HTTPRoutePathRedirect",
        "HTTPRoutePathRewrite",
        "HTTPRoutePortRedirect",
        "HTTPRouteQueryParamMatching",
        "HTTPRouteRequestMirror",
        "HTTPRouteRequestMultipleMirrors",
        "HTTPRouteRequestPercentageMirror",
        "HTTPRouteRequestTimeout",
        "HTTPRouteResponseHeaderModification",
        "HTTPRouteRetry",
        "HTTPRouteRetryBackendTimeout",
        "HTTPRouteRetryConnectionError",
        "HTTPRouteSchemeRedirect",
    ]

    /// `status.supportedFeatures` of Portway's GatewayClasses.
    public static var supportedFeatures: [SupportedFeature] { supported.map(SupportedFeature.init(name:)) }
}
