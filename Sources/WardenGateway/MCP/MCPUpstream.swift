// Why this file is long: both upstream transports (streamable HTTP and supervised stdio) share the session numbering
// and framing here.
import Cedar
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import WardenControlPlane
import WardenCore
import WardenInspect

/// Why an upstream exchange failed (the agent gets a JSON-RPC error that says nothing about the upstream).
public struct UpstreamFailure: Error, Sendable {
    /// `unavailable`, `timeout` or `protocol`.
    public var kind: String
    /// For the log only.
    public var detail: String

    init(_ kind: String, _ detail: String) {
        self.kind = kind
        self.detail = detail
    }
}

/// An upstream MCP server as the gateway uses it: Warden is the MCP client (its own session, its own request ids, its
/// own brokered credential), so nothing of the agent's connection or credentials reaches the server.
protocol MCPUpstream: Sendable {
    /// Sends a request; returns the server's JSON-RPC response object (a `result` or an `error`). With `session` (a
    /// number from ``openSession()``), only in that session: when Warden has opened a newer one (the server forgot
    /// the old one, or the process was restarted) the request is not sent and fails with `session_changed`, so the
    /// caller can re-check what it learned in the old session (the tool catalogue) first.
    func request(_ method: String, params: JSONValue?, session: Int?) async throws(UpstreamFailure) -> JSONValue
    /// The number of the current session, opening one when there is none. Each new session has a higher number.
    func openSession() async throws(UpstreamFailure) -> Int
    /// The number of the current session, nil when there is none (no I/O).
    var currentSession: Int? { get }
    func shutdown() async
}

extension MCPUpstream {
    /// Sends a request in whatever session is current (a new one when the server forgot it).
    func request(_ method: String, params: JSONValue?) async throws(UpstreamFailure) -> JSONValue {
        try await request(method, params: params, session: nil)
    }
}

extension UpstreamFailure {
    /// A request bound to a session that is no longer the current one.
    static let sessionChanged = UpstreamFailure("session_changed", "a new upstream session was opened")
}

/// Runs `body` with a deadline that covers all of it: opening a session is several exchanges, each with its own
/// deadline, and is bounded as a whole too.
func withDeadline<T: Sendable>(
    seconds: Int64, _ body: @escaping @Sendable () async throws(UpstreamFailure) -> T
) async throws(UpstreamFailure) -> T {
    do {
        return try await withThrowingTaskGroup(of: T.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                throw UpstreamFailure("timeout", "no answer in time")
            }
            defer { group.cancelAll() }
            guard let first = try await group.next() else { throw UpstreamFailure("unavailable", "no answer") }
            return first
        }
    } catch let e as UpstreamFailure {
        throw e
    } catch {
        throw UpstreamFailure("unavailable", String(describing: error))
    }
}

/// The value of a task shared by several callers, or `CancellationError` as soon as this caller is cancelled (a task's
/// `value` waits for the task whatever happens to its caller; the task itself goes on).
func value<T: Sendable>(of task: Task<T, any Error>) async throws -> T {
    let waiter = Waiter<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            guard waiter.register(c) else {
                c.resume(throwing: CancellationError())
                return
            }
            Task { waiter.resume(with: await task.result) }
        }
    } onCancel: {
        waiter.resume(with: .failure(CancellationError()))
    }
}

/// One caller's continuation, resumed once: by the task's result or by the caller's cancellation, whichever is first.
final class Waiter<T: Sendable>: Sendable {
    enum State {
        case waiting
        case registered(CheckedContinuation<T, any Error>)
        case done
    }
    let state = Mutex<State>(.waiting)

    /// False when the caller was cancelled before it could wait.
    func register(_ c: CheckedContinuation<T, any Error>) -> Bool {
        state.withLock { s in
            guard case .waiting = s else { return false }
            s = .registered(c)
            return true
        }
    }

