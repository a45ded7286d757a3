import KubeModels

/// The Gateway API conformance features (v1.6.1 names, `pkg/features` upstream) Portway claims:
/// the one list. The leader writes it as the GatewayClass's `status.supportedFeatures`, and
/// docs/GATEWAY-API.md's feature table must list exactly these as passing (a test compares them),
/// so a claim cannot drift from the tests behind it. A feature is here only when every upstream
/// test of it has a Portway test that passes, with real traffic through the Gateway NodePort where
/// the upstream test sends traffic. The core features of GATEWAY-HTTP (Gateway, HTTPRoute,
/// ReferenceGrant) are here because every core test of the doc's core table passes.
public enum GatewayFeatures {
    /// The core features of the GATEWAY-HTTP profile.
    public static let core: [String] = ["Gateway", "HTTPRoute", "ReferenceGrant"]

    /// Sorted in ascending order, as the spec requires of `supportedFeatures`.
    public static let supported: [String] = [
        "BackendTLSPolicy",
        "BackendTLSPolicySANValidation",
        "Gateway",
        "GatewayAddressEmpty",
        "GatewayFrontendClientCertificateValidation",
        "GatewayFrontendClientCertificateValidationInsecureFallback",
        "GatewayHTTPListenerIsolation",
        "GatewayHTTPSListenerDetectMisdirectedRequests",
        "GatewayInfrastructurePropagation",
        "GatewayPort8080",
        "HTTPRoute",
        "HTTPRoute303RedirectStatusCode",
        "HTTPRoute307RedirectStatusCode",
        "HTTPRoute308RedirectStatusCode",
        "HTTPRouteBackendProtocolWebSocket",
        "HTTPRouteBackendRequestHeaderModification",
        "HTTPRouteBackendTimeout",
        "HTTPRouteCORS",
        "HTTPRouteDestinationPortMatching",
        "HTTPRouteHostRewrite",
        "HTTPRouteMethodMatching",
        "HTTPRouteNamedRouteRule",
        "HTTPRouteParentRefPort",
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
        "ListenerSet",
        "ReferenceGrant",
    ]

    /// `status.supportedFeatures` of Portway's GatewayClasses.
    public static var supportedFeatures: [SupportedFeature] { supported.map(SupportedFeature.init(name:)) }
}
