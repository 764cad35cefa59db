import Foundation
import Testing
import WardenTestSupport

/// Interop with clients others wrote, against a live `warden serve` on 127.0.0.1: joserfc makes the DPoP proofs and
/// client assertions, pyjwt verifies tokens against the published JWKS, `cryptography` makes the CSR and `openssl`
/// verifies the SVID (`Tests/Interop/identity_interop.py`). Needs the built `warden` binary and a Python with those
/// packages (`.ci/run` installs them into `.venv`).
@Suite("Identity interop with joserfc, pyjwt and openssl against a live server")
struct IdentityInteropTests {
    @Test("enroll, token, whoami, JWKS, SVID, replay, stolen token, revocation, restart")
    func liveServer() throws { try PythonInterop.live("identity_interop.py") }
}
