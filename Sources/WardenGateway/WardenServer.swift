import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import WardenCore

/// Rotates the token-signing key on schedule and prunes expired state.
struct KeyRotationService: Service {
    let cp: ControlPlane
    let logger: Logger

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do { try await Task.sleep(for: .seconds(30)) } catch { return }  // cancelled: shutting down
                do throws(WardenError) {
                    if let kid = try cp.rotateIfDue() {
                        logger.info("signing key rotated", metadata: ["kid": "\(kid)"])
                    }
                } catch {
                    logger.error("signing key rotation failed", metadata: ["error": "\(error.message)"])
                }
            }
        }
    }
}

/// `warden serve`: opens the data directory, builds the control plane and runs the HTTP server until SIGTERM/SIGINT.
public enum WardenServer {
    public static func run(config: WardenConfig, onListening: (@Sendable (String) -> Void)? = nil) async throws {
        var logger = Logger(label: "warden")
        logger.logLevel = .info
        let (host, port) = try config.listenAddress()
        try SecureFile.ensureDirectory(config.data)
        let lock = try DataDirectoryLock(path: config.data)
        let cp = try ControlPlane(config: config)
        let router = WardenRouter.build(cp)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "warden"),
            services: [KeyRotationService(cp: cp, logger: logger)],
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? port
                let line =
                    "warden: serving trust domain \(config.trustDomain) on \(host):\(bound), issuer \(cp.issuer), data \(config.data) (admin token in \(config.data)/admin.token)"
                print(line)
                fflush(nil)
                onListening?(line)
            },
            logger: logger
        )
        try await app.runService()
        withExtendedLifetime(lock) {}
    }
}
