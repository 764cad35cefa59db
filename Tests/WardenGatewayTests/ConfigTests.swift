import Testing
import WardenCore
import WardenGateway

@Suite("warden.yaml")
struct ConfigTests {
    @Test("the documented example parses; derived URLs drop trailing slashes")
    func example() throws {
        let c = try WardenConfig(
            parsing: """
                trust_domain: example.org
                listen: 127.0.0.1:9443
                public_url: https://warden.example.org/
                tokens: {access_ttl: 2m, svid_ttl: 1h, join_token_ttl: 5m, signing_key_rotation: 12h, max_delegation_depth: 2}
                dpop: {require_nonce: true, max_age: 30s, clock_skew: 10s}
                tls: {listen: 127.0.0.1:9444}
                """, file: "w.yaml")
        #expect(c.trustDomain == "example.org")
        #expect(c.issuer == "https://warden.example.org")
        #expect(c.accessTTL == 120 && c.joinTokenTTL == 300 && c.signingKeyRotation == 43_200)
        #expect(c.dpopRequireNonce && c.dpopMaxAge == 30 && c.clockSkew == 10)
        #expect(c.tlsBase == "https://127.0.0.1:9444")
    }

    @Test("bad values name the file, line and key")
    func errors() {
        let cases: [(String, String)] = [
            ("public_url: https://\n", "w.yaml:1:1: public_url"),
            ("public_url: ftp://x\n", "public_url"),
            ("public_url: http://h/?q\n", "public_url"),
            ("tls: {public_url: http://x}\n", "tls.public_url"),
            ("tokens: {access_ttl: 301s}\n", "tokens.access_ttl: must be at most 300"),
            ("listen: nowhere\n", "w.yaml:1:1: listen"),
            ("routes: {}\n", "not supported by this version yet"),
            ("trust_domain: Upper.Case\n", "trust_domain"),
            ("bogus: 1\n", "unknown key"),
        ]
        for (text, expected) in cases {
            do {
                _ = try WardenConfig(parsing: text, file: "w.yaml")
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.code == .invalidConfig)
                #expect(error.message.contains(expected), "\(error.message)")
            }
        }
    }
}
