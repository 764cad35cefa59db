import Foundation
import Testing
import WardenClient
import WardenTestSupport

/// Where the CLI and the clients send credentials: https anywhere, plain http only to a loopback address written
/// plainly or `localhost` (`Loopback`).
@Suite("Loopback: plain http only to this machine")
struct LoopbackTests {
    static let allowed = [
        "http://127.0.0.1", "http://127.0.0.1:8443", "http://127.0.0.1:8443/", "HTTP://127.0.0.1/v1",
        "http://127.1.2.3",
        "http://127.255.255.254:1", "http://localhost:8443", "http://LocalHost", "http://[::1]:8443", "http://[::1]",
        "http://[0:0:0:0:0:0:0:1]/", "http://[0000:0000::0001]:1", "https://warden.example", "https://10.0.0.1:8443",
    ]

    static let refused = [
        // Names and forms that only look like loopback.
        "http://127.attacker.example", "http://127.attacker.example:1/", "http://127.0.0.1.nip.io:8443",
        "http://127.1", "http://127.0.1", "http://0x7f.0.0.1", "http://0177.0.0.1", "http://127.0.0.01",
        "http://2130706433", "http://127.0.0.256", "http://127.0.0.1.", "http://127.0.0.-1", "http://127.0.0.1 ",
        "http://１２７.0.0.1", "http://localhost.attacker.example", "http://localhost.", "http://localhost.:80",
        "http://evil.example#@127.0.0.1", "http://evil.example/127.0.0.1",
        // IPv6 other than ::1 written as eight groups.
        "http://[::ffff:127.0.0.1]", "http://[::ffff:7f00:1]", "http://[::0.0.0.1]", "http://[::1%25lo]",
        "http://[::2]", "http://[1::1]", "http://[::1::]", "http://[0:0:0:0:0:0:0:0:1]", "http://[00000::1]",
        "http://::1", "http://[::1", "http://[::1]x",
        // User information, whatever the parser makes of it.
        "http://user@127.0.0.1@evil", "http://user@127.0.0.1", "http://127.0.0.1@evil.example",
        "http://127.0.0.1\\@evil.example", "https://user:pass@warden.example",
        // Ports, schemes, shapes.
        "http://127.0.0.1:99999", "http://127.0.0.1:80:80", "http://127.0.0.1:", "http://127.0.0.1:0x50",
        "ftp://127.0.0.1", "unix://127.0.0.1", "http+unix://127.0.0.1", "http:127.0.0.1", "http:/127.0.0.1",
        "http://", "127.0.0.1:8443", "",
    ]

    @Test("loopback addresses, ::1 and localhost pass over http; https passes anywhere")
    func allowedURLs() throws {
        for url in Self.allowed {
            #expect(throws: Never.self, "\(url)") { try Loopback.checkCredentialsAllowed(to: url) }
        }
    }

    @Test("look-alike hosts, other addresses, user information and malformed URLs are refused")
    func refusedURLs() throws {
        for url in Self.refused {
            #expect(throws: WardenClientError.self, "\(url)") { try Loopback.checkCredentialsAllowed(to: url) }
        }
    }

    @Test("isLoopbackHost: strict dotted quads in 127.0.0.0/8, ::1 in brackets, localhost exactly")
    func hosts() {
        for h in ["127.0.0.1", "127.0.0.0", "127.255.255.255", "localhost", "LOCALHOST", "[::1]", "[0::1]"] {
            #expect(Loopback.isLoopbackHost(h), "\(h)")
        }
        for h in [
            "127.attacker.example", "127.1", "0x7f.0.0.1", "0127.0.0.1", "128.0.0.1", "126.255.255.255", "::1", "[::]",
            "[::ffff:127.0.0.1]", "localhost.", "localhost.attacker.example", "xlocalhost", "", "[]", "[",
            "127.0.0.1/8",
        ] {
            #expect(!Loopback.isLoopbackHost(h), "\(h)")
        }
    }

    @Test("the client refuses before any network use, and the error names neither the token nor user information")
    func clientRefuses() async throws {
        for server in ["http://127.attacker.example:1/", "http://user:secret@127.0.0.1@evil.example:1"] {
            let admin = AdminClient(server: server, token: "the-admin-token")
            do {
                _ = try await admin.call("GET", "/v1/admin/agents")
                Issue.record("\(server): the request was sent")
            } catch let e as WardenClientError {
                #expect(!e.description.contains("the-admin-token") && !e.description.contains("secret"))
                #expect(e.description.contains("refusing") || e.description.contains("user information"))
            }
        }
        // A path cannot move the request to another host either.
        let admin = AdminClient(server: "http://127.0.0.1:1", token: "t")
        await #expect(throws: WardenClientError.self) { _ = try await admin.call("GET", "@evil.example/") }
    }

    @Test("warden serve refuses an event-loop count out of range before it starts")
    func eventLoopsBounded() throws {
        guard let binary = WardenCLI.builtBinary() else { return }
        let dir = try WardenCLI.scratchDirectory("warden-loops")
        defer { try? FileManager.default.removeItem(at: dir) }
        for count in ["0", "257"] {
            let (status, _, err) = try WardenCLI.run(
                binary, ["serve", "--data", dir.appendingPathComponent("data").path, "--event-loops", count], in: dir)
            #expect(status != 0, "--event-loops \(count)")
            #expect(err.contains("--event-loops must be between 1 and 256"), "\(err)")
            // Refused before the data directory was made.
            #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("data").path))
        }
    }

    @Test("warden admin verbs refuse a look-alike loopback URL before any network use")
    func cliRefuses() throws {
        guard let binary = WardenCLI.builtBinary() else { return }
        let dir = try WardenCLI.scratchDirectory("warden-loopback")
        defer { try? FileManager.default.removeItem(at: dir) }
        let tokenFile = dir.appendingPathComponent("admin.token").path
        try "not-a-real-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: tokenFile)
        for arguments in [
            ["agent", "list", "--server", "http://127.attacker.example:1/", "--admin-token-file", tokenFile],
            ["audit", "tail", "--server", "http://127.0.0.1.nip.io:1", "--admin-token-file", tokenFile],
            ["audit", "checkpoint", "--server", "http://0x7f.0.0.1:1", "--admin-token-file", tokenFile],
        ] {
            let (status, out, err) = try WardenCLI.run(binary, arguments, in: dir)
            #expect(status == 1, "\(arguments): \(out) \(err)")
            #expect(out.isEmpty)
            // The refusal, not a name-resolution or connection error: nothing was looked up or connected to.
            #expect(err.contains("refusing to send credentials over plain http to http://"), "\(err)")
            #expect(!err.contains("not-a-real-token"))
        }
    }
}
