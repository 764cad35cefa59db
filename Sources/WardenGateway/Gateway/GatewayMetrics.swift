import Synchronization
import WardenControlPlane

/// A lock-free counter.
final class Counter: Sendable {
    let value = Atomic<Int64>(0)
    func add() { value.add(1, ordering: .relaxed) }
    var count: Int64 { value.load(ordering: .relaxed) }
}

/// A Prometheus histogram of durations with fixed buckets, lock-free (one atomic add per observation and bucket).
final class LatencyHistogram: Sendable {
    /// Upper bounds, microseconds.
    static let bounds: [Int64] = [
        25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
        2_500_000, 5_000_000, 10_000_000,
    ]
    private let counts: [Counter]
    private let sum = Atomic<Int64>(0)
    private let total = Atomic<Int64>(0)

    init() { counts = Self.bounds.map { _ in Counter() } }

    func observe(micros: Int64) {
        // Non-cumulative buckets; rendering accumulates.
        if let i = Self.bounds.firstIndex(where: { micros <= $0 }) { counts[i].add() }
        sum.add(micros, ordering: .relaxed)
        total.add(1, ordering: .relaxed)
    }

    /// The text exposition lines for `name` with `labels` (`key="value",` pairs without braces, may be empty).
    func render(_ name: String, labels: String, into out: inout String) {
        var cumulative: Int64 = 0
        let sep = labels.isEmpty ? "" : ","
        for (i, b) in Self.bounds.enumerated() {
            cumulative += counts[i].count
            out += "\(name)_bucket{\(labels)\(sep)le=\"\(Double(b) / 1e6)\"} \(cumulative)\n"
        }
        let n = total.load(ordering: .relaxed)
        out += "\(name)_bucket{\(labels)\(sep)le=\"+Inf\"} \(n)\n"
        let braces = labels.isEmpty ? "" : "{\(labels)}"
        out += "\(name)_sum\(braces) \(Double(sum.load(ordering: .relaxed)) / 1e6)\n"
        out += "\(name)_count\(braces) \(n)\n"
    }
}

/// The gateway's metrics: requests by route, decision and reason; decision and whole-request latency; upstream
/// errors by route and kind. Labels come from the configuration's route names (letters, digits, `.`, `_`, `-`) and
/// fixed reason codes: bounded cardinality, nothing to escape. Allowed requests are counted lock-free per route.
public final class GatewayMetrics: Sendable {
    struct Key: Hashable, Comparable {
        let route: String
        let reason: String
        static func < (a: Key, b: Key) -> Bool { (a.route, a.reason) < (b.route, b.reason) }
    }

    private let allowedByRoute: [String: Counter]
    private let denials = Mutex<[Key: Int64]>([:])
    private let upstreamErrors = Mutex<[Key: Int64]>([:])
    let decisionLatency = LatencyHistogram()
    let requestLatency = LatencyHistogram()

    init(routes: some Sequence<String>) {
        allowedByRoute = Dictionary(uniqueKeysWithValues: routes.map { ($0, Counter()) })
    }

    func allowed(route: String) { allowedByRoute[route]?.add() }

    func denied(route: String, reason: String) {
        denials.withLock { $0[Key(route: route, reason: reason), default: 0] += 1 }
    }

    func upstreamError(route: String, kind: String) {
        upstreamErrors.withLock { $0[Key(route: route, reason: kind), default: 0] += 1 }
    }

    package func render(into out: inout String) {
        out += "# HELP warden_gateway_requests_total Gateway requests by route, decision and reason.\n"
        out += "# TYPE warden_gateway_requests_total counter\n"
        for (route, counter) in allowedByRoute.sorted(by: { $0.key < $1.key }) {
            out += "warden_gateway_requests_total{route=\"\(route)\",decision=\"allow\",reason=\"\"} \(counter.count)\n"
        }
        for (k, v) in denials.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
            out += "warden_gateway_requests_total{route=\"\(k.route)\",decision=\"deny\",reason=\"\(k.reason)\"} \(v)\n"
        }
        out += "# HELP warden_gateway_upstream_errors_total Upstream failures by route and kind.\n"
        out += "# TYPE warden_gateway_upstream_errors_total counter\n"
        for (k, v) in upstreamErrors.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
            out += "warden_gateway_upstream_errors_total{route=\"\(k.route)\",kind=\"\(k.reason)\"} \(v)\n"
        }
        out += "# HELP warden_gateway_decision_seconds Time to authenticate, authorize and admit a request.\n"
        out += "# TYPE warden_gateway_decision_seconds histogram\n"
        decisionLatency.render("warden_gateway_decision_seconds", labels: "", into: &out)
        out += "# HELP warden_gateway_request_seconds Whole request time through the gateway, to the response head.\n"
        out += "# TYPE warden_gateway_request_seconds histogram\n"
        requestLatency.render("warden_gateway_request_seconds", labels: "", into: &out)
    }
}
