"""Small helpers shared by the emulator: errors, ownership, file locking, Java-like formatting."""

import decimal
import fcntl
import os
import pwd
import shutil
import time


class EmuError(Exception):
    """A failure the way Cassandra/nodetool would report it ("error: <msg>", exit 2)."""

    exit_code = 2


class UsageError(EmuError):
    """A nodetool usage error / IllegalArgumentException ("nodetool: <msg>", exit 1)."""

    exit_code = 1


class ConnectError(EmuError):
    """The node cannot be reached (stopped, wrong host/port, bad credentials), exit 1."""

    exit_code = 1


class StartupError(EmuError):
    """Cassandra refused to start (StartupException / ConfigurationException), exit 3."""

    exit_code = 3


class FSWriteError(EmuError):
    """Cassandra could not write into a folder (FSWriteError)."""


def cassandra_user():
    """Name of the user the emulated Cassandra runs as (env CASSEMU_USER, default cassandra)."""
    return os.environ.get("CASSEMU_USER", "cassandra")


def cassandra_ids():
    """(uid, gid) of the `cassandra` user, or None when that user does not exist."""
    try:
        pw = pwd.getpwnam(cassandra_user())
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        return None


def effective_ids():
    """The uid/gid the emulated Cassandra process runs as.

    Run as root, the emulator acts as the `cassandra` user (when it exists); run as anybody
    else it can only act as that user itself."""
    ids = cassandra_ids()
    if ids is None or os.geteuid() != 0:
        return os.getuid(), os.getgid()
    return ids


def give_to_cassandra(path):
    """chown a file/dir we created to cassandra:cassandra (only possible and needed as root)."""
    ids = cassandra_ids()
    if ids is None or os.geteuid() != 0:
        return
    try:
        os.lchown(path, ids[0], ids[1])
    except OSError:
        pass


def _staging_name(final):
    """A sibling name for `final` while it is being created: hidden, ending in `.tmp` (removed
    by the startup scrub), never an sstable component name."""
    return os.path.join(os.path.dirname(final), ".emu-%s.%d.tmp" % (os.path.basename(final), os.getpid()))


def _publish(tmp, final):
    """Renames a created-and-handed-over `tmp` to `final` (atomic): the final name never shows
    a path that does not belong to cassandra yet, as a real node creates everything as that
    user. A folder that appeared meanwhile wins (the empty `tmp` goes)."""
    try:
        os.rename(tmp, final)
    except OSError:
        if not os.path.isdir(final):
            raise
        os.rmdir(tmp)


def makedirs(path):
    """mkdir -p, giving every created level to the cassandra user before it appears."""
    missing = []
    p = os.path.abspath(path)
    while not os.path.isdir(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    for d in reversed(missing):
        if os.path.isdir(d):
            continue
        tmp = _staging_name(d)
        if os.path.isdir(tmp):
            os.rmdir(tmp)  # left by a process with the same pid that was killed
        os.mkdir(tmp, 0o755)
        give_to_cassandra(tmp)
        _publish(tmp, d)


def can_write(path):
    """Would the emulated cassandra uid be allowed to write `path` (by its mode bits)?"""
    uid, gid = effective_ids()
    if uid == 0:
        return True
    try:
        st = os.stat(path)
    except OSError:
        return False
    if st.st_uid == uid:
        return bool(st.st_mode & 0o200)
    groups = {gid}
    try:
        name = pwd.getpwuid(uid).pw_name
        import grp

        groups |= {g.gr_gid for g in grp.getgrall() if name in g.gr_mem}
    except (KeyError, ImportError):
        pass
    if st.st_gid in groups:
        return bool(st.st_mode & 0o020)
    return bool(st.st_mode & 0o002)


def require_writable_dir(path):
    """Fail like Cassandra's FSWriteError when the emulated uid cannot create files in `path`."""
    if os.path.isdir(path) and not can_write(path):
        raise FSWriteError(
            "java.nio.file.AccessDeniedException: %s (FSWriteError: cannot write in directory %s)"
            % (path, path)
        )


def write_file(path, data, mode=0o644):
    """Create/replace a file (bytes or str) owned by cassandra."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    require_writable_dir(os.path.dirname(path))
    tmp = _staging_name(path)
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    give_to_cassandra(tmp)
    os.rename(tmp, path)


def copy_file(src, dst):
    """Copy bytes to a new file owned by cassandra with mode 0644 (fixtures are read-only)."""
    require_writable_dir(os.path.dirname(dst))
    tmp = _staging_name(dst)
    shutil.copyfile(src, tmp)
    os.chmod(tmp, 0o644)
    give_to_cassandra(tmp)
    os.rename(tmp, dst)


def rmtree(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


class Lock:
    """An exclusive flock on the node's state folder: one emulator command at a time per node."""

    def __init__(self, path):
        self.path = path
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


def now_ms():
    return int(time.time() * 1000)


def java_string_hash(s):
    """Java String.hashCode (signed 32-bit)."""
    h = 0
    for ch in s:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= (1 << 31) else h


def java_hashmap_order(keys):
    """Iteration order of a java.util.HashMap holding these String keys (unsorted on purpose)."""
    keys = list(dict.fromkeys(keys))
    cap = 16
    while len(keys) > cap * 0.75:
        cap *= 2

    def bucket(k):
        h = java_string_hash(k) & 0xFFFFFFFF
        return (h ^ (h >> 16)) & (cap - 1)

    # Within one bucket Java keeps insertion order (linked list); sorted() is stable.
    return sorted(keys, key=bucket)


_DF = decimal.Decimal("0.01")


def java_decimal_format(value):
    """new DecimalFormat("#.##").format(value): HALF_EVEN, at most 2 decimals, no trailing zeros."""
    d = decimal.Decimal(value).quantize(_DF, rounding=decimal.ROUND_HALF_EVEN)
    s = format(d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    if s == "-0":
        s = "0"
    return s


def stringify_file_size(value, binary_units=True):
    """FileUtils.stringifyFileSize: `bytes`, KiB/MiB/GiB/TiB (3.6+) or KB/MB/GB/TB (older)."""
    units = ["TiB", "GiB", "MiB", "KiB"] if binary_units else ["TB", "GB", "MB", "KB"]
    scales = [1 << 40, 1 << 30, 1 << 20, 1 << 10]
    for unit, scale in zip(units, scales):
        if value >= scale:
            return "%s %s" % (java_decimal_format(value / scale), unit)
    return "%s bytes" % java_decimal_format(value)


def format_instant_ms(ms):
    """java.time.Instant.toString() of a millisecond instant (fraction omitted when zero)."""
    secs, milli = divmod(ms, 1000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if milli:
        return "%s.%03dZ" % (base, milli)
    return base + "Z"


def parse_instant(text):
    """Parse an ISO instant like 2024-01-25T09:45:31.820Z to epoch milliseconds."""
    import datetime

    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    dt = datetime.datetime.fromisoformat(t)
    return int(round(dt.timestamp() * 1000))


def table_builder(rows, delimiter=" "):
    """nodetool's TableBuilder: every cell padded to its column width (also the last one)."""
    if not rows:
        return ""
    widths = [0] * max(len(r) for r in rows)
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    out = []
    for r in rows:
        cells = [(r[i] if i < len(r) else "").ljust(widths[i]) for i in range(len(widths))]
        out.append(delimiter.join(cells) + "\n")
    return "".join(out)
