import CoreMetrics
import Prometheus
import Synchronization
import WardenControlPlane

/// Where the gateways' instruments go: swift-metrics' API (`Counter`, `Timer`) over one Prometheus registry per server
/// (swift-prometheus), so that tests and replicas in one process never share series. `/metrics` emits this registry,
/// then the values the server reads at scrape time (audit log, agents, policies, risk engine, trust), which are
/// snapshots of state rather than instruments.
///
/// The swift-metrics path gives no `# HELP` lines (the factory has no place for them, and a family registered once
/// with help and once without traps in swift-prometheus): each family's meaning is in `docs/configuration.md`,
/// "Metrics".
public final class MetricsBackend: Sendable {
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory

    /// Latency buckets, microseconds: 25 µs to 10 s.
    static let latencyBounds: [Int64] = [
        25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
        2_500_000, 5_000_000, 10_000_000,
    ]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var f = PrometheusMetricsFactory(registry: registry)
        f.defaultDurationHistogramBuckets = Self.latencyBounds.map { .microseconds($0) }
        factory = f
    }

    func counter(_ label: String, _ dimensions: [(String, String)]) -> CoreMetrics.Counter {
        CoreMetrics.Counter(label: label, dimensions: dimensions, factory: factory)
    }

    func timer(_ label: String) -> CoreMetrics.Timer {
        CoreMetrics.Timer(label: label, dimensions: [], factory: factory)
    }

    /// The registry's series in the Prometheus text format.
    package func render(into out: inout String) { out += registry.emitToString() }
}

/// A latency histogram in seconds (a swift-metrics `Timer`).
struct LatencyHistogram: Sendable {
    let timer: CoreMetrics.Timer

    func observe(micros: Int64) { timer.recordMicroseconds(micros) }
}

/// The counters of one family, each made on first use of its label values (from bounded sets: configured names,
/// fixed reason codes and method names). `fixed` labels go first, then `names` with the values given.
final class CounterFamily: Sendable {
    let label: String
    let names: [String]
    let fixed: [(String, String)]
    let backend: MetricsBackend
    private let counters = Mutex<[[String]: CoreMetrics.Counter]>([:])

    init(_ label: String, _ names: [String], fixed: [(String, String)] = [], backend: MetricsBackend) {
        self.label = label
        self.names = names
        self.fixed = fixed
        self.backend = backend
    }

    func increment(_ values: String...) {
        let counter = counters.withLock { c in
            if let existing = c[values] { return existing }
            let made = backend.counter(label, fixed + Array(zip(names, values)))
            c[values] = made
            return made
        }
        counter.increment()
    }
}

/// The gateway's metrics: requests by route, decision and reason; decision and whole-request latency; upstream
/// errors by route and kind. Labels come from the configuration's route names (letters, digits, `.`, `_`, `-`) and
/// fixed reason codes: bounded cardinality, nothing to escape. Allowed requests count on counters made up front.
public final class GatewayMetrics: Sendable {
    private let allowedByRoute: [String: CoreMetrics.Counter]
    private let denials: CounterFamily
    private let upstreamErrors: CounterFamily
    let decisionLatency: LatencyHistogram
    let requestLatency: LatencyHistogram

    init(routes: some Sequence<String>, backend: MetricsBackend) {
        allowedByRoute = Dictionary(
            uniqueKeysWithValues: routes.map {
                (
                    $0,
                    backend.counter(
                        "warden_gateway_requests_total", [("route", $0), ("decision", "allow"), ("reason", "")])
                )
            })
        denials = CounterFamily("warden_gateway_requests_total", ["route", "decision", "reason"], backend: backend)
        upstreamErrors = CounterFamily("warden_gateway_upstream_errors_total", ["route", "kind"], backend: backend)
        decisionLatency = LatencyHistogram(timer: backend.timer("warden_gateway_decision_seconds"))
        requestLatency = LatencyHistogram(timer: backend.timer("warden_gateway_request_seconds"))
    }

    func allowed(route: String) { allowedByRoute[route]?.increment() }

    func denied(route: String, reason: String) { denials.increment(route, "deny", reason) }

    func upstreamError(route: String, kind: String) { upstreamErrors.increment(route, kind) }
}
