import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Files that hold secrets: created with a restrictive mode from the first byte (never written and then chmod-ed),
/// replaced atomically, flushed to disk; and checked on load, so a key file others can read is refused.
public enum SecureFile {
    /// Creates `path` as a directory with `mode` (0700 by default) if absent; an existing directory must not be open
    /// to group or others.
    public static func ensureDirectory(_ path: String, mode: mode_t = 0o700) throws(WardenError) {
        var st = stat()
        if stat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else {
                throw WardenError(.io, "\(path) exists and is not a directory")
            }
            guard st.st_mode & 0o077 == 0 || mode & 0o077 != 0 else {
                throw WardenError(.io, "\(path) is open to group or others; run chmod 700 \(path)")
            }
            return
        }
        guard mkdir(path, mode) == 0 else {
            throw WardenError(.io, "cannot create directory \(path): \(String(cString: strerror(errno)))")
        }
        _ = chmod(path, mode)  // mkdir is subject to the umask
    }

    /// Writes `bytes` to `path` with `mode` (0600 by default): a temporary file created with that mode, fsync-ed,
    /// then renamed over `path`.
    public static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o600) throws(WardenError) {
        let tmp = path + ".tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw WardenError(.io, "cannot create \(path): \(String(cString: strerror(errno)))") }
        var ok = fchmod(fd, mode) == 0
        var offset = 0
        while ok && offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { ok = false } else { offset += n }
        }
        ok = ok && fsync(fd) == 0
        close(fd)
        guard ok, rename(tmp, path) == 0 else {
            unlink(tmp)
            throw WardenError(.io, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
        // Make the rename itself durable.
        let dir = (path as NSString).deletingLastPathComponent
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }

    /// Writes text (see ``write(_:to:mode:)``).
    public static func write(_ text: String, to path: String, mode: mode_t = 0o600) throws(WardenError) {
        try write(Array(text.utf8), to: path, mode: mode)
    }

    /// Reads a secret file of at most `maxBytes`; refuses one that group or others may read or write.
    public static func readSecret(_ path: String, maxBytes: Int = 64 * 1024) throws(WardenError) -> String {
        var st = stat()
        guard stat(path, &st) == 0 else { throw WardenError(.io, "cannot read \(path): it does not exist") }
        guard st.st_mode & 0o077 == 0 else {
            throw WardenError(.io, "\(path) is readable by group or others; run chmod 600 \(path)")
        }
        return try read(path, maxBytes: maxBytes)
    }

    /// Reads a file of at most `maxBytes` as UTF-8 text.
    public static func read(_ path: String, maxBytes: Int) throws(WardenError) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw WardenError(.io, "cannot read \(path)") }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.read(upToCount: maxBytes + 1) ?? Data()
        } catch {
            throw WardenError(.io, "cannot read \(path)")
        }
        guard data.count <= maxBytes else { throw WardenError(.io, "\(path) is larger than \(maxBytes) bytes") }
        guard let text = String(data: data, encoding: .utf8) else {
            throw WardenError(.io, "\(path) is not UTF-8 text")
        }
        return text
    }

    /// The permission bits of `path`, or nil when it does not exist.
    public static func mode(_ path: String) -> mode_t? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return st.st_mode & 0o777
    }

    /// Whether `path` exists.
    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }
}
