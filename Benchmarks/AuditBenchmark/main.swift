import Crypto
import Foundation
import Synchronization
import WardenAudit
import WardenCore
import WardenIdentity
import WardenStore

// Audit log benchmark (`swift build -c release --product AuditBenchmark && .build/release/AuditBenchmark`):
//   1. durable appends per second through the group-commit writer, with W concurrent writers each waiting for its
//      event to be on disk (SQLite WAL, synchronous=FULL: one fsync per batch), and the acknowledgement latency;
//   2. verification speed: `AuditVerifier` over a log of `--verify-events` entries (default 1,000,000).
// `--crash-child DIR` appends at full speed forever, printing `ack <seq> <id>` once each event is acknowledged; the
// crash test kills it with SIGKILL and checks that every acknowledged event survived.

func arg(_ name: String) -> String? {
    let a = CommandLine.arguments
    guard let i = a.firstIndex(of: name), i + 1 < a.count else { return nil }
    return a[i + 1]
}

func event(_ i: Int, writer: Int) -> AuditEvent {
    let agent = "spiffe://warden.local/agent/agent-\(i % 50)"
    return AuditEvent(
        kind: .decision, action: "call", actor: agent, agent: agent, agentID: "a-\(i % 50)",
        resource: "Service::\"route-\(i % 7)\"", decision: i % 10 == 0 ? .deny : .allow,
        reason: i % 10 == 0 ? "policy_denied" : nil, policies: ["policy\(i % 13)"], trust: 90,
        requestDigest: "sha256:" + String(repeating: "ab", count: 32), latencyMicros: 42, source: "127.0.0.1",
        message: "event \(writer)-\(i)", details: [("method", "GET"), ("path", "/r/route-\(i % 7)/items")])
}

func openLog(_ dir: String, key: SigningKey) throws -> AuditLog {
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let store = try SQLiteStore(path: dir + "/warden.sqlite")
    return try AuditLog(
        store: store, settings: .init(issuer: "http://127.0.0.1", origin: "warden.local/audit"), signer: { key })
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

func crashChild(_ dir: String) async throws -> Never {
    let key = SigningKey(privateKey: P256.Signing.PrivateKey())
    let log = try openLog(dir, key: key)
    try SecureFile.write(key.privateKey.publicKey.pemRepresentation + "\n", to: dir + "/checkpoint.pub", mode: 0o644)
    try SecureFile.write(key.kid + "\n", to: dir + "/checkpoint.kid", mode: 0o644)
    print("ready")
    fflush(nil)
    await withTaskGroup(of: Void.self) { group in
        for w in 0..<32 {
            group.addTask {
                var i = 0
                while true {
                    i += 1
                    guard let seq = try? await log.record(event(i, writer: w)) else { continue }
                    let line = "ack \(seq) \(w)-\(i)\n"
                    // One write(2) of less than PIPE_BUF bytes: lines from concurrent writers never interleave.
                    _ = line.withCString { write(1, $0, strlen($0)) }
                    if seq % 500 == 0 { _ = try? log.checkpoint() }
                }
            }
        }
    }
    exit(0)
}

/// Durable appends with `writers` concurrent writers; returns sorted acknowledgement latencies (ms) and seconds.
func appendRun(_ log: AuditLog, writers: Int, perWriter: Int) async -> ([Double], Double) {
    let start = ContinuousClock.now
    let latencies = await withTaskGroup(of: [Double].self) { group in
        for w in 0..<writers {
            group.addTask {
                var lat: [Double] = []
                lat.reserveCapacity(perWriter)
                for i in 0..<perWriter {
                    let t = ContinuousClock.now
                    _ = try? await log.record(event(i, writer: w))
                    let d = ContinuousClock.now - t
                    lat.append(Double(d.components.attoseconds) / 1e15 + Double(d.components.seconds) * 1000)
                }
                return lat
            }
        }
        var all: [Double] = []
        for await l in group { all += l }
        return all.sorted()
    }
    let elapsed = ContinuousClock.now - start
    return (latencies, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
}

if let dir = arg("--crash-child") { try await crashChild(dir) }

let appendEvents = Int(arg("--events") ?? "") ?? 200_000
let writerCounts = (arg("--writers") ?? "1,16,64,256").split(separator: ",").compactMap { Int($0) }
let verifyEvents = Int(arg("--verify-events") ?? "") ?? 1_000_000
let base = arg("--dir") ?? FileManager.default.temporaryDirectory.appendingPathComponent("warden-audit-bench").path
try? FileManager.default.removeItem(atPath: base)
let key = SigningKey(privateKey: P256.Signing.PrivateKey())
print("Audit log benchmark: \(ProcessInfo.processInfo.activeProcessorCount) cores, SQLite WAL synchronous=FULL")
print("")
print("Durable appends (each writer waits for its event to be on disk; group commit)")
print("writers   events    events/s   batches   events/batch   ack p50 ms   ack p99 ms")
for writers in writerCounts {
    let dir = base + "/append-\(writers)"
    let log = try openLog(dir, key: key)
    let perWriter = max(1, (writers == 1 ? min(appendEvents, 5_000) : appendEvents) / writers)
    let (latencies, seconds) = await appendRun(log, writers: writers, perWriter: perWriter)
    let h = log.health
    print(
        String(
            format: "%7d %8d %11.0f %9d %14.1f %12.2f %12.2f", writers, latencies.count,
            Double(latencies.count) / seconds,
            h.batches, Double(h.appended) / Double(max(1, h.batches)), percentile(latencies, 0.5),
            percentile(latencies, 0.99)))
}

print("")
print("Verification over \(verifyEvents) entries")
let vdir = base + "/verify"
let vlog = try openLog(vdir, key: key)
var filled = 0
let fillStart = ContinuousClock.now
while filled < verifyEvents {
    let n = min(50_000, verifyEvents - filled)
    for i in 0..<n { try vlog.submit(event(filled + i, writer: 0)) }
    await vlog.flush()
    filled += n
}
_ = try vlog.checkpoint()
let fillTime = ContinuousClock.now - fillStart
print(
    String(
        format: "  filled with submit(): %.1f s",
        Double(fillTime.components.seconds) + Double(fillTime.components.attoseconds) / 1e18))
var rates: [Double] = []
for run in 1...3 {
    let t = ContinuousClock.now
    let result = try AuditVerifier.verify(
        databasePath: vdir + "/warden.sqlite", keys: [key.kid: key.privateKey.publicKey])
    let d = ContinuousClock.now - t
    let s = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    guard result.ok else {
        print("verification failed: \(result.failure!.reason)")
        exit(1)
    }
    rates.append(Double(result.entries) / s)
    print(
        String(
            format: "  run %d: %d entries, %d checkpoints in %.2f s = %.0f entries/s", run, result.entries,
            result.checkpointsMatched, s, Double(result.entries) / s))
}
print(String(format: "  median: %.0f entries/s", rates.sorted()[1]))
try? FileManager.default.removeItem(atPath: base)
