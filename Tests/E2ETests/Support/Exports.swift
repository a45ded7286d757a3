// The helpers every test target shares (Sources/PortwayTestSupport; see docs/TESTING.md).
@_exported import PortwayTestSupport
