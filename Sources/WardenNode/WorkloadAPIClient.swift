import GRPCCore
import GRPCNIOTransportHTTP2

/// A SPIFFE Workload API client (what `warden agent proxy --socket` takes its identity from): one connection per
/// call to the unix socket, the `workload.spiffe.io` header, a timeout.
public struct WorkloadAPIClient: Sendable {
    /// The socket's path.
    public let path: String
    public let timeout: Duration

    /// `socket` is a path or a `unix://` address (as `SPIFFE_ENDPOINT_SOCKET` has it).
    public init(socket: String, timeout: Duration = .seconds(10)) {
        path = socket.hasPrefix("unix://") ? String(socket.dropFirst(7)) : socket
        self.timeout = timeout
    }

    /// A JWT-SVID for `audiences`: the one for `spiffeID`, or the first the workload is entitled to.
    public func fetchJWTSVID(audiences: [String], spiffeID: String? = nil) async throws -> (
        spiffeID: String, token: String
    ) {
        var request = JWTSVIDRequest()
        request.audience = audiences
        if let spiffeID { request.spiffeID = spiffeID }
        var metadata = Metadata()
        metadata.addString("true", forKey: "workload.spiffe.io")
        var options = CallOptions.defaults
        options.timeout = timeout
        let response = try await withGRPCClient(
            transport: try .http2NIOPosix(target: .unixDomainSocket(path: path), transportSecurity: .plaintext)
        ) { client in
            try await SpiffeWorkloadAPI.Client(wrapping: client).fetchJWTSVID(
                request, metadata: metadata, options: options)
        }
        guard let svid = response.svids.first(where: { spiffeID == nil || $0.spiffeID == spiffeID }) else {
            throw RPCError(code: .permissionDenied, message: "the Workload API returned no JWT-SVID")
        }
        return (svid.spiffeID, svid.svid)
    }
}
