import Foundation
import Testing
import WardenTestSupport

/// The MCP gateway driven by the Python MCP SDK (`Tests/Interop/mcp_interop.py`, `mcp==2.3.0`): its client, in both
/// protocol eras, lists and calls tools through a live `warden serve --config` against servers written with the same
/// SDK (one over streamable HTTP that requires the brokered credential and records what reaches it, one over stdio
/// that Warden starts); per-tool least privilege, no token passthrough, the stdio server's limited environment, DLP
/// redaction, a high-risk call held until `warden approvals approve` (and one denied), a rug pull blocked until
/// `warden mcp tools approve`, RFC 9728 metadata and the audit entries.
@Suite("MCP interop: the Python MCP SDK's client and servers through /mcp")
struct MCPInteropTests {
    @Test("both eras, HTTP and stdio upstreams, least privilege, DLP, approvals, rug pull, RFC 9728, audit")
    func liveServer() throws {
        guard let out = try PythonInterop.live("mcp_interop.py", modules: "joserfc, requests, mcp, httpx2") else {
            return
        }
        // Every check the issue names ran (a script that stopped early would print fewer).
        #expect(out.contains("12 passed, 0 failed"), "\(out.suffix(1500))")
        for check in [
            "outside the manifest", "redacted", "waits for approval", "changed tool definition", "2026-07-28",
        ] {
            #expect(out.contains(check), "no check mentioning \(check)")
        }
    }

    @Test("self-test: the generated configuration")
    func selfTest() throws { try PythonInterop.selfTest("mcp_interop.py") }
}
