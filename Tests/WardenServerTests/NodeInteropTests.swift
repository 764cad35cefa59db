import Foundation
import Testing
import WardenTestSupport

/// `warden node` driven by SPIFFE's own Python client (py-spiffe's X509Source, JwtSource and WorkloadApiClient),
/// grpcio and h2 (`Tests/Interop/node_interop.py`): SVIDs fetched, rotated and validated, a binary matching no
/// manifest and a connection whose process died (its pid taken by an attested binary) get nothing, quarantine stops
/// issuance, and the JWT-SVID works as a `jwt-spiffe` client assertion with DPoP. Needs the built `warden` binary and
/// a Python with those packages (`.ci/run` installs them into `.venv`).
@Suite("Workload API interop with py-spiffe against a live warden node")
struct NodeInteropTests {
    @Test("X509Source, JwtSource, rotation, unmatched binary, pid reuse, quarantine, jwt-spiffe token")
    func liveNode() throws {
        guard
            let out = try PythonInterop.live(
                "node_interop.py", modules: "spiffe, grpc, h2, joserfc, jwt, cryptography, requests")
        else { return }
        // Every check ran (none skipped silently), the pid-reuse attack among them.
        #expect(out.contains("9 passed, 0 failed"), "\(out.suffix(2000))")
        #expect(out.contains("ok a connection whose process died gets nothing"), "\(out.suffix(2000))")
    }
}
