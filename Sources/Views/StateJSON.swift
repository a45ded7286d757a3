import LoadBalancer
// The `portway translate` JSON (docs/CLI-JSON.md). Each piece is a separate function so that
// `bpf lb list -o json` can reuse them and add its IDs (serviceID, revNatID, backendID, slot).

/// `{"address","port","protocol","scope"}`.
public func json(for frontend: Frontend) -> JSONObject {
    [
        "address": .string(frontend.address.description),
        "port": .integer(frontend.port),
        "protocol": .string(frontend.proto.rawValue),
        "scope": .string(frontend.scope.rawValue),
    ]
}

/// `{"address","port","protocol","state"}`.
public func json(for backend: Backend) -> JSONObject {
    [
        "address": .string(backend.address.description),
        "port": .integer(backend.port),
        "protocol": .string(backend.proto.rawValue),
        "state": .string(backend.state.rawValue),
    ]
}

/// `{"namespace","name","port"}`.
public func json(for service: ServiceReference) -> JSONObject {
    ["namespace": .string(service.namespace), "name": .string(service.name), "port": .integer(service.port)]
}

/// One element of `services`. `backend` renders each backend with its index in `entry.backends`
/// (override it to add per-backend IDs).
public func json(
    for entry: FrontendEntry,
    backend: (_ index: Int, _ backend: Backend) -> JSONObject = { json(for: $1) }
) -> JSONObject {
    [
        "frontend": .object(json(for: entry.frontend)),
        "type": .string(entry.type.rawValue),
        "flags": .array(entry.flags.names.map { .string($0) }),
        "l7ProxyPort": .integer(entry.l7ProxyPort),
        "affinityTimeoutSeconds": .integer(entry.affinityTimeoutSeconds),
        "service": .object(json(for: entry.service)),
        "backends": .array(entry.backends.enumerated().map { .object(backend($0.offset, $0.element)) }),
    ]
}

/// `{"object","field","message"}`.
public func json(for warning: TranslationWarning) -> JSONObject {
    ["object": .string(warning.object), "field": .string(warning.field), "message": .string(warning.message)]
}

/// The whole document: `{"services":[…],"warnings":[…]}`, entries in the state's (frontend) order.
public func json(for state: DesiredL4State) -> JSONObject {
    [
        "services": .array(state.entries.map { .object(json(for: $0)) }),
        "warnings": .array(state.warnings.map { .object(json(for: $0)) }),
    ]
}
