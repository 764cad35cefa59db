// Identity hot paths: access tokens issued per second, and the median cost of authenticating one request (access
// token + DPoP proof verification) with and without the cache of already-verified tokens.
//
// Usage: IdentityBenchmark [--requests N]    (build in release mode: swift build -c release --product IdentityBenchmark)
import Cedar
import Crypto
import Foundation
import WardenControlPlane
import WardenCore
import WardenIdentity

let args = CommandLine.arguments
let n = args.firstIndex(of: "--requests").flatMap { Int(args[$0 + 1]) } ?? 2000
let clock = ContinuousClock()
let now = Int64(Date().timeIntervalSince1970)
/// Time stands still for the run: every proof and token is made at `now`.
let fixed = ManualClock(seconds: now)
let signing = SigningKey(privateKey: P256.Signing.PrivateKey())
let issuer = AccessTokenIssuer(key: signing, issuer: "https://127.0.0.1:8443")
let agentKey = P256.Signing.PrivateKey()
let jkt = ECPublicJWK(agentKey.publicKey).thumbprint
let subject = try SPIFFEID.agent("support-bot", trustDomain: "warden.local")
let url = "https://127.0.0.1:8443/v1/whoami"

// Tokens issued per second.
var issued: [String] = []
let issueStart = clock.now
for _ in 0..<n {
    issued.append(try issuer.issue(subject: subject, audience: "warden", jkt: jkt, lifetime: 300, now: now))
}
let issueSeconds = clock.now - issueStart
let perSecond =
    Double(n) / (Double(issueSeconds.components.seconds) + Double(issueSeconds.components.attoseconds) / 1e18)
print("tokens issued: \(Int(perSecond)) per second (ES256, \(n) tokens)")

// Proofs made ahead of time (an agent's cost, not Warden's).
let token = issued[0]
let ath = Base64URL.encode(SHA256.hash(data: Array(token.utf8)))
let header = JSONValue.object([
    ("typ", .string("dpop+jwt")), ("alg", .string("ES256")), ("jwk", ECPublicJWK(agentKey.publicKey).json),
])
var proofs: [String] = []
for i in 0..<(2 * n) {
    proofs.append(
        try CompactJWS.signES256(
            header: header,
            payload: .object([
                ("jti", .string("p\(i)")), ("htm", .string("GET")), ("htu", .string(url)),
                ("iat", .number(String(now))), ("ath", .string(ath)),
            ]), key: agentKey))
}

for (label, capacity, offset) in [("without token cache", 0, 0), ("with token cache", 10_000, n)] {
    let auth = RequestAuthenticator(
        tokens: AccessTokenVerifier(
            keys: [signing.kid: signing.privateKey.publicKey], issuer: "https://127.0.0.1:8443", audience: "warden",
            clock: fixed),
        proofs: DPoPVerifier(replayCache: ReplayCache(capacity: 100_000, ttlSeconds: 120), clock: fixed),
        cacheCapacity: capacity)
    var samples: [Duration] = []
    for i in 0..<n {
        let start = clock.now
        _ = try auth.authenticate(authorization: "DPoP \(token)", dpop: proofs[offset + i], method: "GET", url: url)
        samples.append(clock.now - start)
    }
    print("authenticate one request (token + DPoP proof), \(label): median \(LatencyStats(samples).medianMicros) µs")
}

// The whole control-plane path, on a temporary data directory: the token endpoint (client assertion and DPoP proof
// verified, token signed) and request authentication with the revocation list and agent directory lookups.
let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("warden-bench-\(UUID().uuidString)").path
defer { try? FileManager.default.removeItem(atPath: dataDir) }
var config = WardenConfig()
config.data = dataDir
let cp = try ControlPlane(config: config, clock: fixed)
// Several agents, as a token endpoint serves them: one agent may hold only 1% of the assertion replay cache.
var benchAgents: [(id: String, key: P256.Signing.PrivateKey)] = []
for i in 0..<max(1, n / 500) {
    let registration = try cp.register(manifest: AgentManifest(name: "bench-agent-\(i)", owner: "bench@example.com"))
    let key = P256.Signing.PrivateKey()
    let signer = DPoPProofSigner(key: key)
    _ = try cp.enroll(
        body: .object([
            ("join_token", .string(registration.joinToken)), ("jwk", signer.jwk.json),
            ("attestation", .object([("manifest_digest", .string(registration.agent.manifestDigest))])),
        ]), dpop: try signer.proof(method: "POST", url: cp.enrollEndpoint, now: now))
    benchAgents.append((registration.agent.spiffeID.description, key))
}
/// Fresh token requests (assertions and proofs are single use).
@MainActor func tokenRequests() throws -> [([String: String], String)] {
    var forms: [([String: String], String)] = []
    for i in 0..<n {
        let (agentID, key) = benchAgents[i % benchAgents.count]
        forms.append(
            (
                [
                    "grant_type": "client_credentials", "client_assertion_type": ClientAssertion.type,
                    "client_assertion": try ClientAssertion.sign(
                        clientID: agentID, audience: cp.tokenEndpoint, key: key, now: now),
                ], try DPoPProofSigner(key: key).proof(method: "POST", url: cp.tokenEndpoint, now: now)
            ))
    }
    return forms
}

