import Crypto
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOSSL
import ServiceLifecycle
import WardenAudit
import WardenControlPlane
import WardenCore
import WardenGateway
import WardenIdentity
import WardenRisk
import X509

/// Rotates the token-signing key on schedule and prunes expired state.
struct KeyRotationService: Service {
    let cp: ControlPlane
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
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

/// Signs audit checkpoints when due (also when the log is idle), prunes entries past the retention, and at shutdown
/// drains the writer and signs a final checkpoint, so the tail of the log is covered by a signature.
struct AuditService: Service {
    let cp: ControlPlane
    let logger: Logger

    func run() async throws {
        // Open tails end when shutdown begins, so that the listener can drain its connections.
        await withGracefulShutdownHandler {
            await tick()
        } onGracefulShutdown: {
            cp.audit.finishUpdates()
        }
        cp.flushRefusalSummaries(all: true)
        await cp.audit.flush()
        do throws(WardenError) { try cp.audit.checkpoint() } catch {
            logger.error("final audit checkpoint failed", metadata: ["error": "\(error.message)"])
        }
    }

    func tick() async {
        await cancelWhenGracefulShutdown {
            var lastPrune = ContinuousClock.now - .seconds(3600)
            while !Task.isCancelled {
                do { try await Task.sleep(for: .seconds(1)) } catch { break }
                await cp.audit.probe()
                cp.flushRefusalSummaries()
                cp.audit.checkpointIfDue()
                if let retention = cp.config.audit.retention, ContinuousClock.now - lastPrune >= .seconds(3600) {
                    lastPrune = ContinuousClock.now
                    do throws(WardenError) {
                        let cutoff = (cp.now() - retention) * 1_000_000
                        let anchor = try cp.audit.prune(through: try cp.audit.lastSeq(before: cutoff))
                        logger.info("audit retention applied", metadata: ["pruned_through": "\(anchor)"])
                    } catch {
                        logger.error("audit pruning failed", metadata: ["error": "\(error.message)"])
                    }
                }
            }
        }
    }
}

/// Reloads the policy set on SIGHUP (keeping the last good one on error), and closes the gateway's upstream pool at
/// shutdown.
struct GatewayService: Service {
    let gateway: Gateway
    let mcp: MCPGateway?
    let logger: Logger

    func run() async throws {
        let cp = gateway.cp
        signal(SIGHUP, SIG_IGN)
        let (hangups, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        source.setEventHandler { continuation.yield() }
        source.resume()
        await cancelWhenGracefulShutdown {
            for await _ in hangups {
                do throws(WardenError) {
                    let s = try await cp.reloadPolicies(actor: "system")
                    logger.info(
                        "policies reloaded (SIGHUP)", metadata: ["policies": "\(s.count)", "digest": "\(s.digest)"])
                } catch {
                    logger.error(
                        "policy reload refused; the last good set stays", metadata: ["error": "\(error.message)"])
                }
            }
        }
        source.cancel()
        continuation.finish()
        await mcp?.shutdown()
        await gateway.shutdown()
    }
}

/// Runs the risk engine's consumer until shutdown; restores the saved baselines at start, saves the changed ones every
/// minute and at shutdown.
struct RiskService: Service {
    let engine: RiskEngine
    let cp: ControlPlane
    let logger: Logger

    /// Restores the saved baselines and the trust scores they lowered. Called before any listener opens, so a
    /// restart never serves a request at an agent's old, higher trust.
    static func restore(_ engine: RiskEngine, cp: ControlPlane, logger: Logger) {
        do {
            let saved = try cp.store.riskBaselines()
            let n = engine.restore(saved.map { RiskEngine.Saved(key: $0.key, isRole: $0.isRole, json: $0.json) })
            if n > 0 { logger.info("risk baselines restored", metadata: ["count": "\(n)"]) }
        } catch {
            logger.error(
                "risk baselines could not be read; learning starts again", metadata: ["error": "\(error.message)"])
        }
    }

    func run() async throws {
        // The alert recorder outlives the engine's loop: the alerts queued before the shutdown are still written
        // (the audit service stops after this one).
        async let alerts: Void = cp.risk.recordAlerts(cp.audit, logger: logger)
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await engine.run() }
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(60))
                        save()
                    }
                }
                await group.next()
                group.cancelAll()
            }
        }
        engine.stop()
        save()
        cp.risk.finishAlerts()
        await alerts
    }

    func save() {
        let changes = engine.takeChanges()
        do {
            try cp.store.saveRiskBaselines(
                changes.map { (key: $0.key, isRole: $0.isRole, json: $0.json) }, now: cp.now())
        } catch {
            engine.requeue(changes)
            logger.error("risk baselines could not be saved", metadata: ["error": "\(error.message)"])
        }
    }
}

/// Runs the continuous audit export to a file.
struct AuditExportService: Service {
    let exporter: AuditFileExporter

    func run() async throws {
        await cancelWhenGracefulShutdown { await exporter.run() }
        _ = try? exporter.exportPending()
    }
}

