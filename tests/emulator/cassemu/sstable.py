"""SSTable file names, digests and cloning the real fixture sstables into new generations."""

import os
import re
import time
import uuid
import zlib

from . import profiles, util

UUID_ID_RE = r"[0-9a-z]{4}_[0-9a-z]{4}_[0-9a-z]{17}"
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
    return os.path.join(profiles.FIXTURES, choices[variant_seed % len(choices)])


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
