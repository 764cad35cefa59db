import AsyncHTTPClient
import Cedar
import Foundation
import Logging
import NIOCore
import Synchronization
import WardenClient
import WardenCore

/// `warden agent mcp`: MCP over stdin/stdout (what desktop MCP clients launch) relayed to Warden's `/mcp/<server>`
/// with the agent's token and a fresh proof per message.
///
/// One JSON-RPC message per line each way. Both protocol eras: in 2025-11-25 (and the earlier handshake versions)
/// `initialize` opens Warden's session, whose `Mcp-Session-Id` and negotiated `MCP-Protocol-Version` go with every
/// later message, and the session is ended (`DELETE`) when stdin closes; in 2026-07-28 each request carries its
/// version in `_meta` and the bridge adds `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` from the message.
/// Warden's answers (JSON or one server-sent event) go to stdout as lines; a refusal that is not JSON-RPC (a 401 or
/// 403 before the message was read) becomes a JSON-RPC error for the request's id, so the client never waits for an
/// answer that will not come. Requests are relayed concurrently once the session is open; stdout lines are whole.
public struct MCPStdioBridge: Sendable {
    public let tokens: AgentTokens
    let http: HTTPClient
    /// `/mcp/<server>` (or `/mcp`).
    let path: String
    let logger: Logger

    /// Longest message accepted from stdin or from Warden.
    public static let maxMessageBytes = 4 << 20
    /// Messages relayed at once.
    public static let maxInFlight = 64

    public init(tokens: AgentTokens, http: HTTPClient, server: String?, logger: Logger) {
        self.tokens = tokens
        self.http = http
        path = "/mcp" + (server.map { "/" + $0 } ?? "")
        self.logger = logger
    }

    /// The session state the handshake era needs.
    final class Session: Sendable {
        let id = Mutex<String?>(nil)
        let version = Mutex<String?>(nil)
    }