/// `warden serve`: opens the data directory, builds the control plane and runs the HTTP listener (and, when
/// configured, the mutual-TLS listener) until SIGTERM/SIGINT.
public enum WardenServer {
    public static func run(config: WardenConfig) async throws {
        var logger = Logger(label: "warden")
        logger.logLevel = .info
        try config.validate()
        let (host, port) = try config.listenAddress()
        try SecureFile.ensureDirectory(config.data)
        let lock = try DataDirectoryLock(path: config.data)
        let cp = try ControlPlane(config: config, guardRestart: true)
        // Background services first: the group stops services in reverse order, so the listeners stop taking requests
        // before the audit service drains the writer and signs its final checkpoint.
        let gateway = try Gateway(cp: cp)
        let mcp = config.mcpServers.isEmpty ? nil : try MCPGateway(gateway: gateway)
        var services: [any Service] = [
            KeyRotationService(cp: cp, logger: logger), AuditService(cp: cp, logger: logger),
            GatewayService(gateway: gateway, mcp: mcp, logger: logger),
        ]
        if config.risk.enabled {
            let webhook = config.risk.webhook.map { WebhookSender(url: $0, logger: logger) }
            if let webhook { services.append(RiskWebhookService(sender: webhook)) }
            var notify: (@Sendable (String) -> Void)?
            if let webhook { notify = { webhook.send($0) } }
            let engine = RiskEngine(
                actions: ControlPlaneRiskActions(cp: cp, notify: notify),
                tunings: config.risk.tunings, trust: config.risk.trust, queueCapacity: config.risk.queueSize,
                clock: cp.clock)
            cp.risk.attach(engine)
            RiskService.restore(engine, cp: cp, logger: logger)
            services.append(RiskService(engine: engine, cp: cp, logger: logger))
        }
        if let e = config.audit.export {
            services.append(
                AuditExportService(
                    exporter: AuditFileExporter(
                        log: cp.audit, path: e.path, format: AuditFormat(rawValue: e.format) ?? .jsonl,
                        maxBytes: e.maxBytes, keep: e.keep)))
        }
        services.append(
            Application(
                router: WardenRouter.build(cp, gateway: gateway, mcp: mcp),
                server: httpServer(
                    config.limits, sources: SourceConnections(limit: config.limits.maxConnectionsPerSource)),
                configuration: .init(
                    address: .hostname(host, port: port), serverName: "warden",
                    availableConnectionsDelegate: MaximumAvailableConnections(config.limits.maxConnections)),
                onServerRunning: { channel in
                    let p = cp.policies.snapshot
                    announce(
                        "warden: serving trust domain \(config.trustDomain) on \(host):\(channel.localAddress?.port ?? port), issuer \(cp.issuer), data \(config.data) (admin token in \(config.data)/admin.token); \(p.count) policies from \(p.files.count) files; routes: \(config.routes.keys.sorted().map { "/r/\($0)" }.joined(separator: " "))\(config.mcpServers.isEmpty ? "" : "; MCP: /mcp " + config.mcpServers.keys.sorted().map { "/mcp/\($0)" }.joined(separator: " "))"
                    )
                },
                logger: logger))
        if let tlsListen = config.tlsListen, let tlsBase = config.tlsBase {
            let (tlsHost, tlsPort) = try WardenConfig.address(tlsListen)
            services.append(
                Application(
                    router: WardenRouter.build(cp, gateway: gateway, mcp: mcp, base: tlsBase, mutualTLS: true),
                    server: try GuardedHTTPServer.tls(
                        limits: config.limits.connectionLimits, headers: headerLimits(config.limits),
                        sources: SourceConnections(limit: config.limits.maxConnectionsPerSource),
                        tlsConfiguration: try tlsConfiguration(cp, host: tlsHost)),
                    configuration: .init(
                        address: .hostname(tlsHost, port: tlsPort), serverName: "warden",
                        availableConnectionsDelegate: MaximumAvailableConnections(config.limits.maxConnections)),
                    onServerRunning: { channel in
                        announce(
                            "warden: mutual TLS on \(tlsHost):\(channel.localAddress?.port ?? tlsPort) (\(tlsBase)); client X.509-SVIDs accepted"
                        )
                    },
                    logger: logger))
        }
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        withExtendedLifetime(lock) {}
    }

    /// The plain listener's server: HTTP/1.1 behind the connection guard, with the configured header bounds.
    public static func httpServer(_ limits: GatewayLimits, sources: SourceConnections) -> HTTPServerBuilder {
        GuardedHTTPServer.http1(limits: limits.connectionLimits, headers: headerLimits(limits), sources: sources)
    }

    /// The decoder's bounds on the request head: `max_header_bytes` for one field and for all, `max_headers` fields.
    static func headerLimits(_ limits: GatewayLimits) -> HTTP1Channel.Configuration.DecoderConfiguration {
        .init(
            maxHeaderFieldSize: limits.maxHeaderBytes, maxHeaderListSize: limits.maxHeaderBytes,
            maxHeaderFieldCount: limits.maxHeaders)
    }

    static func announce(_ line: String) {
        print(line)
        fflush(nil)
    }

    /// TLS for the mutual-TLS listener: a server certificate issued now by Warden's intermediate for `host`, the
    /// chain sent to clients, and client certificates optional but, when presented, verified against Warden's root.
    static func tlsConfiguration(_ cp: ControlPlane, host: String) throws -> TLSConfiguration {
        let key = P256.Signing.PrivateKey()
        let cert = try cp.ca.issueServerCertificate(key: key, hosts: Array(Set([host, "localhost", "127.0.0.1"])))
        func nio(_ c: Certificate) throws -> NIOSSLCertificate {
            try NIOSSLCertificate(bytes: Array(c.serializeAsPEM().pemString.utf8), format: .pem)
        }
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(try nio(cert)), .certificate(try nio(cp.ca.intermediate))],
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem)))
        tls.minimumTLSVersion = .tlsv12
        tls.trustRoots = .certificates([try nio(cp.ca.root)])
        tls.certificateVerification = .optionalVerification
        return tls
    }
}
