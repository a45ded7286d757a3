// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "Portway",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "portway", targets: ["portway"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
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
        .target(name: "LoadBalancer", dependencies: ["KubeModels"], swiftSettings: strict),
        .target(
            name: "FileSource",
            dependencies: ["KubeModels", "LoadBalancer", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),

        // I/O modules.
        .target(
            name: "KubeAPI",
            dependencies: ["KubeModels", "CCurlShim", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(
            name: "BPFMaps",
            dependencies: ["LoadBalancer", "CPortwayBPF", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(
            name: "Agent",
            dependencies: [
                "KubeModels", "LoadBalancer", "FileSource", "KubeAPI", "BPFMaps",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "portway",
            dependencies: [
                "Agent", "LoadBalancer", "FileSource", "BPFMaps",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        .testTarget(
            name: "BPFMapsTests",
            dependencies: ["BPFMaps", "LoadBalancer", "CPortwayBPF"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "LoadBalancerTests",
            dependencies: ["LoadBalancer", "KubeModels", "FileSource"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "FileSourceTests",
            dependencies: ["FileSource", "LoadBalancer", "KubeModels"],
            swiftSettings: strict
        ),
    ]
)