    func resume(with result: Result<T, any Error>) {
        let c = state.withLock { s -> CheckedContinuation<T, any Error>? in
            defer { s = .done }
            if case .registered(let c) = s { return c }
            return nil
        }
        c?.resume(with: result)
    }
}

/// The protocol version Warden speaks to upstream servers.
let upstreamProtocolVersion = "2025-11-25"

func initializeParams() -> JSONValue {
    .object([
        ("protocolVersion", .string(upstreamProtocolVersion)),
        ("capabilities", .object([])),
        ("clientInfo", .object([("name", .string("warden-gateway")), ("version", .string(WardenVersion.current))])),
    ])
}

/// The result of a JSON-RPC response, or its error as an ``JSONRPC/RPCError``.
func unwrap(_ response: JSONValue) -> Result<JSONValue, JSONRPC.RPCError> {
    if let r = response["result"] { return .success(r) }
    if let e = response["error"] {
        let code = e["code"].flatMap { v -> Int? in if case .number(let n) = v { Int(n) } else { nil } }
        return .failure(
            JSONRPC.RPCError(
                code ?? JSONRPC.internalError, e["message"]?.stringValue ?? "upstream error", data: e["data"]))
    }
    return .failure(JSONRPC.RPCError(JSONRPC.internalError, "the upstream answered without a result"))
}

// MARK: Streamable HTTP

/// An MCP server over streamable HTTP (2025-11-25): `initialize` once (lazily, again when the server forgets the
/// session), then one POST per request with `Mcp-Session-Id`, answered with JSON or an SSE stream.
final class HTTPUpstream: MCPUpstream {
    let url: String
    let endpoint: UpstreamEndpoint?
    /// The request target (path and query) on `endpoint`.
    let target: String
    let http: UpstreamClient
    let timeout: Int64
    let maxBytes: Int
    /// The brokered credential header and value, read at each request (a rotated secret applies at once).
    let credential: @Sendable () -> (String, String)?
    let nextID = Atomic<Int64>(1)
    let session = Mutex<Session?>(nil)
    let starting = Mutex<Task<Session, any Error>?>(nil)
    /// Sessions opened so far (the number of the last one).
    let opened = Atomic<Int>(0)

    /// A session: the server's id for it (empty when the server gave none) and Warden's number for it.
    struct Session: Sendable {
        let id: String
        let number: Int
    }

    init(
        url: String, http: UpstreamClient, timeout: Int64, maxBytes: Int,
        credential: @escaping @Sendable () -> (String, String)?
    ) {
        self.url = url
        let split = UpstreamEndpoint.split(url)
        self.endpoint = split?.0
        self.target = split?.path ?? "/"
        self.http = http
        self.timeout = timeout
        self.maxBytes = maxBytes
        self.credential = credential
    }

    func shutdown() async {
        guard let id = session.withLock({ $0?.id }), let endpoint else { return }
        var head = HTTPRequestHead(version: .http1_1, method: .DELETE, uri: target)
        head.headers.add(name: "Mcp-Session-Id", value: id)
        head.headers.add(name: "MCP-Protocol-Version", value: upstreamProtocolVersion)
        if let (n, v) = credential() { head.headers.replaceOrAdd(name: n, value: v) }
        _ = try? await http.execute(endpoint, head: head, timeout: .seconds(2), bufferUpTo: 64 * 1024)
    }

    /// Each exchange is bounded by the server's timeout, its body included (a server that streams keep-alive
    /// comments without ever answering does not hold a call); a session opened again on the way adds its own.
    func request(_ method: String, params: JSONValue?, session: Int?) async throws(UpstreamFailure) -> JSONValue {
        try await exchangeInSession(method, params: params, expected: session)
    }

    var currentSession: Int? { session.withLock { $0?.number } }

    func openSession() async throws(UpstreamFailure) -> Int {
        try await withDeadline(seconds: timeout) { () async throws(UpstreamFailure) -> Int in
            try await self.establish().number
        }
    }

