"""Shared test harness: one temporary emulated node per test, tools run as real subprocesses."""

import os
import shutil
import subprocess
import tempfile
import unittest
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.join(HERE, "bin")
SAMPLES = os.path.join(HERE, "..", "fixtures", "cassandra", "doc-output-samples")


class Result:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def __repr__(self):
        return "rc=%d\nstdout:\n%s\nstderr:\n%s" % (self.rc, self.out, self.err)


class EmuTestCase(unittest.TestCase):
    """Each test gets its own CASSANDRA_CONF and data root under a temp dir (removed after)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cassemu-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.conf = os.path.join(self.tmp, "conf")
        self.root = os.path.join(self.tmp, "lib")
        self.env = dict(os.environ, CASSANDRA_CONF=self.conf)
        self.env.pop("CASSEMU_SEED", None)
        self.env.pop("CASSEMU_VARIANT", None)
        self.env.pop("CASSEMU_USER", None)

    def run_tool(self, tool, *args, env=None):
        proc = subprocess.run([os.path.join(BIN, tool)] + [str(a) for a in args], capture_output=True,
                              text=True, env=env or self.env, timeout=60)
        return Result(proc)

    def emu(self, *args, ok=True):
        r = self.run_tool("cassandra-emu", *args)
        if ok:
            self.assertEqual(r.rc, 0, r)
        return r

    def nt(self, *args, rc=0):
        r = self.run_tool("nodetool", *args)
        if rc is not None:
            self.assertEqual(r.rc, rc, r)
        return r

    def cqlsh(self, *args, rc=0):
        r = self.run_tool("cqlsh", *args)
        if rc is not None:
            self.assertEqual(r.rc, rc, r)
        return r

    def init(self, version, *extra, start=True):
        self.emu("init", "--version", version, "--data-root", self.root, *extra)
        if start:
            self.emu("start")

    def data_dirs(self):
        return sorted(os.path.join(self.root, d) for d in os.listdir(self.root) if d.startswith("data"))

    def make_table(self, ks="ks", table="t", rf=1, index=False, extra=""):
        stmts = ("CREATE KEYSPACE IF NOT EXISTS %s WITH replication = {'class': 'SimpleStrategy', "
                 "'replication_factor': %d}; CREATE TABLE %s.%s (id int PRIMARY KEY, v text)%s;"
                 % (ks, rf, ks, table, extra))
        if index:
            stmts += " CREATE INDEX ON %s.%s (v);" % (ks, table)
        self.cqlsh("-e", stmts)
        return self.table_id(ks, table)

    def table_id(self, ks, table):
        r = self.cqlsh("-e", "SELECT keyspace_name, table_name, id FROM system_schema.tables "
                             "WHERE keyspace_name = '%s'" % ks)
        for line in r.out.splitlines():
            cells = [c.strip() for c in line.split("|")]
            if len(cells) == 3 and cells[1] == table:
                return cells[2].replace("-", "")
        self.fail("table %s.%s not found in\n%s" % (ks, table, r.out))

    def table_dirs(self, ks, table, tid=None):
        tid = tid or self.table_id(ks, table)
        return [os.path.join(d, ks, "%s-%s" % (table, tid)) for d in self.data_dirs()]

    def files_under(self, *paths):
        out = []
        for p in paths:
            for root, _dirs, files in os.walk(p):
                out += [os.path.join(root, f) for f in files]
        return sorted(out)

    def live_data_files(self, ks, table, tid=None):
        out = []
        for d in self.table_dirs(ks, table, tid):
            if os.path.isdir(d):
                out += [os.path.join(d, f) for f in os.listdir(d) if f.endswith("-Data.db")]
        return sorted(out)

    def sample(self, name):
        with open(os.path.join(SAMPLES, name), encoding="utf-8") as f:
            return f.read()


def digest_ok(data_path):
    """Digest file == CRC32 (ma+) or Adler-32 (la/ka) of Data.db as decimal text."""
    base = data_path[: -len("Data.db")]
    for comp, fn in (("Digest.crc32", zlib.crc32), ("Digest.adler32", zlib.adler32), ("Digest.sha1", zlib.adler32)):
        if os.path.exists(base + comp):
            with open(data_path, "rb") as f:
                value = fn(f.read()) & 0xFFFFFFFF
            with open(base + comp, encoding="ascii") as f:
                return f.read() == str(value)
    return False
