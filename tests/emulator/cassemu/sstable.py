"""SSTable file names, digests and cloning the real fixture sstables into new generations."""

import os
import re
import struct
import time
import uuid
import zlib

from . import profiles, util

UUID_ID_RE = r"[0-9a-z]{4}_[0-9a-z]{4}_[0-9a-z]{18}"
NEW_NAME_RE = re.compile(
    r"^(?P<ver>[a-z]{2})-(?P<gen>\d+|" + UUID_ID_RE + r")-(?P<fmt>big|bti)-(?P<comp>[\w.+-]+)$"
)
LEGACY_NAME_RE = re.compile(
    r"^(?P<ks>\w+)-(?P<cf>[\w.]+)-(?P<ver>[a-z]{2})-(?P<gen>\d+)-(?P<comp>[\w.+-]+)$"
)
TMP_RE = re.compile(r"^((.*)-(.*)-)?tmp(link)?-")
TXN_RE = re.compile(r"^(?P<ver>.{2})_txn_(?P<op>.*)_(?P<id>.*)\.log$")


class Desc:
    """One sstable's identity: folder + `<ver>-<gen>-<fmt>` prefix."""

    def __init__(self, directory, ver, gen, fmt, legacy_prefix=None):
        self.directory = directory
        self.ver = ver
        self.gen = gen  # int or uuid-id string
        self.fmt = fmt
        self.legacy_prefix = legacy_prefix  # "<ks>-<cf>" for ka names

    @property
    def prefix(self):
        if self.legacy_prefix:
            return "%s-%s-%s" % (self.legacy_prefix, self.ver, self.gen)
        return "%s-%s-%s" % (self.ver, self.gen, self.fmt)

    def path(self, component):
        return os.path.join(self.directory, "%s-%s" % (self.prefix, component))

    def components(self):
        """Component names present on disk for this sstable (sorted)."""
        pre = self.prefix + "-"
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        return sorted(n[len(pre):] for n in names if n.startswith(pre))

    def files(self):
        return [self.path(c) for c in self.components()]

    @property
    def is_uuid(self):
        return isinstance(self.gen, str)

    def key(self):
        return (self.directory, self.prefix)


def parse_name(name):
    """Parse an sstable component file name -> (ver, gen, fmt, component, legacy_prefix) or None."""
    m = NEW_NAME_RE.match(name)
    if m:
        gen = m.group("gen")
        return m.group("ver"), (int(gen) if gen.isdigit() else gen), m.group("fmt"), m.group("comp"), None
    m = LEGACY_NAME_RE.match(name)
    if m:
        return (
            m.group("ver"),
            int(m.group("gen")),
            None,
            m.group("comp"),
            "%s-%s" % (m.group("ks"), m.group("cf")),
        )
    return None


def list_sstables(directory):
    """All sstables (by prefix) whose files sit directly in `directory`."""
    found = {}
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    for n in names:
        if not os.path.isfile(os.path.join(directory, n)):
            continue
        p = parse_name(n)
        if p is None:
            continue
        ver, gen, fmt, _comp, legacy = p
        d = Desc(directory, ver, gen, fmt, legacy)
        found.setdefault(d.prefix, d)
    return sorted(found.values(), key=lambda d: (str(type(d.gen)), d.gen))


def digest_value(data_path, algo):
    with open(data_path, "rb") as f:
        data = f.read()
    if algo == "adler32":
        return zlib.adler32(data) & 0xFFFFFFFF
    return zlib.crc32(data) & 0xFFFFFFFF


def digest_component_for(ver):
    if ver[0] < "l":
        return "Digest.sha1", "adler32"
    if ver[0] == "l":
        return "Digest.adler32", "adler32"
    return "Digest.crc32", "crc32"


def verify_digest(desc):
    """True when the Digest file holds the checksum of Data.db (CRC32 / Adler-32 by version)."""
    comp, algo = digest_component_for(desc.ver)
    try:
        with open(desc.path(comp), encoding="ascii") as f:
            expected = f.read().strip()
        return str(digest_value(desc.path("Data.db"), algo)) == expected
    except (OSError, UnicodeDecodeError):
        return False


