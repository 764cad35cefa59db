// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "warden",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "warden", targets: ["warden"]),
        .library(name: "Cedar", targets: ["Cedar"]),
        .library(name: "WardenCore", targets: ["WardenCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
    ],
    targets: [
        .target(name: "Cedar", swiftSettings: swiftSettings),
        .target(name: "WardenCore", dependencies: ["Cedar"], swiftSettings: swiftSettings),
        .target(
            name: "WardenIdentity",
            dependencies: [
                "WardenCore", "Cedar", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "warden",
            dependencies: [
                "Cedar", "WardenCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
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
            dependencies: ["WardenIdentity", "WardenCore", "Cedar", .product(name: "Crypto", package: "swift-crypto")],
            path: "Benchmarks/IdentityBenchmark",
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "CedarTests", dependencies: ["Cedar"], swiftSettings: swiftSettings),
        .testTarget(name: "WardenCoreTests", dependencies: ["WardenCore", "Cedar"], swiftSettings: swiftSettings),
        .testTarget(
            name: "WardenIdentityTests",
            dependencies: [
                "WardenIdentity", "WardenCore", "Cedar", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