    func exchangeInSession(_ method: String, params: JSONValue?, expected: Int?) async throws(UpstreamFailure)
        -> JSONValue
    {
        var current = try await establish()
        if let expected, current.number != expected { throw .sessionChanged }
        do {
            return try await exchange(method, params: params, session: current.id)
        } catch let e where e.kind == "session_expired" {
            // The server forgot the session (restart): one new session, one retry — unless the request was bound to
            // the old session (its caller re-checks the new one first).
            let old = current.number
            session.withLock { if $0?.number == old { $0 = nil } }
            current = try await establish()
            if expected != nil { throw .sessionChanged }
            return try await exchange(method, params: params, session: current.id)
        }
    }

    /// The current session, initializing one when there is none (one initialization at a time).
    func establish() async throws(UpstreamFailure) -> Session {
        if let s = session.withLock({ $0 }) { return s }
        let task = starting.withLock { t -> Task<Session, any Error> in
            if let t { return t }
            let n = Task { () async throws -> Session in
                defer { self.starting.withLock { $0 = nil } }
                let (response, id) = try await self.post(
                    JSONRPC.request(
                        id: .number(String(self.nextID.wrappingAdd(1, ordering: .relaxed).oldValue)),
                        method: "initialize", params: initializeParams()), session: nil)
                guard let response, case .success = unwrap(response) else {
                    throw UpstreamFailure("protocol", "initialize failed")
                }
                _ = try await self.post(
                    JSONRPC.notification(method: "notifications/initialized", params: nil), session: id ?? "")
                let new = Session(id: id ?? "", number: self.opened.wrappingAdd(1, ordering: .relaxed).newValue)
                self.session.withLock { $0 = new }
                return new
            }
            t = n
            return n
        }
        do {
            // A caller that gives up (its deadline, or it was cancelled) stops waiting at once; the initialization
            // goes on for the others, bounded by its own exchanges' deadlines.
            return try await value(of: task)
        } catch let e as UpstreamFailure {
            throw e
        } catch {
            throw UpstreamFailure("unavailable", String(describing: error))
        }
    }

    func exchange(_ method: String, params: JSONValue?, session: String?) async throws(UpstreamFailure) -> JSONValue {
        let id = JSONRPC.ID.number(String(nextID.wrappingAdd(1, ordering: .relaxed).oldValue))
        let (response, _) = try await post(JSONRPC.request(id: id, method: method, params: params), session: session)
        guard let response else { throw UpstreamFailure("protocol", "no response to \(method)") }
        return response
    }