def toc_components(desc):
    try:
        with open(desc.path("TOC.txt"), encoding="utf-8") as f:
            return [l.strip() for l in f if l.strip()]
    except OSError:
        return []


_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _b36(n):
    if n == 0:
        return "0"
    s = ""
    while n:
        n, r = divmod(n, 36)
        s = _B36[r] + s
    return s


_UUID_EPOCH_100NS = 0x01B21DD213814000  # 1582-10-15 -> 1970-01-01 in 100 ns units
_last_ts = [0]


def new_uuid_id(process_lsb):
    """UUIDBasedSSTableId string of a fresh time UUID: <days>_<secs>_<frac><13 chars lsb>."""
    ts = int(time.time() * 1e7) + _UUID_EPOCH_100NS
    if ts <= _last_ts[0]:
        ts = _last_ts[0] + 1
    _last_ts[0] = ts
    day = 86400 * 10**7
    days, rem = divmod(ts, day)
    secs, frac = divmod(rem, 10**7)
    return "%s_%s_%s%s" % (
        _b36(days).rjust(4, "0"),
        _b36(secs).rjust(4, "0"),
        _b36(frac).rjust(5, "0"),
        _b36(process_lsb).rjust(13, "0"),
    )


def new_process_lsb():
    return uuid.uuid1().int & ((1 << 64) - 1)


def fixture_dir(ver, variant_seed):
    """Pick one of the real fixture sstables of this version (env CASSEMU_VARIANT pins one)."""
    choices = profiles.FIXTURE_SSTABLES[ver]
    pinned = os.environ.get("CASSEMU_VARIANT")
    if pinned is not None:
        variant_seed = int(pinned)
    path = os.path.join(profiles.FIXTURES, choices[variant_seed % len(choices)])
    if not os.path.isdir(path):
        raise util.EmuError(
            "fixture sstables not found at %s: set CASSEMU_FIXTURES to cbk's "
            "tests/fixtures/cassandra (needed when the emulator is used from a copy)" % path
        )
    return path


def clone_fixture(ver, fmt, target_dir, gen, variant_seed=0):
    """Write a new sstable `<ver>-<gen>-<fmt>-*` into target_dir by copying a real fixture.

    Components are written in Cassandra's order with TOC.txt last; the Digest stays valid
    because it only depends on Data.db's bytes."""
    src = fixture_dir(ver, variant_seed)
    src_descs = list_sstables(src)
    sdesc = src_descs[0]
    new = Desc(target_dir, ver, gen, fmt)
    comps = sdesc.components()
    order = ["Filter.db", "Index.db", "Partitions.db", "Rows.db", "Summary.db", "Data.db"]
    ordered = [c for c in order if c in comps]
    ordered += [c for c in comps if c not in ordered and c != "TOC.txt"]
    ordered += ["TOC.txt"] if "TOC.txt" in comps else []
    for c in ordered:
        util.copy_file(sdesc.path(c), new.path(c))
    return new


def rename_sstable(desc, new_dir, new_gen, copy=False):
    """Move (or copy) all components to `new_dir` under a new generation (consistently)."""
    new = Desc(new_dir, desc.ver, new_gen, desc.fmt or "big")
    if desc.legacy_prefix:
        new = Desc(new_dir, desc.ver, new_gen, None, desc.legacy_prefix)
    done = []
    try:
        for c in desc.components():
            src, dst = desc.path(c), new.path(c)
            if os.path.exists(dst):
                raise util.EmuError("File %s already exists" % dst)
            if copy:
                util.copy_file(src, dst)
            else:
                try:
                    os.rename(src, dst)
                except OSError as e:
                    if e.errno != 18:  # EXDEV: other filesystem -> copy + delete
                        raise
                    util.copy_file(src, dst)
                    os.unlink(src)
                util.give_to_cassandra(dst)
            done.append((src, dst))
    except Exception:
        for src, dst in reversed(done):
            if copy:
                os.unlink(dst)
            else:
                os.rename(dst, src)
        raise
    return new


