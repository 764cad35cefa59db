import Foundation
import Testing
import WardenTestSupport

/// The enforcement gateway driven by clients others wrote (`Tests/Interop/gateway_interop.py`): against a live
/// `warden serve --config` with two routes to an upstream recorder in Python, joserfc makes the agents' keys, DPoP
/// proofs and client assertions, requests and curl make the calls; the script checks what the agent gets back and
/// what the upstream receives (the brokered credential, never the agent's token or proof; the forwarding headers),
/// the scope and Cedar refusals with their reason codes, stolen tokens, replayed proofs, missing credentials, a live
/// policy reload, quarantine, the audit entries and `/metrics`. `--selftest` checks the script's own pieces and needs
/// no package.
@Suite("Gateway interop: joserfc, requests and curl through /r/<route> to a recording upstream")
struct GatewayInteropTests {
    @Test("forwarding, brokered credential, scope and policy refusals, stolen token, replay, quarantine, metrics")
    func liveServer() throws { try PythonInterop.live("gateway_interop.py") }

    @Test("self-test: the recording upstream, the metrics parser, htu and the RFC 9449 ath example")
    func selfTest() throws { try PythonInterop.selfTest("gateway_interop.py") }
}