    /// One POST: the response message matching the request's id (nil for a notification), and the session id the
    /// server returned.
    func post(_ message: JSONValue, session: String?) async throws(UpstreamFailure) -> (JSONValue?, String?) {
        guard let endpoint else { throw UpstreamFailure("unavailable", "the server's URL is not a plain http(s) URL") }
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: target)
        head.headers.add(name: "Content-Type", value: "application/json")
        head.headers.add(name: "Accept", value: "application/json, text/event-stream")
        if let session {
            // After initialize: the negotiated version on every request, and the session id when the server gave one.
            if !session.isEmpty { head.headers.add(name: "Mcp-Session-Id", value: session) }
            head.headers.add(name: "MCP-Protocol-Version", value: upstreamProtocolVersion)
        }
        if let (n, v) = credential() { head.headers.replaceOrAdd(name: n, value: v) }
        let body = ByteBuffer(string: message.serialized)
        head.headers.add(name: "Content-Length", value: String(body.readableBytes))
        let expected = message["id"]
        let response: UpstreamResponse
        do {
            response = try await http.execute(
                endpoint, head: head, bytes: body, timeout: .seconds(timeout), bufferUpTo: maxBytes,
                timeoutCoversBody: true)
        } catch {
            throw UpstreamFailure(error.timedOut ? "timeout" : "unavailable", error.description)
        }
        let newSession = response.head.headers.first(name: "mcp-session-id")
        if newSession.map({ $0.utf8.count > 256 || !$0.utf8.allSatisfy { $0 >= 0x21 && $0 <= 0x7E } }) == true {
            throw UpstreamFailure("protocol", "invalid session id")
        }
        let status = response.head.status.code
        if status == 404, session != nil { throw UpstreamFailure("session_expired", "session not found") }
        if expected == nil {
            guard status == 202 || status == 200 else {
                throw UpstreamFailure("protocol", "notification answered with \(status)")
            }
            _ = try? await response.collect(upTo: maxBytes)
            return (nil, newSession)
        }
        let contentType = (response.head.headers.first(name: "content-type") ?? "").lowercased()
        do {
            if contentType.hasPrefix("text/event-stream") {
                // Read events until the response to this request (server requests and notifications are dropped:
                // Warden does not relay sampling or elicitation from upstream servers).
                var parser = SSEParser(maxBytes: maxBytes)
                for try await chunk in response.parts {
                    for data in try parser.feed(chunk) {
                        guard let v = try? JSONValue.parse(data, maxDepth: JSONRPC.maxDepth, maxBytes: maxBytes),
                            v["id"] == expected, v["method"] == nil
                        else { continue }
                        return (v, newSession)
                    }
                }
                throw UpstreamFailure("protocol", "the event stream ended without a response")
            }
            let body = try await response.collect(upTo: maxBytes)
            guard (200..<300).contains(status) || contentType.hasPrefix("application/json") else {
                throw UpstreamFailure("protocol", "status \(status)")
            }
            let v = try JSONValue.parse(Array(buffer: body), maxDepth: JSONRPC.maxDepth, maxBytes: maxBytes)
            guard v["id"] == expected || v["error"] != nil else {
                throw UpstreamFailure("protocol", "response id does not match")
            }
            return (v, newSession)
        } catch let e as UpstreamFailure {
            throw e
        } catch {
            if let e = error as? UpstreamError, e.timedOut { throw UpstreamFailure("timeout", "no answer in time") }
            throw UpstreamFailure("protocol", "unreadable response: \(String(describing: error).prefix(200))")
        }
    }
}

/// Server-sent events (WHATWG HTML §9.2): the `data` of each event, bounded in size.
struct SSEParser {
    let maxBytes: Int
    var line: [UInt8] = []
    var data: [UInt8] = []
    var hasData = false
    var sawCR = false

    init(maxBytes: Int) { self.maxBytes = maxBytes }

    struct TooLarge: Error {}

    mutating func feed(_ buffer: ByteBuffer) throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        for byte in buffer.readableBytesView {
            if byte == UInt8(ascii: "\n") && sawCR {
                sawCR = false
                continue
            }
            sawCR = byte == UInt8(ascii: "\r")
            if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") {
                if let event = endLine() { out.append(event) }
                continue
            }
            line.append(byte)
            if line.count + data.count > maxBytes { throw TooLarge() }
        }
        return out
    }

    mutating func endLine() -> [UInt8]? {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            guard hasData else { return nil }
            let event = data
            data.removeAll(keepingCapacity: true)
            hasData = false
            return event
        }
        guard line.starts(with: "data".utf8) else { return nil }
        var value = line.dropFirst(4)
        if let c = value.first {
            guard c == UInt8(ascii: ":") else { return nil }
            value = value.dropFirst()
            if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
        }
        if hasData { data.append(UInt8(ascii: "\n")) }
        data.append(contentsOf: value)
        hasData = true
        return nil
    }
}

// MARK: stdio

