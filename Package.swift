// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

/// The live test targets' dependencies: the modules under test and the shared support.
let testDependencies: [Target.Dependency] = [
    "WardenTestSupport", "WardenControlPlane", "WardenGateway", "WardenServer", "WardenClient", "WardenIdentity",
    "WardenStore", "WardenCore", "Cedar", "WardenInspect", "WardenRisk", "WardenAudit", "WardenSimulation",
    "WardenSidecar", "WardenNode",
    .product(name: "Crypto", package: "swift-crypto"),
    .product(name: "AsyncHTTPClient", package: "async-http-client"),
    .product(name: "X509", package: "swift-certificates"),
    .product(name: "Hummingbird", package: "hummingbird"),
    .product(name: "HummingbirdTesting", package: "hummingbird"),
    .product(name: "SwiftASN1", package: "swift-asn1"),
    .product(name: "NIOCore", package: "swift-nio"),
    .product(name: "NIOPosix", package: "swift-nio"),
    .product(name: "NIOEmbedded", package: "swift-nio"),
    .product(name: "NIOHTTP1", package: "swift-nio"),
    .product(name: "NIOSSL", package: "swift-nio-ssl"),
]

let package = Package(
    name: "warden",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "warden", targets: ["warden"]),
        .library(name: "Cedar", targets: ["Cedar"]),
        .library(name: "WardenCore", targets: ["WardenCore"]),
        .library(name: "WardenIdentity", targets: ["WardenIdentity"]),
        .library(name: "WardenStore", targets: ["WardenStore"]),
        .library(name: "WardenAudit", targets: ["WardenAudit"]),
        .library(name: "WardenInspect", targets: ["WardenInspect"]),
        .library(name: "WardenControlPlane", targets: ["WardenControlPlane"]),
        .library(name: "WardenGateway", targets: ["WardenGateway"]),
        .library(name: "WardenServer", targets: ["WardenServer"]),
        .library(name: "WardenRisk", targets: ["WardenRisk"]),
        .library(name: "WardenClient", targets: ["WardenClient"]),
        .library(name: "WardenSidecar", targets: ["WardenSidecar"]),
        .library(name: "WardenNode", targets: ["WardenNode"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
    ],
    targets: [
        .target(name: "Cedar", swiftSettings: swiftSettings),
        .target(
            name: "WardenCore",
            dependencies: ["Cedar", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "WardenIdentity",
            dependencies: [
                "WardenCore", "Cedar", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "WardenStore",
            dependencies: [
                "WardenCore", "WardenAudit", "Cedar", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "WardenAudit",
            dependencies: [
                "WardenCore", "WardenIdentity", "Cedar",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(name: "WardenRisk", dependencies: ["WardenCore"], swiftSettings: swiftSettings),
        // Pure inspection of what agents and tool servers send: JSON-RPC framing, JSON Schema with the linear-time
        // regex, DLP, the injection scan. No I/O; fuzzable on its own.
        .target(name: "WardenInspect", dependencies: ["WardenCore", "Cedar"], swiftSettings: swiftSettings),
        // The control plane, no HTTP: configuration, data directory, agents, enrollment, tokens, credential
        // verification, SVIDs, policies, secrets, trust, rate limits, the risk hub.
        .target(
            name: "WardenControlPlane",
            dependencies: [
                "WardenCore", "WardenIdentity", "WardenStore", "WardenAudit", "WardenRisk", "WardenInspect", "Cedar",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The enforcement point: the call pipeline and its two front ends (`/r/` and MCP).
        .target(
            name: "WardenGateway",
            dependencies: [
                "WardenCore", "WardenIdentity", "WardenStore", "WardenAudit", "WardenRisk", "WardenInspect",
                "WardenControlPlane", "Cedar",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The server: the Hummingbird application, its routes and listeners, and the long-lived services.
        .target(
            name: "WardenServer",
            dependencies: [
                "WardenCore", "WardenIdentity", "WardenStore", "WardenAudit", "WardenRisk", "WardenInspect",
                "WardenControlPlane", "WardenGateway", "Cedar",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "WardenClient",
            dependencies: [
                "WardenCore", "WardenIdentity", "Cedar",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: swiftSettings
        ),
        // `warden agent proxy`: a loopback sidecar that holds an agent's key and adds its token and proofs.
        .target(
            name: "WardenSidecar",
            dependencies: [
                "WardenClient", "WardenCore", "WardenIdentity", "WardenInspect", "Cedar",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
        // `warden node`: the SPIFFE Workload API on a unix socket for kernel-attested workloads of one host.
        .target(
            name: "WardenNode",
            dependencies: [
                "WardenClient", "WardenCore", "WardenIdentity", "WardenSidecar", "Cedar",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["Generated/README.md"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "WardenSimulation",
            dependencies: [
                "Cedar", "WardenCore", "WardenIdentity", "WardenControlPlane", "WardenGateway", "WardenServer",
                "WardenClient", "WardenRisk",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "warden",
            dependencies: [
                "Cedar", "WardenCore", "WardenIdentity", "WardenStore", "WardenAudit", "WardenControlPlane",
                "WardenGateway",
                "WardenServer", "WardenClient", "WardenSimulation", "WardenSidecar", "WardenNode",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "CedarBenchmark",
            dependencies: ["Cedar", "WardenCore"],
            path: "Benchmarks/CedarBenchmark",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "IdentityBenchmark",
            dependencies: [
                "WardenIdentity", "WardenCore", "WardenControlPlane", "Cedar",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Benchmarks/IdentityBenchmark",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "AuditBenchmark",
            dependencies: [
                "WardenAudit", "WardenStore", "WardenIdentity", "WardenCore",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Benchmarks/AuditBenchmark",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "GatewayBenchmark",
            dependencies: [
                "WardenControlPlane", "WardenGateway", "WardenServer", "WardenIdentity", "WardenCore", "Cedar",
                "WardenClient",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            path: "Benchmarks/GatewayBenchmark",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "MCPBenchmark",
            dependencies: [
                "WardenControlPlane", "WardenGateway", "WardenServer", "WardenIdentity", "WardenCore", "Cedar",
                "WardenInspect",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Benchmarks/MCPBenchmark",
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "CedarTests", dependencies: ["Cedar"], swiftSettings: swiftSettings),
        .testTarget(
            name: "WardenInspectTests", dependencies: ["WardenInspect", "WardenCore", "Cedar"],
            swiftSettings: swiftSettings),
        .testTarget(name: "WardenRiskTests", dependencies: ["WardenRisk", "WardenCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "WardenCoreTests", dependencies: ["WardenCore", "Cedar", "WardenControlPlane"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "WardenIdentityTests",
            dependencies: [
                "WardenIdentity", "WardenCore", "Cedar", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WardenStoreTests",
            dependencies: ["WardenStore", "WardenCore", "Cedar", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WardenAuditTests",
            dependencies: [
                "WardenAudit", "WardenStore", "WardenIdentity", "WardenCore", "Cedar",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        // What the live tests share: a control plane on a fresh data directory, agents, a live gateway in front of a
        // recording upstream, a mock MCP server, raw sockets, the built CLI, the Python interop runner.
        .target(
            name: "WardenTestSupport",
            dependencies: [
                "WardenControlPlane", "WardenGateway", "WardenServer", "WardenIdentity", "WardenStore", "WardenCore",
                "WardenInspect", "Cedar",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            path: "Tests/WardenTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WardenControlPlaneTests",
            dependencies: testDependencies,
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WardenGatewayTests",
            dependencies: testDependencies,
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WardenServerTests",
            dependencies: testDependencies,
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WardenSimulationTests",
            dependencies: testDependencies,
            swiftSettings: swiftSettings
        ),
    ]
)
