"""sstableloader: option parsing and exit codes, refusals, and streams landing in live folders."""

import hashlib
import os
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from emu_testlib import EmuTestCase, digest_ok  # noqa: E402
from cassemu import sstable  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "cassandra")


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Loader(EmuTestCase):
    def staged(self, ks="ks", folder="t", ver="nb", gen=1, variant="simple"):
        src = os.path.join(FIXTURES, ver, "legacy_tables", "legacy_%s_%s" % (ver, variant))
        stage = os.path.join(self.tmp, "stage", ks, folder)
        os.makedirs(stage, exist_ok=True)
        for f in os.listdir(src):
            shutil.copy(os.path.join(src, f), os.path.join(stage, f.replace("-1-", "-%d-" % gen)))
        return stage

    def load(self, *args, rc=0):
        r = self.run_tool("sstableloader", *args)
        if rc is not None:
            self.assertEqual(r.rc, rc, r)
        return r

    def live_sums(self, ks="ks", t="t"):
        """(component, sha256) of every live file of the table (index folders excluded)."""
        out = []
        for d in self.table_dirs(ks, t):
            for f in os.listdir(d):
                p = os.path.join(d, f)
                if os.path.isfile(p):
                    out.append((f.split("-", 3)[3], sha(p)))
        return sorted(out)

    def test_streams_under_new_generations_with_backup_links(self):
        self.init("4.1", "--incremental-backups", "--data-dirs", "2")
        tid = self.make_table()
        self.emu("write", "ks", "t")
        self.nt("flush", "ks", "t")
        before = self.live_sums()
        live_before = set(self.live_data_files("ks", "t"))
        self.assertEqual(len(live_before), 2)  # nb-1 and nb-2, one per data dir
        stage = self.staged(folder="t-" + tid, gen=1)  # clashes with the live nb-1
        staged = {f: sha(os.path.join(stage, f)) for f in os.listdir(stage)}
        r = self.load("-d", "127.0.0.1", stage)
        self.assertEqual(r.err, "")
        lines = r.out.splitlines()
        self.assertEqual(lines[:2], ["Established connection to initial hosts",
                                     "Opening sstables and calculating sections to stream"])
        self.assertEqual(lines[2], "Streaming relevant part of %s/nb-1-big-Data.db  to [/127.0.0.1:7000]" % stage)
        self.assertIn("Summary statistics: ", lines)
        self.assertIn("   Total files transferred : 1         ", lines)
        # The source is read, not moved.
        self.assertEqual({f: sha(os.path.join(stage, f)) for f in os.listdir(stage)}, staged)
        # Live: what was there, plus the streamed sstable under the next free generation.
        (new,) = set(self.live_data_files("ks", "t")) - live_before
        self.assertEqual(os.path.basename(new), "nb-3-big-Data.db")
        self.assertEqual(sha(new), staged["nb-1-big-Data.db"])
        self.assertTrue(digest_ok(new))
        after = self.live_sums()
        expected = sorted(before + [(f.split("-", 3)[3], s) for f, s in staged.items()])
        self.assertEqual(after, expected)
        # Received sstables are hard-linked into backups/ and are part of the next snapshot.
        backup = os.path.join(os.path.dirname(new), "backups", "nb-3-big-Data.db")
        self.assertTrue(os.path.samefile(new, backup))
        self.nt("snapshot", "-t", "after", "ks")
        self.assertTrue(os.path.exists(os.path.join(os.path.dirname(new), "snapshots", "after", "nb-3-big-Data.db")))
        # Loading twice adds the sstable twice: the tool has no memory of what it loaded.
        self.load("-d", "127.0.0.1", "--no-progress", stage)
        self.assertEqual(len(self.live_data_files("ks", "t")), 4)

    def test_folder_without_id_index_rebuild_and_quiet_output(self):
        self.init("4.0")
        self.make_table(index=True)
        stage = self.staged(folder="t")
        r = self.load("--nodes", "localhost", "--no-progress", stage)
        self.assertEqual(r.out, "Established connection to initial hosts\n"
                                "Opening sstables and calculating sections to stream\n"
                                "Streaming relevant part of %s/nb-1-big-Data.db  to [/127.0.0.1:7000]\n" % stage)
        (data,) = self.live_data_files("ks", "t")
        self.assertEqual(os.path.basename(data), "nb-1-big-Data.db")
        self.assertTrue(os.path.exists(os.path.join(os.path.dirname(data), ".t_v_idx", "nb-1-big-Data.db")))
        self.assertEqual(sstable.read_stats(data.replace("Data.db", "Statistics.db"), "nb")[0], 0)

    def test_target_keyspace_and_version_options(self):
        self.init("4.1")
        self.make_table(ks="other")
        stage = self.staged(ks="ks", folder="t")
        self.load("-d", "127.0.0.1", "--target-keyspace", "other", "--no-progress", stage)
        self.assertEqual(len(self.live_data_files("other", "t")), 1)
        self.setUp()
        self.init("3.11")
        self.make_table()
        stage = self.staged(ver="me", folder="t")
        r = self.load("-d", "127.0.0.1", "-k", "ks", stage, rc=1)
        self.assertEqual(r.err, "Unrecognized option: -k\n")
        r = self.load("-d", "127.0.0.1", "--no-progress", stage)
        self.assertIn("to [/127.0.0.1]\n", r.out)  # 3.x peers have no port

    def test_missing_table_streams_nothing_and_exits_zero(self):
        self.init("4.1")
        self.make_table()
        stage = self.staged(ks="ks", folder="nope-0123")
        r = self.load("-d", "127.0.0.1", stage)
        self.assertIn("Skipping file nb-1-big-Data.db: table ks.nope doesn't exist\n", r.out)
        self.assertIn("   Total files transferred : 0         ", r.out.splitlines())
        stage = self.staged(ks="elsewhere", folder="t")
        r = self.load("-d", "127.0.0.1", "--no-progress", stage)
        self.assertIn("Skipping file nb-1-big-Data.db: table elsewhere.t doesn't exist\n", r.out)
        self.assertEqual(self.live_data_files("ks", "t"), [])

    def test_sstable_without_index_is_skipped(self):
        self.init("4.1")
        self.make_table()
        stage = self.staged()
        os.unlink(os.path.join(stage, "nb-1-big-Index.db"))
        r = self.load("-d", "127.0.0.1", "--no-progress", stage)
        self.assertIn("Skipping file nb-1-big-Data.db because index is missing\n", r.out)
        self.assertEqual(self.live_data_files("ks", "t"), [])

    def test_unreachable_stopped_and_drained_nodes(self):
        self.init("4.1")
        self.make_table()
        stage = self.staged()
        r = self.load("-d", "10.9.9.9", stage, rc=1)
        self.assertEqual(r.out, "")
        first = r.err.splitlines()[:2]
        self.assertEqual(first, [
            "Unable to initialise org.apache.cassandra.utils.NativeSSTableLoaderClient",
            "com.datastax.driver.core.exceptions.NoHostAvailableException: All host(s) tried for query failed "
            "(tried: /10.9.9.9:9042 (com.datastax.driver.core.exceptions.TransportException: "
            "[/10.9.9.9:9042] Cannot connect))"])
        r = self.load("-d", "127.0.0.1", "-p", "9043", stage, rc=1)
        self.assertIn("[/127.0.0.1:9043] Cannot connect", r.err)
        self.nt("drain")
        r = self.load("-d", "127.0.0.1", stage, rc=1)
        self.assertIn("Cannot connect", r.err)
        self.emu("stop")
        self.load("-d", "127.0.0.1,10.9.9.9", stage, rc=1)
        self.emu("start")
        self.load("-d", "10.9.9.9,127.0.0.1:9042", "--no-progress", stage)
        self.assertEqual(len(self.live_data_files("ks", "t")), 1)

    def test_usage_errors(self):
        self.init("4.1")
        stage = self.staged()
        cases = [((), "Missing sstable directory argument"),
                 ((stage, stage), "Too many arguments"),
                 (("-d", "127.0.0.1", "/nonexistent/ks/t"), "Unknown directory: /nonexistent/ks/t"),
                 (("-d", "127.0.0.1", os.path.join(stage, "nb-1-big-Data.db")),
                  "%s is not a directory" % os.path.join(stage, "nb-1-big-Data.db")),
                 ((stage,), "Initial hosts must be specified (-d)"),
                 (("-d", "127.0.0.1", "-u", "cassandra", stage), "Username and password must both be provided"),
                 (("-d", "127.0.0.1", "--bogus", stage), "Unrecognized option: --bogus"),
                 ((stage, "-d"), "Missing argument for option: d"),
                 (("-d", "127.0.0.1", "-f", "/nonexistent.yaml", stage), "Config file not found")]
        for args, msg in cases:
            with self.subTest(args=args):
                r = self.load(*args, rc=1)
                self.assertEqual(r.err, msg + "\n")
                self.assertTrue(r.out.startswith("usage: sstableloader [options] <dir_path>\n"), r)
        r = self.load("--help", rc=0)
        self.assertTrue(r.out.startswith("usage: sstableloader [options] <dir_path>\n"), r)

    @unittest.skipUnless(os.geteuid() == 0, "needs root to act as the cassandra user")
    def test_receiver_that_cannot_write_fails_the_stream_and_keeps_nothing(self):
        import pwd

        try:
            pwd.getpwnam("cassandra")
        except KeyError:
            self.skipTest("no cassandra user")
        self.init("4.1", "--data-dirs", "2")
        self.make_table()
        for d in self.table_dirs("ks", "t"):
            os.chown(d, 0, 0)
            os.chmod(d, 0o755)
        stage = self.staged()
        r = self.load("-d", "127.0.0.1", stage, rc=1)
        self.assertIn("Streaming to the following hosts failed:\n[/127.0.0.1:7000]\n", r.err)
        self.assertEqual(self.live_data_files("ks", "t"), [])


if __name__ == "__main__":
    unittest.main()
