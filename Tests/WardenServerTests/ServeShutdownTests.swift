import AsyncHTTPClient
import Cedar
import Foundation
import NIOCore
import NIOHTTP1
import Testing
import WardenCore
import WardenTestSupport

@testable import WardenControlPlane
@testable import WardenGateway
@testable import WardenServer
@testable import WardenSimulation

/// `warden serve` as operators run it: the built binary on a loopback port, stopped by a signal while admin streams
/// are open.
@Suite("warden serve: graceful shutdown with open streams")
struct ServeShutdownTests {
    /// The final checkpoint is signed after the listener drains: it must cover the whole log.
    @Test("SIGTERM ends the server within 2 s with the risk alert stream and an audit tail open")
    func sigtermWithOpenStreams() async throws {
        guard let binary = WardenCLI.builtBinary() else { return }
        let dir = try WardenCLI.scratchDirectory("warden-shutdown")
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = dir.appendingPathComponent("data").path
        let port = try Simulation.freePort()
        let base = "http://127.0.0.1:\(port)"

        let logURL = dir.appendingPathComponent("serve.log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let log = try FileHandle(forWritingTo: logURL)
        defer { try? log.close() }
        let server = Process()
        server.executableURL = URL(fileURLWithPath: binary)
        server.arguments = ["serve", "--data", data, "--listen", "127.0.0.1:\(port)"]
        server.currentDirectoryURL = dir
        server.standardOutput = log
        server.standardError = log
        server.standardInput = FileHandle.nullDevice
        try server.run()
        defer {
            if server.isRunning {
                kill(server.processIdentifier, SIGKILL)
                server.waitUntilExit()
            }
        }
        func serverLog() -> String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

        // Up at most 30 s after start.
        var up = false
        for _ in 0..<300 where server.isRunning {
            if let r = try? await HTTPClient.shared.execute(
                HTTPClientRequest(url: base + "/healthz"), timeout: .seconds(1)),
                r.status == .ok
            {
                up = true
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        try #require(up, "the server did not answer /healthz: \(serverLog())")
        let token = try SecureFile.readSecret(data + "/admin.token", maxBytes: 1024).trimmingCharacters(
            in: .whitespacesAndNewlines)

        // Audit entries just before the signal (policy reloads), so that the final checkpoint has a tail to cover.
        @Sendable func admin(_ method: HTTPMethod, _ path: String) async throws -> HTTPClientResponse {
            var request = HTTPClientRequest(url: base + path)
            request.method = method
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
            return try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        }
        for _ in 0..<3 {
            let r = try await admin(.POST, "/v1/admin/policies/reload")
            #expect(r.status == .ok)
            _ = try await r.body.collect(upTo: 1 << 20)
        }

        // The streams: each opened and its first bytes read before the signal, then drained until the server closes it.
        var readers: [Task<Int, any Error>] = []
        for path in ["/v1/admin/risk/alerts", "/v1/admin/audit/tail?after=0"] {
            let (opened, signal) = AsyncStream.makeStream(of: Int.self)
            readers.append(
                Task {
                    defer { signal.finish() }
                    let r = try await admin(.GET, path)
                    guard r.status == .ok else { return -Int(r.status.code) }
                    var n = 0
                    for try await chunk in r.body {
                        if n == 0 { signal.yield(chunk.readableBytes) }
                        n += chunk.readableBytes
                    }
                    return n
                })
            var first = 0
            for await n in opened {
                first = n
                break
            }
            try #require(first > 0, "\(path) did not open")
        }

        let start = ContinuousClock.now
        kill(server.processIdentifier, SIGTERM)
        // Bounded: 5 s at most, then killed (and the test fails).
        for _ in 0..<500 where server.isRunning { try await Task.sleep(for: .milliseconds(10)) }
        let elapsed = ContinuousClock.now - start
        if server.isRunning {
            Issue.record("the server did not exit within 5 s of SIGTERM: \(serverLog())")
            kill(server.processIdentifier, SIGKILL)
        }
        server.waitUntilExit()
        #expect(elapsed < .seconds(2), "exit took \(elapsed)")
        #expect(server.terminationReason == .exit && server.terminationStatus == 0, "\(serverLog())")
        // Both streams ended (the server closed them; the process is gone in any case).
        for reader in readers { _ = try? await reader.value }
        #expect(serverLog().contains("warden: serving"))

        // The log verifies, and its latest signed checkpoint is of the whole log (the final one, signed at shutdown).
        let (vStatus, vOut, vErr) = try WardenCLI.run(binary, ["audit", "verify", "--data", data, "--json"], in: dir)
        #expect(vStatus == 0, "\(vOut) \(vErr)")
        let verified = try JSONValue.parse(vOut)
        #expect(verified["ok"] == .bool(true))
        let treeSize = try #require(verified["tree_size"]?.integerValue)
        #expect(treeSize >= 3)
        let (cStatus, cOut, cErr) = try WardenCLI.run(binary, ["audit", "checkpoint", "--data", data], in: dir)
        #expect(cStatus == 0, "\(cErr)")
        let checkpoint = try JSONValue.parse(cOut)
        #expect(checkpoint["tree_size"]?.integerValue == treeSize)
        #expect(checkpoint["root_hash"] == verified["root_hash"])
        #expect(checkpoint["chain_head"] == verified["chain_head"])
    }
}
