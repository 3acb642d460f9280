// swift-tools-version: 6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "Ferry",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "Frontend", targets: ["Frontend"]),
        .executable(name: "Backend", targets: ["Backend"]),
        .executable(name: "Producer", targets: ["Producer"]),
        .executable(name: "Consumer", targets: ["Consumer"]),
        .executable(name: "ProcessingUnit", targets: ["ProcessingUnit"]),
        .executable(name: "ferry-zip", targets: ["FerryZipTool"]),
        .executable(name: "ferry-bench", targets: ["FerryBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.4.0",
                 traits: [.defaults, "CommandLineArguments"]),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.13.2"),
        .package(url: "https://github.com/vapor/multipart-kit.git", from: "4.7.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.1"),
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
    ],
    targets: [
        // MARK: - Services

        /// Web pages, static assets and the /api/* proxy to the Backend.
        .executableTarget(
            name: "Frontend",
            dependencies: [
                "FerryService", "FerryHTTPClient",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            resources: [.copy("Public"), .copy("Templates")],
            swiftSettings: swiftSettings
        ),
        /// REST API, users, SQLite, upload intake and the job-event consumer.
        .executableTarget(
            name: "Backend",
            dependencies: [
                "FerryService", "FerryBroker", "FerryBundle", "FerryHTTPClient", "FerryZip",
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "MultipartKit", package: "multipart-kit"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        /// HTTP → RabbitMQ publisher with publisher confirms.
        .executableTarget(name: "Producer", dependencies: ["FerryService", "FerryBroker"], swiftSettings: swiftSettings),
        /// RabbitMQ consumer that dispatches jobs to its ProcessingUnit and relays events.
        .executableTarget(
            name: "Consumer", dependencies: ["FerryService", "FerryBroker", "FerryHTTPClient"], swiftSettings: swiftSettings
        ),
        /// Runs jobs: unzip, Python environment, code.py, zipped output.
        .executableTarget(
            name: "ProcessingUnit",
            dependencies: [
                "FerryService", "FerryBundle", "FerryZip", "FerryFiles", "FerrySeccomp",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: - Tools

        /// `ferry-zip`: lists, extracts and creates archives with Ferry's zip wrapper (operators, tests).
        .executableTarget(
            name: "FerryZipTool",
            dependencies: ["FerryZip", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings
        ),

        /// `ferry-bench`: measures a running Ferry beside plain `python3 code.py` (scripts/bench).
        .executableTarget(
            name: "FerryBench",
            dependencies: ["FerryHTTPClient", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings
        ),

        // MARK: - Shared libraries

        /// Contracts between the services: job messages, job events, statuses, topology and configuration keys.
        .target(name: "FerryContracts", swiftSettings: swiftSettings),
        /// Ferry's RabbitMQ topology and the reconnecting publisher and consumer the services use.
        .target(
            name: "FerryBroker",
            dependencies: [
                "FerryAMQP", "FerryContracts", .product(name: "Logging", package: "swift-log"), .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Configuration", package: "swift-configuration"),
            ],
            swiftSettings: swiftSettings
        ),
        /// Walking and removing trees a job wrote: relative to open descriptors, never through a link.
        .target(name: "FerryFiles", swiftSettings: swiftSettings),
        /// The bundle rules: finding the project, code.py and requirements.txt in an uploaded zip.
        .target(
            name: "FerryBundle",
            dependencies: ["FerryZip", "FerryContracts", .product(name: "Configuration", package: "swift-configuration")],
            swiftSettings: swiftSettings
        ),
        /// What every service executable shares: configuration, logging, the health route and the run loop
        /// (no C library: the Frontend, which links it, needs neither librabbitmq nor libzip).
        .target(
            name: "FerryService",
            dependencies: [
                "FerryContracts",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: - C library wrappers (the only targets that import the C modules)

        /// AMQP 0-9-1 over rabbitmq-c: connections on their own threads, confirms, consumers.
        .target(
            name: "FerryAMQP",
            dependencies: ["CRabbitMQ", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        /// Zip archives over libzip: listing from the central directory, capped streaming extraction, creation.
        .target(name: "FerryZip", dependencies: ["CZip", "FerryFiles"], swiftSettings: swiftSettings),
        /// seccomp filters over libseccomp, compiled to the BPF program bubblewrap loads.
        .target(name: "FerrySeccomp", dependencies: ["CSeccomp"], swiftSettings: swiftSettings),
        /// HTTP client over libcurl: JSON, streamed files, timeouts, connection reuse.
        .target(
            name: "FerryHTTPClient",
            dependencies: [
                "FerryContracts",
                "CCurl",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: - System libraries (module.modulemap + shim.h only)

        .systemLibrary(name: "CRabbitMQ", pkgConfig: "librabbitmq", providers: [.apt(["librabbitmq-dev"])]),
        .systemLibrary(name: "CZip", pkgConfig: "libzip", providers: [.apt(["libzip-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),

        // MARK: - Tests

        /// Helpers shared by the test suites: temporary folders, free ports, service processes, raw zips.
        .target(name: "FerryTestSupport", dependencies: ["FerryHTTPClient"], path: "Tests/FerryTestSupport", swiftSettings: swiftSettings),
        /// Unit and local integration tests: contracts, zip, HTTP client, service routers and processes.
        .testTarget(
            name: "FerryTests",
            dependencies: [
                "FerryContracts", "FerryService", "FerryZip", "FerryHTTPClient", "FerryBundle", "FerryTestSupport", "FerryFiles", "FerrySeccomp",
                "Frontend", "Backend", "Producer", "Consumer", "ProcessingUnit", "FerryZipTool",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        /// Tests against a real RabbitMQ broker (scripts/test starts one; they fail without it).
        .testTarget(
            name: "BrokerTests",
            dependencies: ["FerryAMQP", "FerryContracts", "FerryBroker", "FerryTestSupport"],
            swiftSettings: swiftSettings
        ),
        /// The whole stack as processes with the real broker, driven through the public API.
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["FerryHTTPClient", "FerryZip", "FerryContracts", "FerryTestSupport"],
            swiftSettings: swiftSettings
        ),
    ]
)