/// Tokens per second through `auditedToken` (the grant durably audited before the token is returned) with `callers`
/// concurrent callers.
func auditedRate(_ cp: ControlPlane, _ forms: [([String: String], String)], callers: Int) async -> Double {
    let start = ContinuousClock.now
    await withTaskGroup(of: Void.self) { group in
        for c in 0..<callers {
            group.addTask {
                for i in stride(from: c, to: forms.count, by: callers) {
                    _ = try? await cp.auditedToken(form: forms[i].0, dpop: forms[i].1)
                }
            }
        }
    }
    let d = ContinuousClock.now - start
    return Double(forms.count) / (Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
}

let forms = try tokenRequests()
let benchSigner = DPoPProofSigner(key: benchAgents[0].key)
var endpointTokens: [String] = []
let endpointStart = clock.now
for (form, proof) in forms { endpointTokens.append(try cp.token(form: form, dpop: proof).accessToken) }
let endpointSeconds = clock.now - endpointStart
let endpointRate =
    Double(n) / (Double(endpointSeconds.components.seconds) + Double(endpointSeconds.components.attoseconds) / 1e18)
print("token endpoint (assertion + DPoP verified, token signed): \(Int(endpointRate)) tokens per second")
for callers in [1, 16] {
    let rate = await auditedRate(cp, try tokenRequests(), callers: callers)
    print(
        "token endpoint with the grant durably audited, \(callers) concurrent callers: \(Int(rate)) tokens per second")
}

let cpToken = endpointTokens[0]
let whoamiURL = cp.url(path: "/v1/whoami")
var cpProofs: [String] = []
for _ in 0..<n {
    cpProofs.append(try benchSigner.proof(method: "GET", url: whoamiURL, accessToken: cpToken, now: now))
}
var cpSamples: [Duration] = []
for proof in cpProofs {
    let start = clock.now
    _ = try cp.authenticate(authorization: "DPoP \(cpToken)", dpop: proof, method: "GET", path: "/v1/whoami")
    cpSamples.append(clock.now - start)
}
print(
    "control plane authenticate (token cache + proof + revocation + agent state): median \(LatencyStats(cpSamples).medianMicros) µs"
)

// The DPoP replay cache under sustained load, with the server's default sizing: `--replay-rate` distinct proofs a
// second (default 20,000) from 64 keys, over `--replay-seconds` simulated seconds (default 200, three times the
// window), one clock second per `rate` checks. Every proof must be fresh (none refused as `full`), a replayed one
// from the last window must be caught, and memory must stop growing once the window is full.
let replayRate = args.firstIndex(of: "--replay-rate").flatMap { Int(args[$0 + 1]) } ?? 20_000
let replaySeconds = args.firstIndex(of: "--replay-seconds").flatMap { Int64(args[$0 + 1]) } ?? 200
let defaults = WardenConfig()
let proofWindow = defaults.dpopMaxAge + min(defaults.clockSkew, 5) + 1
let replay = ReplayCache(
    capacity: defaults.dpopReplayCacheSize, ttlSeconds: proofWindow,
    perPartitionCapacity: defaults.dpopReplayCacheSize / 10)
let keys = (0..<64).map { _ in ECPublicJWK(P256.Signing.PrivateKey().publicKey).thumbprint }
func residentBytes() -> Int {
    guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
        let pages = statm.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
    else { return 0 }
    return pages * 4096
}
var outcomes: [ReplayCache.Outcome: Int] = [:]
var checkSamples: [Duration] = []
var rssAtWindow = 0
let rssBefore = residentBytes()
let replayStart = clock.now
for second in 0..<replaySeconds {
    let t = now + second
    for i in 0..<replayRate {
        let key = keys[i & 63]
        let id = key + ":" + String(second, radix: 36) + "-" + String(i, radix: 36)
        if i & 255 == 0 {
            let start = clock.now
            outcomes[replay.check(id, now: t, partition: key), default: 0] += 1
            checkSamples.append(clock.now - start)
        } else {
            outcomes[replay.check(id, now: t, partition: key), default: 0] += 1
        }
    }
    if second == 2 * proofWindow { rssAtWindow = residentBytes() }
}
let replayElapsed = clock.now - replayStart
let lastSecond = replaySeconds - 1
let caught =
    (0..<100).filter { i in
        let key = keys[i & 63]
        let id = key + ":" + String(lastSecond, radix: 36) + "-" + String(i, radix: 36)
        return replay.check(id, now: now + lastSecond, partition: key) == .replayed
    }.count
let total = Int64(replayRate) * replaySeconds
let checksPerSecond =
    Double(total)
    / (Double(replayElapsed.components.seconds) + Double(replayElapsed.components.attoseconds) / 1e18)
print(
    "DPoP replay cache, default size \(defaults.dpopReplayCacheSize) and window \(proofWindow) s: \(replayRate) distinct proofs/s sustained for \(replaySeconds) s: fresh \(outcomes[.fresh] ?? 0) of \(total), full \(outcomes[.full] ?? 0), replays caught \(caught) of 100; \(replay.count) live entries; check median \(LatencyStats(checkSamples).medianMicros) µs (\(Int(checksPerSecond)) checks/s on one thread); resident memory +\((rssAtWindow - rssBefore) >> 20) MiB after two windows, +\((residentBytes() - rssBefore) >> 20) MiB at the end"
)
