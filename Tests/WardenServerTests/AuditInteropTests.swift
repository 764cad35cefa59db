import Foundation
import Testing
import WardenTestSupport

/// An independent auditor of the tamper-evident audit log, written in Python from `docs/audit.md` and the RFCs
/// (`Tests/Interop/audit_interop.py`): against a live `warden serve` it verifies the signed checkpoints with joserfc
/// and pyjwt, recomputes leaf hashes, RFC 9162 tree heads and the hash chain from the export, checks inclusion and
/// consistency proofs, the OCSF export and the events API; then it runs `warden audit verify` on the stopped
/// server's data and on copies tampered with plain SQL, each of which must be detected and located. `--selftest`
/// checks the script's own hashing and proof code against the RFC 6962 test vectors and needs no package.
@Suite("Audit log interop: an external auditor in Python against a live server and its data")
struct AuditInteropTests {
    @Test("checkpoints, JWS, export, RFC 9162 proofs, OCSF, events, audit verify and tampering")
    func liveServer() throws { try PythonInterop.live("audit_interop.py") }

    @Test("self-test: RFC 6962 vectors, generated and corrupted proofs, tamper procedures")
    func selfTest() throws { try PythonInterop.selfTest("audit_interop.py") }
}