/// An MCP server Warden starts and supervises, speaking newline-delimited JSON-RPC on stdin/stdout. The process gets
/// a minimal environment (`PATH`, `LANG`, `HOME` set to its own directory, the configured `env` and the brokered
/// credential), never Warden's own. When it exits it is restarted with exponential backoff (0.5 s doubling to 30 s;
/// the backoff resets after a minute of uptime); calls while it is down fail at once with `upstream_unavailable`.
final class StdioUpstream: MCPUpstream {
    let config: MCPServerConfig
    let command: [String]
    let cwd: String?
    let home: String
    let credential: @Sendable () -> (String, String)?
    let logger: Logger
    let state: Mutex<State>
    let nextID = Atomic<Int64>(1)
    /// Starts so far (for tests and metrics).
    let starts = Atomic<Int>(0)

    struct State {
        var process: Process?
        var stdin: FileHandle?
        /// Writes go through this queue (a blocking pipe write never holds a cooperative thread).
        var writer: DispatchQueue?
        var generation = 0
        var ready = false
        var pending: [String: CheckedContinuation<JSONValue, any Error>] = [:]
        var failures = 0
        var startedAt: ContinuousClock.Instant?
        var notBefore: ContinuousClock.Instant?
        var starting: Task<Void, any Error>?
        var stopped = false
    }

    init(
        config: MCPServerConfig, command: [String], cwd: String?, home: String,
        credential: @escaping @Sendable () -> (String, String)?
    ) {
        self.config = config
        self.command = command
        self.cwd = cwd
        self.home = home
        self.credential = credential
        var logger = Logger(label: "warden.mcp.stdio")
        logger.logLevel = .info
        logger[metadataKey: "server"] = "\(config.name)"
        self.logger = logger
        self.state = Mutex(State())
    }

    /// The environment the process gets.
    func environment() -> [String: String] {
        var env = ["PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": home]
        for (k, v) in config.env { env[k] = v }
        if let (name, value) = credential() { env[name] = value }
        return env
    }

    func request(_ method: String, params: JSONValue?, session: Int?) async throws(UpstreamFailure) -> JSONValue {
        try await ensureStarted()
        return try await send(method, params: params, session: session)
    }

    /// A session is one process (its generation), from its handshake until it exits.
    var currentSession: Int? { state.withLock { $0.ready ? $0.generation : nil } }

    func openSession() async throws(UpstreamFailure) -> Int {
        try await ensureStarted()
        guard let n = currentSession else { throw UpstreamFailure("unavailable", "the server is restarting") }
        return n
    }

