import Foundation
import Testing
import WardenNode

#if canImport(Glibc)
    import Glibc
#endif

/// The node's kernel attestation of a process, on this test process itself (no pidfd: the start-time guard alone).
@Suite("Workload attestation from /proc")
struct WorkloadAttestorTests {
    let attestor = WorkloadAttestor()
    let pid = getpid()

    @Test("selectors of a live process: uid, gid, the binary's path and SHA-256 (what sha256sum says)")
    func selectors() throws {
        let start = try #require(attestor.startTime(pid: pid))
        let peer = WorkloadPeer(pid: pid, uid: getuid(), gid: getgid(), startTime: start, pidfd: nil)
        let selectors = try attestor.selectors(of: peer).get()
        #expect(selectors.contains("unix:uid:\(getuid())"))
        #expect(selectors.contains("unix:gid:\(getgid())"))
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        #expect(selectors.contains("unix:path:\(exe)"))
        let sha = try #require(selectors.first { $0.hasPrefix("unix:sha256:") })
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        p.arguments = [exe]
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("sha-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: out) }
        p.standardOutput = try FileHandle(forWritingTo: out)
        try p.run()
        p.waitUntilExit()
        let expected = String(decoding: try Data(contentsOf: out), as: UTF8.self).prefix(64)
        #expect(sha == "unix:sha256:\(expected)")
    }

    @Test("a start time other than the process's (its pid reused since the connection) gets nothing")
    func pidReuse() throws {
        let start = try #require(attestor.startTime(pid: pid))
        let reused = WorkloadPeer(pid: pid, uid: getuid(), gid: getgid(), startTime: start + 1, pidfd: nil)
        guard case .failure(let why) = attestor.selectors(of: reused) else {
            Issue.record("a process with another start time was attested")
            return
        }
        #expect(why.description.contains("no longer the process that connected"))
        let unknown = WorkloadPeer(pid: pid, uid: 0, gid: 0, startTime: nil, pidfd: nil)
        #expect((try? attestor.selectors(of: unknown).get()) == nil)
        let none = WorkloadPeer(pid: 0, uid: 0, gid: 0, startTime: 1, pidfd: nil)
        #expect((try? attestor.selectors(of: none).get()) == nil)
        // The process runs another binary than the one it connected with (exec after connect): nothing.
        let binary = try #require(attestor.binaryID(pid: pid))
        let same = WorkloadPeer(pid: pid, uid: getuid(), gid: getgid(), startTime: start, pidfd: nil, binary: binary)
        #expect((try? attestor.selectors(of: same).get()) != nil)
        let other = WorkloadPeer(
            pid: pid, uid: getuid(), gid: getgid(), startTime: start, pidfd: nil,
            binary: BinaryID(device: binary.device, inode: binary.inode &+ 1))
        guard case .failure(let exec) = attestor.selectors(of: other) else {
            Issue.record("a process running another binary than at connect was attested")
            return
        }
        #expect(exec.description.contains("another binary"))
    }

    @Test("a process that exited (its pidfd readable) gets nothing")
    func exited() throws {
        // A pipe's read end with data waiting is readable, as a pidfd is once its process has exited.
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer {
            close(fds[0])
            close(fds[1])
        }
        let start = try #require(attestor.startTime(pid: pid))
        let alive = WorkloadPeer(pid: pid, uid: getuid(), gid: getgid(), startTime: start, pidfd: fds[0])
        #expect((try? attestor.selectors(of: alive).get()) != nil)
        _ = write(fds[1], "x", 1)
        #expect((try? attestor.selectors(of: alive).get()) == nil)
    }
}
