import Crypto
import Foundation
import Synchronization
import WardenCore
import WardenIdentity

#if canImport(Glibc)
    import Glibc
#endif

/// A connected workload as the kernel reported it when its connection was accepted: `SO_PEERCRED` (uid, gid and pid
/// at `connect()`), the process's start time read right then, and on Linux 6.5 and later a pidfd of the very process
/// that connected (`SO_PEERPIDFD`), which tells when that process has gone even if its pid is reused.
public struct WorkloadPeer: Sendable, Hashable {
    public let pid: Int32
    public let uid: UInt32
    public let gid: UInt32
    /// Field 22 of `/proc/<pid>/stat` (clock ticks since boot) at accept time; nil when it could not be read.
    public let startTime: UInt64?
    /// The pidfd, owned by the registry of the connection; nil on kernels without `SO_PEERPIDFD`.
    public let pidfd: Int32?
    /// Device and inode of the binary the process ran at accept time: a process that exec's another binary after
    /// connecting (handing the connection to a child) is not the workload that connected.
    public let binary: BinaryID?

    public init(pid: Int32, uid: UInt32, gid: UInt32, startTime: UInt64?, pidfd: Int32?, binary: BinaryID? = nil) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.startTime = startTime
        self.pidfd = pidfd
        self.binary = binary
    }
}

/// A file's device and inode.
public struct BinaryID: Sendable, Hashable {
    public let device: UInt64
    public let inode: UInt64

    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }
}

/// Why a workload got no identity (kept off the wire: the caller learns only that it has none).
public struct AttestationFailure: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Reads what the kernel knows of a process and turns it into selectors: `unix:uid:<n>`, `unix:gid:<n>`,
/// `unix:path:<binary>` and `unix:sha256:<binary's SHA-256>`. The binary is hashed through `/proc/<pid>/exe`, the
/// file the process was started from (even when it has since been replaced or deleted).
///
/// Pid reuse: the attestation holds only if the process examined is the one that connected. The process's start time
/// is read at accept time and again before and after hashing; all three must agree, and where the kernel gives a pidfd
/// of the connecting process, that process must still be running after the hash. A connection whose process has died
/// (its pid perhaps reused by an attested binary) gets nothing.
public final class WorkloadAttestor: Sendable {
    /// Where `/proc` is (tests may point elsewhere).
    let proc: String
    /// Hashes by (device, inode, size, mtime) of the binary, so a binary is read once, not per request.
    let hashes = Mutex<[String: String]>([:])
    /// The largest binary hashed (bytes).
    public let maxBinaryBytes: Int

    public init(proc: String = "/proc", maxBinaryBytes: Int = 1 << 30) {
        self.proc = proc
        self.maxBinaryBytes = maxBinaryBytes
    }

    /// The process's start time (field 22 of `/proc/<pid>/stat`), or nil.
    public func startTime(pid: Int32) -> UInt64? {
        guard let data = FileManager.default.contents(atPath: "\(proc)/\(pid)/stat"), data.count < 4096 else {
            return nil
        }
        let text = String(decoding: data, as: UTF8.self)
        // The command name (field 2) is in parentheses and may hold spaces or ')': fields resume after the last ')'.
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        // After ')': field 3 (state) is fields[0], so field 22 is fields[19].
        guard fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }

    /// Device and inode of the binary `pid` runs now.
    public func binaryID(pid: Int32) -> BinaryID? {
        var st = stat()
        guard stat("\(proc)/\(pid)/exe", &st) == 0 else { return nil }
        return BinaryID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    /// Whether the process behind `pidfd` has exited (its pidfd is readable then).
    static func hasExited(pidfd: Int32) -> Bool {
        var p = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
        let n = poll(&p, 1, 0)
        return n != 0  // readable (exited), or an error: either way the process cannot be vouched for
    }

    /// The selectors of `peer`'s process, or why there are none.
    public func selectors(of peer: WorkloadPeer) -> Result<Set<String>, AttestationFailure> {
        guard peer.pid > 0 else { return .failure(AttestationFailure("the kernel reported no peer process")) }
        guard let accepted = peer.startTime else {
            return .failure(AttestationFailure("the peer's start time could not be read at accept"))
        }
        if let fd = peer.pidfd, Self.hasExited(pidfd: fd) {
            return .failure(AttestationFailure("the process that connected has exited"))
        }
        guard startTime(pid: peer.pid) == accepted else {
            return .failure(AttestationFailure("pid \(peer.pid) is no longer the process that connected"))
        }
        let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(proc)/\(peer.pid)/exe")) ?? ""
        let hash: String
        switch sha256(ofExecutableOf: peer.pid, expected: peer.binary) {
        case .success(let h): hash = h
        case .failure(let f): return .failure(f)
        }
        // Again after the hash: the binary hashed was the connecting process's.
        guard startTime(pid: peer.pid) == accepted else {
            return .failure(AttestationFailure("pid \(peer.pid) changed while it was attested"))
        }
        if let fd = peer.pidfd, Self.hasExited(pidfd: fd) {
            return .failure(AttestationFailure("the process that connected exited while it was attested"))
        }
        var out: Set<String> = ["unix:uid:\(peer.uid)", "unix:gid:\(peer.gid)", "unix:sha256:\(hash)"]
        // A deleted or replaced binary reads as "<path> (deleted)": no path selector then, the hash still holds.
        if path.hasPrefix("/"), !path.hasSuffix(" (deleted)") { out.insert("unix:path:\(path)") }
        return .success(out)
    }

    /// SHA-256 (hex) of the file `/proc/<pid>/exe` refers to, read through the open file itself.
    func sha256(ofExecutableOf pid: Int32, expected: BinaryID? = nil) -> Result<String, AttestationFailure> {
        let fd = open("\(proc)/\(pid)/exe", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(AttestationFailure("the binary of pid \(pid) cannot be read")) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            return .failure(AttestationFailure("the binary of pid \(pid) is not a regular file"))
        }
        guard st.st_size <= maxBinaryBytes else {
            return .failure(AttestationFailure("the binary of pid \(pid) is larger than \(maxBinaryBytes) bytes"))
        }
        if let expected, expected != BinaryID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)) {
            return .failure(AttestationFailure("pid \(pid) runs another binary than when it connected"))
        }
        // ctime too: a user can set a file's mtime back after rewriting it, not its ctime.
        let cacheKey =
            "\(st.st_dev):\(st.st_ino):\(st.st_size):\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec):\(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec)"
        if let h = hashes.withLock({ $0[cacheKey] }) { return .success(h) }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(AttestationFailure("the binary of pid \(pid) could not be read"))
            }
            hasher.update(data: buffer[0..<n])
        }
        let h = Attestation.hex(hasher.finalize())
        hashes.withLock { cache in
            if cache.count >= 1024 { cache.removeAll() }
            cache[cacheKey] = h
        }
        return .success(h)
    }
}