    /// Relays every line of `input` until it ends (`taken` is called for each line read); `output` receives whole
    /// lines (without the newline). At most ``maxInFlight`` messages are relayed at once.
    public func run(
        input: AsyncStream<[UInt8]>, taken: @escaping @Sendable () -> Void = {},
        output: @escaping @Sendable (String) -> Void
    ) async {
        let session = Session()
        await withTaskGroup(of: Void.self) { group in
            var inFlight = 0
            for await line in input {
                taken()
                if inFlight >= Self.maxInFlight {
                    await group.next()
                    inFlight -= 1
                }
                guard !line.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) else { continue }
                guard let message = try? JSONValue.parse(line), case .object = message else {
                    output(Self.error(id: .null, code: -32700, "the line is not a JSON-RPC message"))
                    continue
                }
                // The handshake first, alone: later messages need its session.
                if message["method"]?.stringValue == "initialize" {
                    await relay(message, line, session, output)
                } else {
                    group.addTask { await relay(message, line, session, output) }
                    inFlight += 1
                }
            }
            await group.waitForAll()
        }
        if let id = session.id.withLock({ $0 }) { await close(id, session) }
    }

    func relay(
        _ message: JSONValue, _ line: [UInt8], _ session: Session, _ output: @Sendable (String) -> Void
    ) async {
        let id = message["id"]
        let method = message["method"]?.stringValue
        do {
            var headers: [(String, String)] = [
                ("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream"),
            ]
            let metaVersion = message["params"]?["_meta"]?["io.modelcontextprotocol/protocolVersion"]?.stringValue
            if let version = metaVersion ?? session.version.withLock({ $0 }) {
                headers.append(("MCP-Protocol-Version", version))
            }
            if let sid = session.id.withLock({ $0 }) { headers.append(("Mcp-Session-Id", sid)) }
            if let version = metaVersion, version >= "2026-07-28", let method {
                headers.append(("Mcp-Method", method))
                if let name = Self.name(of: message, method: method) { headers.append(("Mcp-Name", name)) }
            }
            let url = tokens.client.http.base + path
            let response = try await tokens.send(
                http, method: "POST", path: path, replayable: true, timeout: .minutes(10)
            ) { token, proof in
                var r = HTTPClientRequest(url: url)
                r.method = .POST
                for (n, v) in headers { r.headers.add(name: n, value: v) }
                r.headers.add(name: "Authorization", value: "DPoP \(token.value)")
                r.headers.add(name: "DPoP", value: proof)
                r.body = .bytes(ByteBuffer(bytes: line))
                return r
            }
            if method == "initialize", let sid = response.headers.first(name: "Mcp-Session-Id") {
                session.id.withLock { $0 = sid }
            }
            let body = try await response.body.collect(upTo: Self.maxMessageBytes)
            let contentType = response.headers.first(name: "Content-Type") ?? ""
            let messages = contentType.hasPrefix("text/event-stream") ? Self.events(body) : [Array(buffer: body)]
            var answered = false
            for m in messages where !m.isEmpty {
                guard let reply = try? JSONValue.parse(m), reply["jsonrpc"] != nil else { continue }
                if method == "initialize", let v = reply["result"]?["protocolVersion"]?.stringValue {
                    session.version.withLock { $0 = v }
                }
                output(reply.serialized)
                answered = true
            }
            if !answered, let id, response.status.code >= 300 {
                output(
                    Self.error(
                        id: id, code: -32603,
                        "Warden refused the message: HTTP \(response.status.code)\(Self.reason(body))"))
            }
        } catch {
            logger.warning("mcp bridge: Warden unreachable", metadata: ["error": "\(error)"])
            if let id { output(Self.error(id: id, code: -32603, "Warden could not be reached")) }
        }
    }

    /// Ends Warden's session (handshake era) when the client goes away.
    func close(_ id: String, _ session: Session) async {
        let url = tokens.client.http.base + path
        let version = session.version.withLock { $0 }
        _ = try? await tokens.send(http, method: "DELETE", path: path, replayable: true, timeout: .seconds(10)) {
            token, proof in
            var r = HTTPClientRequest(url: url)
            r.method = .DELETE
            r.headers.add(name: "Mcp-Session-Id", value: id)
            if let version { r.headers.add(name: "MCP-Protocol-Version", value: version) }
            r.headers.add(name: "Authorization", value: "DPoP \(token.value)")
            r.headers.add(name: "DPoP", value: proof)
            return r
        }
    }

    /// `Mcp-Name` for the methods that name something: the tool or prompt name, the resource URI; `=?base64?…?=`
    /// when it is not plain visible ASCII.
    static func name(of message: JSONValue, method: String) -> String? {
        let key: String
        switch method {
        case "tools/call", "prompts/get": key = "name"
        case "resources/read": key = "uri"
        default: return nil
        }
        guard let value = message["params"]?[key]?.stringValue else { return nil }
        if value.utf8.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) { return value }
        return "=?base64?" + Data(value.utf8).base64EncodedString() + "?="
    }

    /// The `data` of each server-sent event in `body`.
    static func events(_ body: ByteBuffer) -> [[UInt8]] {
        let text = String(buffer: body).replacingOccurrences(of: "\r\n", with: "\n")
        var out: [[UInt8]] = []
        for block in text.components(separatedBy: "\n\n") {
            let data = block.split(separator: "\n", omittingEmptySubsequences: false)
                .filter { $0.hasPrefix("data:") }
                .map { line -> Substring in
                    let rest = line.dropFirst(5)
                    return rest.hasPrefix(" ") ? rest.dropFirst() : rest
                }
                .joined(separator: "\n")
            if !data.isEmpty { out.append(Array(data.utf8)) }
        }
        return out
    }

    static func reason(_ body: ByteBuffer) -> String {
        guard let j = try? JSONValue.parse(Array(buffer: body)), let e = j["error"]?.stringValue else { return "" }
        return " \(e)" + (j["error_description"]?.stringValue.map { ": \($0.prefix(200))" } ?? "")
    }

    static func error(id: JSONValue, code: Int, _ message: String) -> String {
        JSONValue.object([
            ("jsonrpc", .string("2.0")), ("id", id),
            ("error", .object([("code", .number(String(code))), ("message", .string(message))])),
        ]).serialized
    }
}

/// Standard input as lines, read on a thread of its own (blocking reads never hold a task). Bounded: a line longer
/// than `maxLine` bytes is dropped whole (with a note on standard error), and the reader waits while `window` lines
/// are read but not yet taken (``taken()``).
public final class StdinLines: Sendable {
    public let lines: AsyncStream<[UInt8]>
    let room: DispatchSemaphore

    public init(maxLine: Int = MCPStdioBridge.maxMessageBytes, window: Int = 256) {
        let (stream, continuation) = AsyncStream.makeStream(of: [UInt8].self, bufferingPolicy: .unbounded)
        lines = stream
        let room = DispatchSemaphore(value: window)
        self.room = room
        let thread = Thread {
            var pending: [UInt8] = []
            var dropping = false
            func emit() {
                room.wait()
                continuation.yield(pending)
            }
            while true {
                let data = FileHandle.standardInput.availableData
                if data.isEmpty { break }
                for byte in data {
                    if byte == 10 {
                        if !dropping { emit() }
                        pending.removeAll(keepingCapacity: true)
                        dropping = false
                    } else if !dropping {
                        pending.append(byte)
                        if pending.count > maxLine {
                            FileHandle.standardError.write(
                                Data("warden: a message over \(maxLine) bytes was dropped\n".utf8))
                            pending.removeAll()
                            dropping = true
                        }
                    }
                }
            }
            if !pending.isEmpty, !dropping { emit() }
            continuation.finish()
        }
        thread.start()
    }

    /// One line was taken from ``lines``: the reader may read one more.
    public func taken() { room.signal() }
}