    /// Sends a request to the running process; with `session`, only when that process is still the one running.
    func send(_ method: String, params: JSONValue?, session: Int? = nil) async throws(UpstreamFailure) -> JSONValue {
        let id = String(nextID.wrappingAdd(1, ordering: .relaxed).oldValue)
        let line = Array((JSONRPC.request(id: .number(id), method: method, params: params).serialized + "\n").utf8)
        let timeout = config.timeout
        let written = Flag()
        do {
            return try await withThrowingTaskGroup(of: JSONValue.self) { group in
                group.addTask {
                    try await withTaskCancellationHandler {
                        try await withCheckedThrowingContinuation { (c: CheckedContinuation<JSONValue, any Error>) in
                            var changed = false
                            let target = self.state.withLock { s -> (FileHandle, DispatchQueue)? in
                                if let session, s.generation != session {
                                    changed = true
                                    return nil
                                }
                                guard let h = s.stdin, let q = s.writer else { return nil }
                                s.pending[id] = c
                                return (h, q)
                            }
                            if changed {
                                c.resume(throwing: UpstreamFailure.sessionChanged)
                                return
                            }
                            guard let (handle, queue) = target else {
                                c.resume(throwing: UpstreamFailure("unavailable", "the server is not running"))
                                return
                            }
                            queue.async {
                                do {
                                    try handle.write(contentsOf: line)
                                    written.set()
                                } catch {
                                    if let c = self.state.withLock({ $0.pending.removeValue(forKey: id) }) {
                                        c.resume(throwing: UpstreamFailure("unavailable", "write failed"))
                                    }
                                }
                            }
                        }
                    } onCancel: {
                        if let c = self.state.withLock({ $0.pending.removeValue(forKey: id) }) {
                            c.resume(throwing: UpstreamFailure("unavailable", "cancelled"))
                        }
                    }
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(timeout))
                    if let c = self.state.withLock({ $0.pending.removeValue(forKey: id) }) {
                        c.resume(throwing: UpstreamFailure("timeout", "no answer in time"))
                    }
                    throw UpstreamFailure("timeout", "no answer in time")
                }
                defer { group.cancelAll() }
                guard let first = try await group.next() else { throw UpstreamFailure("unavailable", "no answer") }
                return first
            }
        } catch let e as UpstreamFailure {
            if e.kind == "timeout", !written.isSet {
                // It stopped reading its input: not healthy; stopped, and restarted by the supervisor.
                logger.error("the MCP server does not read its input; stopping it")
                state.withLock { $0.process }?.terminate()
            }
            throw e
        } catch {
            if let c = state.withLock({ $0.pending.removeValue(forKey: id) }) {
                c.resume(throwing: UpstreamFailure("unavailable", "cancelled"))
            }
            throw UpstreamFailure("unavailable", String(describing: error))
        }
    }

    /// A flag set once, read from any thread.
    final class Flag: Sendable {
        let value = Atomic<Bool>(false)
        func set() { value.store(true, ordering: .relaxed) }
        var isSet: Bool { value.load(ordering: .relaxed) }
    }

    /// Starts the process and runs the initialize handshake, unless it is running or backing off.
    func ensureStarted() async throws(UpstreamFailure) {
        let task = state.withLock { s -> Task<Void, any Error>? in
            if s.ready || s.stopped { return nil }
            if let t = s.starting { return t }
            if let nb = s.notBefore, ContinuousClock.now < nb { return nil }
            let t = Task { try await self.start() }
            s.starting = t
            return t
        }
        if let task {
            do { try await task.value } catch let e as UpstreamFailure { throw e } catch {
                throw UpstreamFailure("unavailable", String(describing: error))
            }
        }
        guard state.withLock({ $0.ready }) else {
            throw UpstreamFailure("unavailable", "the server is restarting")
        }
    }

    func start() async throws {
        defer { state.withLock { $0.starting = nil } }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: command[0])
        if !command[0].contains("/") {
            // Looked up on the limited PATH only.
            for dir in ["/usr/local/bin", "/usr/bin", "/bin"]
            where FileManager.default.isExecutableFile(
                atPath: dir + "/" + command[0])
            {
                p.executableURL = URL(fileURLWithPath: dir + "/" + command[0])
                break
            }
        }
        p.arguments = Array(command.dropFirst())
        p.environment = environment()
        try? FileManager.default.createDirectory(
            atPath: home, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        p.currentDirectoryURL = URL(fileURLWithPath: cwd ?? home)
        let input = Pipe()
        let output = Pipe()
        let errors = Pipe()
        p.standardInput = input
        p.standardOutput = output
        p.standardError = errors
        let generation = state.withLock { s -> Int in
            s.generation += 1
            return s.generation
        }
        p.terminationHandler = { [weak self] proc in
            self?.exited(generation: generation, status: proc.terminationStatus)
        }
        do { try p.run() } catch {
            state.withLock { s in
                s.failures += 1
                s.notBefore = ContinuousClock.now + backoff(s.failures)
            }
            logger.error("the MCP server could not be started", metadata: ["error": "\(error)"])
            throw UpstreamFailure("unavailable", "the server could not be started")
        }
        starts.add(1, ordering: .relaxed)
        state.withLock { s in
            s.process = p
            s.stdin = input.fileHandleForWriting
            s.writer = DispatchQueue(label: "warden.mcp.stdio.\(config.name).\(generation)")
            s.startedAt = .now
        }
        readLines(output.fileHandleForReading, generation: generation)
        drainErrors(errors.fileHandleForReading)
        // The handshake, on the raw channel (not through ensureStarted). A process that fails it is stopped (its
        // exit schedules the restart with backoff), never left running beside the next one.
        do {
            let response = try await send("initialize", params: initializeParams())
            guard case .success = unwrap(response) else { throw UpstreamFailure("protocol", "initialize failed") }
            let note = Array(
                (JSONRPC.notification(method: "notifications/initialized", params: nil).serialized + "\n").utf8)
            let queue = state.withLock { $0.writer }
            queue?.async { try? input.fileHandleForWriting.write(contentsOf: note) }
        } catch {
            p.terminate()
            throw error
        }
        state.withLock { s in if s.generation == generation { s.ready = true } }
        logger.info("MCP server started", metadata: ["pid": "\(p.processIdentifier)"])
    }

    func backoff(_ failures: Int) -> Duration {
        .milliseconds(min(30_000, 500 << min(max(failures - 1, 0), 6)))
    }

    /// The process ended: fail its pending calls, schedule a restart after the backoff.
    func exited(generation: Int, status: Int32) {
        let (pending, delay, stopped) = state.withLock {
            s -> ([CheckedContinuation<JSONValue, any Error>], Duration?, Bool) in
            guard s.generation == generation else { return ([], nil, s.stopped) }
            let p = Array(s.pending.values)
            s.pending.removeAll()
            s.process = nil
            s.stdin = nil
            s.writer = nil
            s.ready = false
            if let started = s.startedAt, ContinuousClock.now - started > .seconds(60) { s.failures = 0 }
            s.failures += 1
            let d = backoff(s.failures)
            s.notBefore = ContinuousClock.now + d
            return (p, d, s.stopped)
        }
        for c in pending { c.resume(throwing: UpstreamFailure("unavailable", "the server exited")) }
        guard let delay, !stopped else { return }
        logger.warning(
            "MCP server exited; restarting",
            metadata: [
                "status": "\(status)",
                "backoff_ms":
                    "\(delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)",
            ])
        Task {
            try? await Task.sleep(for: delay)
            try? await self.ensureStarted()
        }
    }

    /// Reads newline-delimited messages on a thread of its own; a line longer than the message limit is a protocol
    /// violation that stops the process.
    func readLines(_ handle: FileHandle, generation: Int) {
        let maxBytes = config.maxMessageBytes
        Thread.detachNewThread { [self] in
            var line: [UInt8] = []
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                for byte in chunk {
                    if byte == UInt8(ascii: "\n") {
                        deliver(line)
                        line.removeAll(keepingCapacity: true)
                    } else {
                        line.append(byte)
                    }
                }
                if line.count > maxBytes {
                    logger.error("the MCP server wrote a message over the size limit; stopping it")
                    let p = state.withLock { $0.generation == generation ? $0.process : nil }
                    p?.terminate()
                    break
                }
            }
        }
    }

    func deliver(_ line: [UInt8]) {
        guard !line.isEmpty,
            let v = try? JSONValue.parse(line, maxDepth: JSONRPC.maxDepth, maxBytes: config.maxMessageBytes)
        else { return }
        // Responses only; the server's own requests (sampling, elicitation) and notifications are not relayed.
        guard v["method"] == nil, let id = v["id"] else { return }
        let key: String
        switch id {
        case .number(let n): key = n
        case .string(let s): key = s
        default: return
        }
        if let c = state.withLock({ $0.pending.removeValue(forKey: key) }) { c.resume(returning: v) }
    }

    func drainErrors(_ handle: FileHandle) {
        Thread.detachNewThread { [logger] in
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                let text = String(decoding: chunk.prefix(512), as: UTF8.self)
                logger.debug("stderr", metadata: ["text": "\(text)"])
            }
        }
    }

    func shutdown() async {
        let p = state.withLock { s -> Process? in
            s.stopped = true
            return s.process
        }
        guard let p, p.isRunning else { return }
        p.terminate()
        for _ in 0..<20 where p.isRunning { try? await Task.sleep(for: .milliseconds(50)) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
    }
}
