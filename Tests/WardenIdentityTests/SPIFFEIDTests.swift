import Testing
import WardenCore

@Suite("SPIFFE IDs")
struct SPIFFEIDTests {
    @Test(
        "valid IDs parse",
        arguments: ["spiffe://warden.local/agent/support-bot", "spiffe://a-b_c.9", "spiffe://td/A.b-C_9/x"])
    func valid(text: String) throws {
        #expect(try SPIFFEID(parsing: text).description == text)
    }

    @Test(
        "invalid IDs are refused",
        arguments: [
            "", "spiffe://", "SPIFFE://td/x", "https://td/x", "spiffe://TD/x", "spiffe://td:8080/x", "spiffe://u@td/x",
            "spiffe://td/", "spiffe://td//x", "spiffe://td/./x", "spiffe://td/../x", "spiffe://td/x?y",
            "spiffe://td/x#y",
            "spiffe://td/x y", "spiffe://td/é", "spiffe:///x",
        ])
    func invalid(text: String) {
        #expect(throws: WardenError(.invalidSPIFFEID, "")) { try SPIFFEID(parsing: text) }
    }

    @Test("agent IDs and the length limit")
    func agents() throws {
        #expect(try SPIFFEID.agent("support-bot", trustDomain: "warden.local").path == "/agent/support-bot")
        #expect(throws: WardenError(.invalidSPIFFEID, "")) { try SPIFFEID.agent("a/b", trustDomain: "warden.local") }
        #expect(throws: WardenError(.invalidSPIFFEID, "")) {
            try SPIFFEID(parsing: "spiffe://td/" + String(repeating: "a", count: 2100))
        }
    }
}
