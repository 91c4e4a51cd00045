"""The emulator used from a copy of its folder (outside the repository), as an operator might."""

import os
import shutil
import subprocess
import tempfile
import unittest

from emu_testlib import HERE


class EmulatorCopyTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cassemu-copy-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.copy = os.path.join(self.tmp, "emulator")
        shutil.copytree(HERE, self.copy, ignore=shutil.ignore_patterns("__pycache__", "test_*"))
        self.conf = os.path.join(self.tmp, "conf")
        self.env = dict(os.environ, CASSANDRA_CONF=self.conf)
        for k in ("CASSEMU_FIXTURES", "CASSEMU_SEED", "CASSEMU_VARIANT", "CASSEMU_USER"):
            self.env.pop(k, None)

    def run_copy(self, tool, *args, cwd=None):
        return subprocess.run([os.path.join(self.copy, "bin", tool)] + list(args), capture_output=True,
                              text=True, env=self.env, cwd=cwd or self.tmp, timeout=60)

    def setup_node(self):
        r = self.run_copy("cassandra-emu", "init", "--version", "4.1", "--data-root",
                          os.path.join(self.tmp, "lib"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.addCleanup(self.run_copy, "cassandra-emu", "stop")
        self.assertEqual(self.run_copy("cassandra-emu", "start").returncode, 0)
        for stmt in ("CREATE KEYSPACE shop WITH replication = {'class': 'SimpleStrategy', "
                     "'replication_factor': 1}", "CREATE TABLE shop.orders (id uuid PRIMARY KEY)"):
            self.assertEqual(self.run_copy("cassandra-emu", "cql", stmt).returncode, 0)
        self.assertEqual(self.run_copy("cassandra-emu", "write", "shop", "orders", "--rows", "10")
                         .returncode, 0)

    def test_without_fixtures_the_error_says_what_to_set(self):
        self.setup_node()
        r = self.run_copy("nodetool", "flush", "shop")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("CASSEMU_FIXTURES", r.stdout + r.stderr)
        self.assertNotIn("Traceback", r.stdout + r.stderr)

    def test_a_relative_fixture_path_works_from_any_folder(self):
        repo = os.path.normpath(os.path.join(HERE, "..", ".."))
        self.env["CASSEMU_FIXTURES"] = os.path.relpath(
            os.path.join(repo, "tests", "fixtures", "cassandra"), self.tmp)
        self.setup_node()
        r = self.run_copy("nodetool", "flush", "shop")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        found = [f for _, _, fs in os.walk(os.path.join(self.tmp, "lib")) for f in fs
                 if f.endswith("-Data.db")]
        self.assertTrue(found, "a flush writes a Data.db")


if __name__ == "__main__":
    unittest.main()