def delete_sstable(desc):
    for f in desc.files():
        os.unlink(f)


def hard_link_sstable(desc, target_dir):
    """Hard-link every component of `desc` into target_dir (same names)."""
    util.makedirs(target_dir)
    util.require_writable_dir(target_dir)
    for f in desc.files():
        dst = os.path.join(target_dir, os.path.basename(f))
        if os.path.lexists(dst):
            raise util.EmuError(
                "Tried to create duplicate hard link to %s" % dst
            )
        os.link(f, dst)


def data_size(desc):
    total = 0
    for f in desc.files():
        try:
            total += os.path.getsize(f)
        except OSError:
            pass
    return total


# -- Statistics.db (repairedAt / sstableLevel) -------------------------------------------------


def _stats_layout(data, ver):
    """Offsets of sstableLevel and repairedAt inside Statistics.db, plus the STATS component span.

    Layout (MetadataSerializer, ma+): int count, [na+: int crc], count x (int type, int offset),
    components; STATS = 2 histograms, commit log position, timestamps, deletion times, TTLs,
    compression ratio, tombstone histogram, int level, long repairedAt ... [na+: each component
    followed by its CRC32]. Returns None for layouts we do not know (la and older)."""
    if ver < "ma":
        return None
    try:
        count = struct.unpack(">i", data[:4])[0]
        checksum = ver >= "na"
        base = 8 if checksum else 4
        toc = dict(struct.unpack(">ii", data[base + 8 * i:base + 8 + 8 * i]) for i in range(count))
        start = toc[2]
        end = min([o for o in toc.values() if o > start] + [len(data)])
        pos = start
        for _ in range(2):  # partition sizes, cell counts
            size = struct.unpack(">i", data[pos:pos + 4])[0]
            pos += 4 + 16 * size
        pos += 12 + 16 + 16 + 8  # commit log position, min/max ts, deletion times + TTLs, ratio
        _maxbin, size = struct.unpack(">ii", data[pos:pos + 8])
        pos += 8 + 16 * size
        if pos + 12 > end:
            return None
        return {"level": pos, "repaired_at": pos + 4, "start": start, "end": end, "checksum": checksum}
    except (struct.error, KeyError, ValueError):
        return None


def read_stats(path, ver):
    """(sstableLevel, repairedAt) of a Statistics.db, or None when the layout is unknown."""
    with open(path, "rb") as f:
        data = f.read()
    lay = _stats_layout(data, ver)
    if lay is None:
        return None
    level = struct.unpack(">i", data[lay["level"]:lay["level"] + 4])[0]
    rep = struct.unpack(">q", data[lay["repaired_at"]:lay["repaired_at"] + 8])[0]
    return level, rep


def rewrite_stats(desc, repaired_at=None, level=None):
    """Rewrite Statistics.db like MetadataSerializer.rewriteSSTableMetadata: `<name>.tmp` + rename.

    Same name, new inode; repairedAt/level changed where the layout is known (CRC fixed for na+),
    otherwise the bytes are kept."""
    path = desc.path("Statistics.db")
    with open(path, "rb") as f:
        data = bytearray(f.read())
    lay = _stats_layout(bytes(data), desc.ver)
    if lay is not None:
        if repaired_at is not None:
            data[lay["repaired_at"]:lay["repaired_at"] + 8] = struct.pack(">q", repaired_at)
        if level is not None:
            data[lay["level"]:lay["level"] + 4] = struct.pack(">i", level)
        if lay["checksum"]:
            s, e = lay["start"], lay["end"]
            data[e - 4:e] = struct.pack(">I", zlib.crc32(bytes(data[s:e - 4])) & 0xFFFFFFFF)
    util.require_writable_dir(desc.directory)
    tmp = path + ".tmp"
    util.write_file(tmp, bytes(data))
    os.replace(tmp, path)
