// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "Portway",
    products: [
        .executable(name: "portway", targets: ["portway"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.30.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
    ],
    targets: [
        // C library bindings: system libraries plus small shims for what Swift cannot call
        // directly (variadic curl_easy_setopt, libbpf option structs).
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .target(name: "CCurlShim", dependencies: ["CCurl"]),
        .systemLibrary(
            name: "CLibBPF",
            pkgConfig: "libbpf",
            providers: [.apt(["libbpf-dev", "libelf-dev"])]
        ),
        // The map layouts live once, in bpf/include/portway_maps.h, shared with the BPF programs.
        .target(
            name: "CPortwayBPF",
            dependencies: ["CLibBPF"],
            path: "bpf",
            exclude: ["progs", "README.md"],
            sources: ["shim"],
            publicHeadersPath: "include"
        ),

        // Pure code: Kubernetes object models and the translator.
        .target(name: "KubeModels", swiftSettings: strict),
        // RE2-syntax regular expressions matched in linear time (Gateway RegularExpression matches).
        .target(name: "LinearRegex", swiftSettings: strict),
        // What every layer shares: the blocking executor, the coalescing inbox, the lock box,
        // backoff, the version. No dependency.
        .target(name: "Runtime", swiftSettings: strict),
        .target(name: "LoadBalancer", dependencies: ["KubeModels"], swiftSettings: strict),
        // The Gateway API, owned once: listeners, route tables, precedence, matching, status, proxy
        // ports, explain. Pure (no I/O), like LoadBalancer, whose index it reads.
        .target(name: "GatewayCore", dependencies: ["LoadBalancer", "KubeModels", "LinearRegex"], swiftSettings: strict),
        .target(
            name: "FileSource",
            dependencies: ["KubeModels", "LoadBalancer", "GatewayCore", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),

        // I/O modules.
        .target(
            name: "KubeAPI",
            dependencies: [
                "KubeModels", "Runtime", "CCurlShim", .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),
        // A faithful in-process kube-apiserver for tests (TLS, tokens, list/watch, faults) and the envtest harness.
        .target(
            name: "KubeAPITestSupport",
            dependencies: [
                "KubeModels", "KubeAPI", .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "BPFMaps",
            dependencies: ["LoadBalancer", "CPortwayBPF", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // The tc datapath: loads bpf/out/portway_lb.o onto the pinned maps, attaches it (tcx/clsact).
        .target(
            name: "Datapath",
            dependencies: ["CPortwayBPF", "CLibBPF"],
            swiftSettings: strict
        ),
        // The node's L7 proxy (SwiftNIO): listens on the proxy ports, routes each request through a
        // swappable RequestRouter, forwards to pooled upstream connections.
        .target(
            name: "L7Proxy",
            dependencies: [
                "LoadBalancer", "GatewayCore", "KubeModels",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "Agent",
            dependencies: [
                "KubeModels", "LoadBalancer", "GatewayCore", "FileSource", "KubeAPI", "BPFMaps", "Datapath", "L7Proxy", "Runtime",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "portway",
            dependencies: [
                "Agent", "LoadBalancer", "GatewayCore", "FileSource", "BPFMaps", "Datapath", "L7Proxy", "Runtime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),

        // What each fuzz target does with one input; fuzz/ and FuzzCorpusTests both call it.
        .target(
            name: "PortwayFuzzEntries",
            dependencies: ["FileSource", "KubeAPI", "BPFMaps", "LoadBalancer", "GatewayCore", "KubeModels", "L7Proxy", "LinearRegex"],
            swiftSettings: strict
        ),

        // What every test target shares (never linked into `portway`): the bpffs fixture, builders of
        // Kubernetes objects and their YAML, `eventually`, the seeded generator, the process runner,
        // golden files. Not the test API server: that is KubeAPITestSupport (see docs/TESTING.md).
        .target(
            name: "PortwayTestSupport",
            dependencies: ["KubeModels", "LoadBalancer", "BPFMaps"],
            swiftSettings: strict
        ),

        // Benchmarks (`make bench`): ratios measured side by side in one run.
        .target(name: "CBenchBaseline", dependencies: ["CPortwayBPF", "CLibBPF"]),
        .executableTarget(
            name: "portway-bench",
            dependencies: ["LoadBalancer", "KubeModels", "KubeAPI", "BPFMaps", "CBenchBaseline", "CPortwayBPF"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "KubeAPITests",
            dependencies: [
                "PortwayTestSupport",
                "KubeAPI", "KubeModels", "KubeAPITestSupport", "Agent", "BPFMaps", "LoadBalancer", "GatewayCore", "Runtime",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The local-cluster end-to-end scenarios (`make e2e`): real control plane, node namespaces, agents.
        .testTarget(
            name: "E2ETests",
            dependencies: ["PortwayTestSupport", "KubeAPI", "KubeAPITestSupport", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "DatapathTests",
            dependencies: ["PortwayTestSupport", "Datapath", "BPFMaps", "CPortwayBPF", "CLibBPF"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "BPFMapsTests",
            dependencies: ["PortwayTestSupport", "BPFMaps", "LoadBalancer", "CPortwayBPF", "CLibBPF"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "AgentTests",
            dependencies: [
                "PortwayTestSupport",
                "Agent", "BPFMaps", "LoadBalancer", "GatewayCore", "KubeModels", "KubeAPI", "KubeAPITestSupport", "L7Proxy", "Runtime",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "LoadBalancerTests",
            dependencies: ["PortwayTestSupport", "LoadBalancer", "KubeModels", "FileSource"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GatewayCoreTests",
            dependencies: ["PortwayTestSupport", "GatewayCore", "LoadBalancer", "KubeModels", "FileSource", "LinearRegex"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "LinearRegexTests",
            dependencies: ["PortwayTestSupport", "LinearRegex"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "FuzzCorpusTests",
            dependencies: ["PortwayTestSupport", "PortwayFuzzEntries"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "L7ProxyTests",
            dependencies: [
                "PortwayTestSupport",
                "L7Proxy", "LoadBalancer", "GatewayCore", "KubeModels",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "FileSourceTests",
            dependencies: ["PortwayTestSupport", "FileSource", "LoadBalancer", "GatewayCore", "KubeModels", "BPFMaps"],
            exclude: ["Golden"],
            swiftSettings: strict
        ),
    ]
)

// The libFuzzer driver (`make fuzz`): only with PORTWAY_FUZZ set, built with -sanitize=fuzzer,address
// in its own scratch path (.build-fuzz), so a normal `swift build` never sees it. One executable for
// every target: `portway-fuzz TARGET [libFuzzer flags]` (see fuzz/README.md).
if Context.environment["PORTWAY_FUZZ"] != nil {
    package.targets.append(.executableTarget(
        name: "portway-fuzz", dependencies: ["PortwayFuzzEntries"], path: "fuzz/driver", swiftSettings: strict))
}
