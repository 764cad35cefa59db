// Policy-evaluation benchmark: the Warden-shaped workload of Benchmarks/workload (policy sets of 10 to 10,000
// policies over ~3,000 entities, 2,000 requests), decided by the native Swift engine. Every answer is first checked
// against the Rust engine's (expected-N.jsonl written by cedarpy_bench.py), then each request is timed over several
// rounds. Prints median and p99 per decision for each size.
//
// Usage: CedarBenchmark DIR [--sizes 10,100,1000,10000] [--rounds 5] [--json]
// Build it in release mode: swift build -c release --product CedarBenchmark (Benchmarks/run.sh does everything).
import Cedar
import Foundation
import WardenCore

struct Options {
    var dir = "Benchmarks/workload/out"
    var sizes = [10, 100, 1000, 10000]
    var rounds = 5
    var json = false

    init(_ args: [String]) {
        var i = 0
        while i < args.count {
            switch args[i] {
            case "--sizes" where i + 1 < args.count:
                i += 1
                sizes = args[i].split(separator: ",").compactMap { Int($0) }
            case "--rounds" where i + 1 < args.count:
                i += 1
                rounds = max(1, Int(args[i]) ?? 5)
            case "--json": json = true
            default: dir = args[i]
            }
            i += 1
        }
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("CedarBenchmark: \(message)\n".utf8))
    exit(2)
}

func text(_ path: String) -> String {
    guard let d = FileManager.default.contents(atPath: path), let s = String(data: d, encoding: .utf8) else {
        fail("cannot read \(path) (generate the workload first: Benchmarks/run.sh)")
    }
    return s
}

func jsonLines(_ path: String) -> [JSONValue] {
    text(path).split(separator: "\n").map {
        do { return try JSONValue.parse(String($0)) } catch { fail("\(path): \(error)") }
    }
}

func ids(_ v: JSONValue?) -> [String] {
    guard case .array(let a)? = v else { return [] }
    return a.compactMap { if case .string(let s) = $0 { s } else { nil } }.sorted()
}

let options = Options(Array(CommandLine.arguments.dropFirst()))
let entities: Entities
do { entities = try CedarJSON.entities(text: text("\(options.dir)/entities.json")) } catch {
    fail("entities: \(error)")
}
let requests: [Request] = jsonLines("\(options.dir)/requests.jsonl").map {
    do { return try CedarJSON.request($0) } catch { fail("request: \(error)") }
}
let authorizer = Authorizer()
let clock = ContinuousClock()
var results: [(Int, LatencyStats, Int, Int)] = []

for size in options.sizes {
    let policies: PolicySet
    do { policies = try PolicySet(text: text("\(options.dir)/policies-\(size).cedar")) } catch { fail("\(error)") }
    // Correctness first: the same decision, reasons and errors as the Rust engine.
    let expected = jsonLines("\(options.dir)/expected-\(size).jsonl")
    guard expected.count == requests.count else { fail("expected-\(size).jsonl has \(expected.count) lines") }
    var allow = 0
    for (i, request) in requests.enumerated() {
        let r = authorizer.isAuthorized(request, policies: policies, entities: entities)
        let e = expected[i]
        guard case .string(let d)? = e["decision"], d.lowercased() == r.decision.rawValue,
            ids(e["reasons"]) == r.reasons.sorted(), ids(e["errors"]) == r.errors.map(\.policyID).sorted()
        else {
            fail(
                "size \(size), request \(i): got \(r.decision) \(r.reasons) \(r.errors.map(\.policyID)), expected \(e.serialized)"
            )
        }
        if r.decision == .allow { allow += 1 }
    }
    // Then timing: every request once per round, after one warm-up round.
    var samples: [Duration] = []
    samples.reserveCapacity(requests.count * options.rounds)
    var sink = 0
    for round in 0...options.rounds {
        for request in requests {
            let start = clock.now
            let r = authorizer.isAuthorized(request, policies: policies, entities: entities)
            let elapsed = clock.now - start
            if round > 0 { samples.append(elapsed) }
            sink &+= r.reasons.count
        }
    }
    let stats = LatencyStats(samples)
    results.append((size, stats, allow, requests.count - allow))
    if !options.json {
        print(
            "swift  policies \(size): median \(stats.medianMicros) µs  p99 \(stats.p99Micros) µs  "
                + "allow \(allow) deny \(requests.count - allow)  (answers identical to cedarpy)")
    }
    if sink < 0 {
        print(sink)
    }
}

if options.json {
    let sizes: [(String, JSONValue)] = results.map { size, s, allow, deny in
        (
            String(size),
            .object([
                ("median_us", .number(String(s.medianMicros))), ("p99_us", .number(String(s.p99Micros))),
                ("allow", .number(String(allow))), ("deny", .number(String(deny))),
            ])
        )
    }
    print(JSONValue.object([("engine", .string("warden-swift")), ("sizes", .object(sizes))]).serialized)
}
