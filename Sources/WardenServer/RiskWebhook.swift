import AsyncHTTPClient
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import WardenControlPlane
import WardenCore
import WardenGateway

/// The risk webhook: alerts on a bounded queue (the newest `capacity` kept, older ones dropped and counted) and one
/// sender, so that a slow or unreachable receiver costs the engine nothing and never piles up requests. Best effort:
/// the audit entry is the record; the webhook is a notification.
final class WebhookSender: Sendable {
    let url: String
    let logger: Logger
    let stream: AsyncStream<String>
    let continuation: AsyncStream<String>.Continuation
    let dropped = Atomic<Int64>(0)
    let delivered = Atomic<Int64>(0)
    let failed = Atomic<Int64>(0)

    init(url: String, logger: Logger, capacity: Int = 1000) {
        self.url = url
        self.logger = logger
        (stream, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(capacity))
    }

    /// Queues an alert without waiting.
    func send(_ body: String) {
        if case .dropped = continuation.yield(body) {
            // One warning per thousand dropped, not one per alert.
            if dropped.wrappingAdd(1, ordering: .relaxed).newValue % 1000 == 1 {
                logger.warning("the risk webhook is behind: alerts dropped from its queue")
            }
        }
    }

    /// Posts the queued alerts one at a time, until `stop()`.
    func run() async {
        for await body in stream {
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
            do {
                let r = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
                _ = try await r.body.collect(upTo: 64 * 1024)
                guard (200..<300).contains(r.status.code) else { throw WardenError(.io, "status \(r.status.code)") }
                delivered.add(1, ordering: .relaxed)
            } catch {
                failed.add(1, ordering: .relaxed)
                logger.warning("the risk webhook could not be reached")
            }
        }
    }

    func stop() { continuation.finish() }
}

/// Runs the webhook's sender for as long as the server runs; on shutdown, the queue is closed and the sender stops.
struct RiskWebhookService: Service {
    let sender: WebhookSender

    func run() async throws {
        await withGracefulShutdownHandler {
            await sender.run()
        } onGracefulShutdown: {
            sender.stop()
        }
    }
}
