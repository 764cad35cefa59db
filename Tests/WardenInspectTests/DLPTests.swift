import Cedar
import Foundation
import Testing
import WardenCore

@testable import WardenInspect

@Suite("DLP: keyword-anchored, encoded and high-entropy secrets")
struct DLPTests {
    let dlp = DLPScanner()

    static let awsSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    static let awsKeyID = "AKIAIOSFODNN7EXAMPLE"
    static let githubToken = "ghp_" + String(repeating: "a1B2", count: 9)
    static let password = "Zx8!qP2rLm4#Tv9wKe7$"

    static func base64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }
    static func base64URL(_ s: String) -> String {
        base64(s).replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
    static func hex(_ s: String) -> String { s.utf8.map { String(format: "%02x", $0) }.joined() }

    /// The findings in `text` as (kind, matched text).
    func findings(_ text: String) -> [(String, String)] {
        let bytes = Array(text.utf8)
        return dlp.scan(text).map { ($0.kind, String(decoding: bytes[$0.range], as: UTF8.self)) }
    }

    /// `text` has exactly one finding, of `kind`, covering exactly `secret`; redaction removes it and leaves nothing.
    func expectOnly(
        _ kind: String, _ secret: String, in text: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let found = findings(text)
        #expect(found.count == 1, "\(text): \(found)", sourceLocation: sourceLocation)
        #expect(found.first?.0 == kind, "\(text): \(found)", sourceLocation: sourceLocation)
        #expect(found.first?.1 == secret, "\(text): \(found)", sourceLocation: sourceLocation)
        let (redacted, kinds) = dlp.redact(text)
        #expect(kinds == [kind], "\(text)", sourceLocation: sourceLocation)
        #expect(!redacted.contains(secret), sourceLocation: sourceLocation)
        #expect(redacted.contains("[REDACTED:\(kind)]"), sourceLocation: sourceLocation)
        #expect(dlp.scan(redacted).isEmpty, sourceLocation: sourceLocation)
    }

    @Test("a high-entropy value after a secret-ish keyword is a generic_secret")
    func keywordAnchored() {
        let s = Self.awsSecret
        expectOnly("generic_secret", s, in: "aws secret: \(s)")
        expectOnly("generic_secret", s, in: "the secret is \(s).")
        expectOnly("generic_secret", s, in: #"{"awsSecret": "\#(s)", "region": "us-east-1"}"#)
        expectOnly("generic_secret", s, in: #"{\"aws_secret\":\"\#(s)\"}"#)
        expectOnly("generic_secret", Self.password, in: "password=\(Self.password)")
        expectOnly("generic_secret", Self.password, in: "DB_PASSWD: '\(Self.password)'\nDB_HOST: db.internal")
        expectOnly("generic_secret", "hR7#kLp2!xQ9vZ4m", in: "pwd = hR7#kLp2!xQ9vZ4m;")
        expectOnly(
            "generic_secret", "8f4Kq2LmZ7xR1vT9wB3nY6cD", in: "client_secret=8f4Kq2LmZ7xR1vT9wB3nY6cD&scope=read")
        expectOnly(
            "generic_secret", "9Fh2kQ7LmXz4Rt8VbN1cWq5sYp3D", in: "Authorization: Bearer 9Fh2kQ7LmXz4Rt8VbN1cWq5sYp3D")
        expectOnly(
            "generic_secret", "4f9a2b7c1d8e3f6a0b5c9d2e7f1a4b8c", in: "X-Api-Key: 4f9a2b7c1d8e3f6a0b5c9d2e7f1a4b8c")
        expectOnly(
            "generic_secret", "Q7mZ2xK9pL4wR8tV1nB6",
            in: "GET https://api.example.com/v1/items?token=Q7mZ2xK9pL4wR8tV1nB6&limit=10")
        expectOnly("generic_secret", "Xq7vN2pL9kR4mT8wZ3", in: "credentials => Xq7vN2pL9kR4mT8wZ3")
        // The prefixed detector still names what it knows; the generic one adds nothing over it.
        expectOnly("aws_secret_key", s, in: #"{"awsSecretAccessKey": "\#(s)"}"#)
        expectOnly("github_token", Self.githubToken, in: "token: \(Self.githubToken).")
        let (glued, kinds) = dlp.redact("password=\(s)\(Self.awsKeyID)")
        #expect(kinds == ["generic_secret"])
        #expect(glued == "password=[REDACTED:generic_secret]")
    }

    @Test("keywords without a secret value are not findings")
    func keywordWithoutSecret() {
        let texts = [
            "password: correct horse battery staple", "token=abc", "api_key=short1234",
            "secret_name: app-tls-cert-2024", "secretRef: production-database-credentials-v2",
            "PASSWORD_VAR: PROD_DB_PASSWORD_2024", "auth_method: client_secret_basic", "token_type: Bearer",
            "password=$DATABASE_PASSWORD_FROM_ENV1", "pwd: /home/alice/projects/warden/Sources",
            "secret: 2024-01-15T10:30:00.000Z", "api_key=1234567890123456789012",
            "token: 550e8400-e29b-41d4-a716-446655440000", "auth: alice@example.com",
            "access_key_hint: abcdef0123456789",
        ]
        for t in texts {
            let kinds = Set(findings(t).map(\.0))
            #expect(!kinds.contains("generic_secret"), "\(t)")
            #expect(!kinds.contains("high_entropy"), "\(t)")
        }
    }

    @Test("a base64 or hex token that decodes to a known secret is an encoded_secret")
    func encoded() {
        #expect(Self.base64(Self.awsKeyID) == "QUtJQUlPU0ZPRE5ON0VYQU1QTEU=")
        let cases = [
            Self.base64(Self.awsKeyID), Self.base64URL(Self.awsKeyID), Self.base64(Self.githubToken),
            Self.base64URL(Self.githubToken), Self.hex(Self.awsKeyID), "0x" + Self.hex(Self.awsKeyID),
            Self.hex(Self.githubToken).uppercased(),
            Self.base64("AWS_ACCESS_KEY_ID=\(Self.awsKeyID)\nAWS_REGION=us-east-1\n"),
            Self.base64("{\"password\": \"\(Self.password)\"}"),
            Self.base64("-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"),
        ]
        for token in cases {
            expectOnly("encoded_secret", token, in: "blob \(token) end")
            expectOnly("encoded_secret", token, in: #"{"data":"\#(token)"}"#)
        }
        // An escaped line break before the token is not part of it.
        expectOnly("encoded_secret", Self.base64(Self.awsKeyID), in: #"x\n\#(Self.base64(Self.awsKeyID))"#)
        // Encoded ordinary text is not a finding, nor is an e-mail address in it.
        for plain in ["Hello, world! This is only a test.", "mail alice@example.com today please", "password policy"] {
            #expect(dlp.scan("payload \(Self.base64(plain))").isEmpty, "\(plain)")
            #expect(dlp.scan("payload \(Self.hex(plain))").isEmpty, "\(plain)")
        }
    }

    @Test("a long, very random token on its own is high_entropy; digests, URLs and blob lines are not")
    func highEntropy() {
        let token = "7fK2mQ9xL4vR8tB1nW6cY3pZ5hJ0sD2gA9eU4kM1"
        expectOnly("high_entropy", token, in: "deploy with \(token) now")
        expectOnly("high_entropy", token + "==", in: "[\"\(token)==\"]")
        for t in [
            "https://files.example/\(token)", "see \(token).png", "https://x.example/a?id=\(token)",
            "sha256-\(token)", "Digest: sha-256=\(token)", "\(token)\n\(token)", "\(token)\\n\(token)",
            "data:application/octet-stream;base64,\(token)", "/srv/\(token)", "user \(token)@example.com",
            "AbstractSingletonProxyFactoryBean2Impl", "x7fK2mQ9xL4vR8tB1nW6",
        ] {
            #expect(!findings(t).contains { $0.0 == "high_entropy" }, "\(t)")
        }
    }

    @Test("a string under a secret-ish JSON key is checked as a whole, in keys and values alike")
    func jsonKeys() throws {
        let tree = try JSONValue.parse(
            """
            {"awsSecret":"\(Self.awsSecret)","db":{"password":"\(Self.password)","user":"\(Self.password)"},\
            "items":["\(Self.base64(Self.awsKeyID))"],"clientSecret":"short","apiKeys":[1,2],\
            "note":"aws secret: \(Self.awsSecret)"}
            """)
        let (out, kinds) = dlp.redact(tree)
        #expect(kinds == ["generic_secret", "encoded_secret"])
        #expect(
            out.serialized
                == """
                {"awsSecret":"[REDACTED:generic_secret]","db":{"password":"[REDACTED:generic_secret]",\
                "user":"\(Self.password)"},"items":["[REDACTED:encoded_secret]"],"clientSecret":"short",\
                "apiKeys":[1,2],"note":"aws secret: [REDACTED:generic_secret]"}
                """)
        #expect(dlp.findings(in: tree) == kinds)
        #expect(dlp.findings(in: out).isEmpty)
    }

    /// Deterministic bytes that look like a PNG file.
    static func png(_ count: Int) -> Data {
        var rng = SplitMix64(state: 0x50_4E47)
        var bytes: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        while bytes.count < count { bytes.append(UInt8(truncatingIfNeeded: rng.next())) }
        return Data(bytes)
    }

    @Test("prose, identifiers, digests, images, paths, URLs and ordinary JSON are not findings")
    func noFalsePositives() throws {
        let prose = """
            The password policy requires twelve characters, including a digit and a symbol. Never share your \
            password with anyone, and change it every ninety days; a password manager makes that painless.

            Our secret to shipping quickly is small pull requests. The token bucket algorithm smooths bursts: \
            each token represents one request, and the bucket refills at a steady rate of 100 tokens per second.

            Authentication happens at the gateway. The authorization server issues access tokens to clients, \
            and credentials are kept in the vault, never in source control. The API key is rotated monthly, and \
            private keys never leave the hardware security module.

            To reset a forgotten password, open Settings, choose Security, and follow the instructions we send. \
            The secret is out: version 2.4.1 ships on 2024-03-15 with internationalization and accessibility \
            improvements. Tokenization of 1,024 documents took 3.7 seconds; see the authoritative changelog.
            """
        let image = Self.png(3000)
        let blob = image.base64EncodedString()
        let wrapped = image.base64EncodedString(options: [.lineLength76Characters, .endLineWithLineFeed])
        let wrappedCRLF = image.base64EncodedString(options: [
            .lineLength64Characters, .endLineWithCarriageReturn, .endLineWithLineFeed,
        ])
        let texts = [
            prose,
            // UUIDs.
            "request 550e8400-e29b-41d4-a716-446655440000, trace F47AC10B-58CC-4372-A567-0E02B2C3D479",
            "id=7d444840-9dc0-11d1-b245-5ffdce74fad2 session token 6ba7b810-9dad-11d1-80b4-00c04fd430c8",
            // Digests and commit ids.
            "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  archive.tar.gz",
            "sha1: 2fd4e1c67a2d28fced849ee1bb76e7391b93eb12, md5: 9e107d9d372bb6826bd81d3542a419d6",
            "image@sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4",
            "commit 4f2a9c1e7b3d5a8f0e6c2b9d1a7f3e5c8b0d4a6f\nAuthor: Alice <alice@example>\n\nFix abc1234 and 9fceb02",
            "MD5 (file.iso) = D41D8CD98F00B204E9800998ECF8427E",
            #"<script integrity="sha384-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC"></script>"#,
            "Digest: sha-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            // Images.
            "<img src=\"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==\">",
            "data:image/png;base64,\(blob)", blob, wrapped, wrappedCRLF,
            #"{"image":"\#(wrapped.replacingOccurrences(of: "\n", with: "\\n"))"}"#,
            "-----BEGIN CERTIFICATE-----\n\(wrapped.prefix(640))\n-----END CERTIFICATE-----",
            // Paths and URLs.
            "/usr/local/lib/python3.11/site-packages/requests/__init__.py",
            #"C:\Users\Alice\AppData\Local\Temp\build-7f3a9c.log"#,
            "~/projects/warden/Sources/WardenGateway/MCP/DLP.swift:42:7",
            "https://github.com/apple/swift-nio/blob/4f2a9c1e7b3d5a8f0e6c2b9d1a7f3e5c8b0d4a6f/Sources/NIOCore/X.swift#L120",
            "https://docs.google.com/document/d/1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms/edit",
            "https://example.com/search?q=password+policy&page=2 and https://auth.example.com/oauth2/token",
            "s3://backups/2024-01-15/db.sql.gz, /var/run/secrets/kubernetes.io/serviceaccount/token",
            // Identifiers and encoded prose.
            "AbstractSingletonProxyFactoryBean2Impl, x86_64-unknown-linux-gnu, internationalization",
            "SGVsbG8gV29ybGQhIFRoaXMgaXMgYSB0ZXN0Lg==",
        ]
        for t in texts {
            let found = findings(t)
            #expect(found.isEmpty, "\(t.prefix(200)): \(found)")
            let (redacted, kinds) = dlp.redact(t)
            #expect(redacted == t)
            #expect(kinds.isEmpty)
        }
        let document = try JSONValue.parse(
            """
            {"name":"warden","version":"1.4.2","description":"A zero-trust gateway for AI agents; the secret \
            store and the password policy are described in docs/operations.md.",\
            "repository":{"type":"git","url":"https://github.com/example/warden.git"},"author":"Example Team",\
            "license":"Apache-2.0","keywords":["security","gateway","mcp","authorization","tokens"],\
            "config":{"listen":"127.0.0.1:8443","token_ttl_seconds":300,"auth_mode":"dpop",\
            "password_min_length":12,"secret_store":"/var/lib/warden/secrets","max_tokens":4096,\
            "created":"2024-01-15T10:30:00Z","id":"550e8400-e29b-41d4-a716-446655440000",\
            "checksum":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",\
            "tokenizer":"cl100k_base","credentials_file":"~/.config/warden/credentials.json",\
            "password_policy":"twelve characters minimum","auth_url":"https://auth.example.com/oauth2/authorize"}}
            """)
        #expect(dlp.findings(in: document).isEmpty)
        #expect(dlp.redact(document).0 == document)
        #expect(dlp.scan(document.serialized).isEmpty)
    }

    @Test("fuzz: fragments of the new shapes never crash, findings never overlap, redaction is complete")
    func fuzz() {
        var rng = SplitMix64(state: 0xE17_0B1)
        let fragments = [
            "secret", "Password", "token", "api_key", "auth", "awsSecret", ": ", "=", "\"", " is ", "Bearer ",
            Self.awsSecret, Self.password, Self.base64(Self.awsKeyID), Self.hex(Self.githubToken), "QUtJ", "==",
            "7fK2mQ9xL4vR8tB1nW6cY3pZ5hJ0sD2gA9eU4kM1", "\n", "\\n", "https://", "/", ".", "base64,", "sha256-",
            "0x", "4f", "aB3", "[REDACTED:generic_secret]", " ", "é", "-", "_",
        ]
        for _ in 0..<2000 {
            let count = Int(rng.next() % 30)
            let text = (0..<count).map { _ in fragments[Int(rng.next() % UInt64(fragments.count))] }.joined()
            let n = text.utf8.count
            var last = 0
            for f in dlp.scan(text) {
                #expect(
                    f.range.lowerBound >= last && f.range.lowerBound < f.range.upperBound && f.range.upperBound <= n)
                last = f.range.upperBound
            }
            let (redacted, kinds) = dlp.redact(text)
            #expect(dlp.scan(redacted).isEmpty, "\(text)")
            #expect(kinds.isEmpty == dlp.scan(text).isEmpty)
        }
    }

    @Test("adversarial inputs for the new detectors scan in linear time")
    func adversarial() {
        let base64Line = Self.png(57).base64EncodedString()
        let texts = [
            String(repeating: "password=", count: 10_000), String(repeating: "secret ", count: 15_000),
            String(repeating: "token: aB3", count: 10_000), String(repeating: "awsSecret\":\"", count: 8_000),
            String(repeating: Self.base64(Self.awsKeyID) + " ", count: 3_000),
            String(repeating: "QUtJQUlPU0ZPRE5ON0VYQU1QTEU", count: 4_000), String(repeating: "a", count: 100_000),
            String(repeating: base64Line + "\n", count: 1_500), String(repeating: "sha", count: 30_000),
            String(repeating: "7fK2mQ9xL4vR8tB1nW6cY3pZ5hJ0sD2gA9eU4kM1.", count: 2_000),
            String(repeating: "/a", count: 50_000), String(repeating: "https://", count: 10_000),
        ]
        let clock = ContinuousClock()
        for t in texts {
            let elapsed = clock.measure {
                let (redacted, _) = dlp.redact(t)
                #expect(dlp.scan(redacted).isEmpty)
            }
            // Linear work on 100 KB is milliseconds; a quadratic scan would take minutes.
            #expect(elapsed < .seconds(20), "\(t.prefix(40))")
        }
    }
}
