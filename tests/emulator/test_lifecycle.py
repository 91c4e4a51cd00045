"""Flush, backups, compaction, DROP/re-CREATE, commit log, startup rules, import/refresh, access."""

import json
import os
import re
import shutil
import sys
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from emu_testlib import EmuTestCase, digest_ok  # noqa: E402
from cassemu import sstable  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "cassandra")


class FlushAndBackups(EmuTestCase):
    def test_flush_names_and_digests_per_version(self):
        cases = [("2.2", [], "la-1-big-Data.db", "Digest.adler32"),
                 ("3.0", [], "mc-1-big-Data.db", "Digest.crc32"),
                 ("3.11", [], "me-1-big-Data.db", "Digest.crc32"),
                 ("4.0", [], "nb-1-big-Data.db", "Digest.crc32"),
                 ("5.0", [], "nb-1-big-Data.db", "Digest.crc32"),
                 ("5.0", ["--storage-compatibility-mode", "NONE"], "oa-1-big-Data.db", "Digest.crc32"),
                 ("5.0", ["--sstable-format", "bti"], "da-1-bti-Data.db", "Digest.crc32")]
        for version, extra, data_name, digest in cases:
            with self.subTest(version=version, extra=extra):
                self.setUp()
                self.init(version, *extra)
                self.make_table()
                self.emu("write", "ks", "t")
                self.nt("flush", "ks", "t")
                (data,) = self.live_data_files("ks", "t")
                self.assertEqual(os.path.basename(data), data_name)
                self.assertTrue(os.path.exists(data[: -len("Data.db")] + digest))
                self.assertTrue(digest_ok(data))
                with open(data[: -len("Data.db")] + "TOC.txt") as f:
                    self.assertIn("Data.db", f.read().split())

    def test_uuid_ids(self):
        self.init("4.1", "--uuid-ids")
        self.make_table()
        self.emu("write", "ks", "t")
        self.nt("flush")
        (data,) = self.live_data_files("ks", "t")
        self.assertRegex(os.path.basename(data), r"^nb-[0-9a-z]{4}_[0-9a-z]{4}_[0-9a-z]{18}-big-Data\.db$")
        self.assertTrue(digest_ok(data))

    def test_incremental_backups_flag_runtime_and_compaction(self):
        self.init("4.1")
        self.make_table()
        self.assertEqual(self.nt("statusbackup").out, "not running\n")
        self.nt("enablebackup")
        self.assertEqual(self.nt("statusbackup").out, "running\n")
        self.emu("write", "ks", "t")
        self.nt("flush", "ks")
        backups = os.path.join(self.table_dirs("ks", "t")[0], "backups")
        self.assertEqual(sorted(os.listdir(backups))[0], "nb-1-big-CompressionInfo.db")
        (data,) = self.live_data_files("ks", "t")
        self.assertTrue(os.path.samefile(data, os.path.join(backups, "nb-1-big-Data.db")))
        self.emu("write", "ks", "t")
        self.nt("flush", "ks")
        self.emu("compact", "ks", "t")  # compaction result is never backed up, backups never deleted
        self.assertEqual(sorted(f for f in os.listdir(backups) if f.endswith("Data.db")),
                         ["nb-1-big-Data.db", "nb-2-big-Data.db"])
        self.assertEqual([os.path.basename(f) for f in self.live_data_files("ks", "t")], ["nb-3-big-Data.db"])
        # the runtime flag is not persisted
        self.emu("stop")
        self.emu("start")
        self.assertEqual(self.nt("statusbackup").out, "not running\n")

    def test_backups_yaml_flag_and_index_backups(self):
        self.init("4.0", "--incremental-backups")
        self.make_table(index=True)
        self.emu("write", "ks", "t")
        self.nt("flush")
        tdir = self.table_dirs("ks", "t")[0]
        self.assertTrue(os.path.exists(os.path.join(tdir, "backups", ".t_v_idx", "nb-1-big-Data.db")))
        self.assertEqual(self.nt("statusbackup").out, "running\n")

    def test_50_table_option_disables_backups(self):
        self.init("5.0", "--incremental-backups")
        self.make_table(extra=" WITH incremental_backups = false")
        self.emu("write", "ks", "t")
        self.nt("flush")
        self.assertFalse(os.path.exists(os.path.join(self.table_dirs("ks", "t")[0], "backups")))

    def test_rewrite_stats_replaces_inode(self):
        self.init("4.1")
        self.make_table()
        self.emu("write", "ks", "t")
        self.nt("snapshot", "-t", "s", "ks")
        (data,) = self.live_data_files("ks", "t")
        stats = data.replace("Data.db", "Statistics.db")
        snap = os.path.join(os.path.dirname(data), "snapshots", "s", os.path.basename(stats))
        self.assertTrue(os.path.samefile(stats, snap))
        with open(stats, "rb") as f:
            before = f.read()
        self.emu("rewrite-stats", "ks", "t", "--repaired-at", "1700000000000")
        self.assertFalse(os.path.samefile(stats, snap))
        self.assertEqual(os.stat(snap).st_nlink, 1)
        with open(stats, "rb") as f:
            after = f.read()
        self.assertEqual(len(after), len(before))
        self.assertNotEqual(after, before)
        self.assertEqual(sstable.read_stats(stats, "nb"), (0, 1700000000000))
        self.assertEqual(sstable.read_stats(snap, "nb"), (0, 0))
        # the STATS component's CRC32 (na+) is kept valid: only repairedAt + CRC differ
        lay = sstable._stats_layout(after, "nb")
        allowed = set(range(lay["repaired_at"], lay["repaired_at"] + 8)) | set(range(lay["end"] - 4, lay["end"]))
        diff = {i for i in range(len(after)) if after[i] != before[i]}
        self.assertTrue(diff <= allowed, diff)
        crc = zlib.crc32(after[lay["start"]:lay["end"] - 4]) & 0xFFFFFFFF
        self.assertEqual(after[lay["end"] - 4:lay["end"]], crc.to_bytes(4, "big"))


class Churn(EmuTestCase):
    def test_churn_interleaves_with_snapshots(self):
        import subprocess

        self.init("4.1", "--incremental-backups")
        tid = self.make_table()
        proc = subprocess.Popen([os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin", "cassandra-emu"),
                                 "churn", "ks", "t", "--seconds", "3", "--interval", "0.05"],
                                env=self.env, stdout=subprocess.PIPE, text=True)
        self.addCleanup(proc.kill)
        tags = []
        while proc.poll() is None and len(tags) < 5:
            tag = "c%d" % len(tags)
            self.nt("snapshot", "-t", tag, "ks")
            tags.append(tag)
        steps = int(proc.communicate(timeout=60)[0])
        self.assertGreater(steps, 2)
        tdir = self.table_dirs("ks", "t", tid)[0]
        for tag in tags:  # every snapshot is complete: all its sstables have all 8 components
            sdir = os.path.join(tdir, "snapshots", tag)
            files = [f for f in os.listdir(sdir) if f.startswith("nb-")]
            prefixes = {f.rsplit("-", 1)[0] for f in files}
            self.assertEqual(len(files), 8 * len(prefixes), files)
        backups = [f for f in os.listdir(os.path.join(tdir, "backups")) if f.endswith("Data.db")]
        self.assertGreaterEqual(len(backups), steps)


class SchemaChanges(EmuTestCase):
    def test_network_topology_needs_known_data_centers_from_4_0(self):
        nts = "CREATE KEYSPACE %s WITH replication = {'class': 'NetworkTopologyStrategy', %s}"
        self.init("4.1", "--dc", "dc1")
        self.emu("add-peer", "--address", "127.0.0.9", "--dc", "dc2")
        self.cqlsh("-e", nts % ("a", "'dc1': 1, 'dc2': 1"))
        r = self.cqlsh("-e", nts % ("b", "'dc1': 1, 'dcX': 1"), rc=2)
        self.assertIn("ConfigurationException: Error from server: code=2300 [Query invalid because of "
                      "configuration issue] message=\"Unrecognized strategy option {dcX} passed to "
                      "NetworkTopologyStrategy for keyspace b\"", r.err)

    def test_network_topology_takes_any_data_center_before_4_0(self):
        self.init("3.11", "--dc", "dc1")
        self.cqlsh("-e", "CREATE KEYSPACE b WITH replication = {'class': 'NetworkTopologyStrategy', 'dcX': 1}")

    def test_drop_recreate_keeps_old_folder_and_auto_snapshot(self):
        self.init("4.1")
        old = self.make_table()
        self.emu("write", "ks", "t")
        self.cqlsh("-e", "DROP TABLE ks.t")
        old_dir = self.table_dirs("ks", "t", old)[0]
        self.assertTrue(os.path.isdir(old_dir))
        snaps = os.listdir(os.path.join(old_dir, "snapshots"))
        self.assertEqual(len(snaps), 1)
        self.assertRegex(snaps[0], r"^dropped-\d{13}-t$")
        self.assertEqual([f for f in os.listdir(old_dir) if f.endswith(".db")], [])
        new = self.make_table()
        self.assertNotEqual(new, old)
        self.assertTrue(os.path.isdir(self.table_dirs("ks", "t", new)[0]))
        self.assertTrue(os.path.isdir(old_dir))

    def test_recreate_with_id_from_schema_cql(self):
        self.init("4.0")
        tid = self.make_table(index=True)
        self.emu("write", "ks", "t")
        self.nt("snapshot", "-t", "s", "ks")
        schema = os.path.join(self.tmp, "schema.cql")
        shutil.copy(os.path.join(self.table_dirs("ks", "t")[0], "snapshots", "s", "schema.cql"), schema)
        self.cqlsh("-e", "DROP TABLE ks.t")
        self.cqlsh("-f", schema)
        self.assertEqual(self.table_id("ks", "t"), tid)
        r = self.cqlsh("-f", schema)  # IF NOT EXISTS: idempotent
        self.assertEqual(r.err, "")

    def test_truncate_snapshot_and_cql_errors(self):
        self.init("3.11")
        self.make_table()
        self.emu("write", "ks", "t")
        self.cqlsh("-e", "TRUNCATE ks.t")
        tdir = self.table_dirs("ks", "t")[0]
        self.assertEqual(self.live_data_files("ks", "t"), [])
        self.assertRegex(os.listdir(os.path.join(tdir, "snapshots"))[0], r"^truncated-\d{13}-t$")
        r = self.cqlsh("-e", "SELECT keyspace_name, table_name, id FROM system_schema.tables WHERE keyspace_name = 'nope'")
        self.assertIn("(0 rows)", r.out)
        r = self.cqlsh("-e", "DROP TABLE ks.missing", rc=2)
        self.assertEqual(r.err, '<stdin>:1:InvalidRequest: Error from server: code=2200 [Invalid query] '
                                'message="Table \'ks.missing\' doesn\'t exist"\n')


class CommitLogAndStop(EmuTestCase):
    def test_clean_stop_flushes(self):
        self.init("4.1")
        tid = self.make_table()
        self.emu("write", "ks", "t")
        self.assertEqual(self.live_data_files("ks", "t"), [])
        self.emu("stop")
        self.assertEqual(len(self.live_data_files("ks", "t", tid)), 1)

    def test_kill_then_replay_brings_writes_back_unless_commitlog_cleared(self):
        self.init("4.1")
        tid = self.make_table()
        self.emu("write", "ks", "t")
        self.emu("stop", "--kill")
        self.assertEqual(self.live_data_files("ks", "t", tid), [])
        cl = os.path.join(self.root, "commitlog")
        self.assertTrue(any(re.match(r"^CommitLog-7-\d+\.log$", f) for f in os.listdir(cl)))
        r = self.emu("start")
        self.assertIn("replayed 100 mutations of ks.t", r.out)
        self.assertEqual(len(self.live_data_files("ks", "t")), 1)
        # now with the commit log cleared before start: nothing comes back
        self.emu("write", "ks", "t")
        self.emu("stop", "--kill")
        for f in os.listdir(cl):
            os.unlink(os.path.join(cl, f))
        r = self.emu("start")
        self.assertNotIn("replayed", r.out)
        self.assertEqual(len(self.live_data_files("ks", "t")), 1)

    def test_22_clean_stop_relies_on_replay(self):
        self.init("2.2")
        tid = self.make_table()
        self.emu("write", "ks", "t")
        self.emu("stop")
        self.assertEqual(self.live_data_files("ks", "t", tid), [])
        self.emu("start")
        self.assertEqual(len(self.live_data_files("ks", "t")), 1)


class StartupRules(EmuTestCase):
    def refuse(self, pattern):
        r = self.emu("start", ok=False)
        self.assertNotEqual(r.rc, 0, r)
        self.assertRegex(r.err, pattern)
        self.assertEqual(self.emu("status", ok=False).out, "stopped\n")
        r = self.nt("status", rc=1)
        self.assertEqual(r.err, "nodetool: Failed to connect to '127.0.0.1:7199' - ConnectException: 'Connection refused'.\n")

    def stopped_node(self, version="4.1", *extra):
        self.init(version, *extra)
        tid = self.make_table()
        self.emu("write", "ks", "t")
        self.emu("stop")
        return self.table_dirs("ks", "t", tid)[0]

    def test_stray_db_file_refuses_start(self):
        tdir = self.stopped_node()
        open(os.path.join(tdir, "foo.db"), "w").close()
        self.refuse(r"Detected unreadable sstables .*foo\.db")
        os.unlink(os.path.join(tdir, "foo.db"))
        os.makedirs(os.path.join(tdir, "snapshots", "x"))
        open(os.path.join(tdir, "snapshots", "x", "foo.db"), "w").close()  # ignored there
        self.emu("start")

    def test_old_format_on_4x_refuses_start(self):
        for version, fixture, pattern in (("4.1", "la/legacy_tables/legacy_la_simple", r"la-1-big-"),
                                          ("4.0", "ka/legacy_tables/legacy_ka_simple", r"legacy_ka_simple-ka-1-"),
                                          ("4.0", "oa/legacy_tables/legacy_oa_simple", r"oa-1-big-")):
            with self.subTest(version=version, fixture=fixture):
                self.setUp()
                tdir = self.stopped_node(version)
                src = os.path.join(FIXTURES, fixture)
                for f in os.listdir(src):
                    shutil.copy(os.path.join(src, f), os.path.join(tdir, f))
                self.refuse(r"Detected unreadable sstables .*" + pattern)

    def test_uuid_ids_with_flag_off_refuse_start(self):
        tdir = self.stopped_node("4.1")
        (data,) = [f for f in os.listdir(tdir) if f.endswith("Data.db")]
        prefix = data[: -len("Data.db")]
        for f in os.listdir(tdir):
            if f.startswith(prefix):
                os.rename(os.path.join(tdir, f), os.path.join(tdir, f.replace("-1-", "-3g1m_0nuf_3vj5m2k1125165rxa7-")))
        self.refuse(r"UUID sstable identifiers are disabled")

    def test_bti_in_compat_mode_refuses_start(self):
        self.init("5.0", start=False)
        yaml = os.path.join(self.conf, "cassandra.yaml")
        with open(yaml, "a") as f:
            f.write("sstable:\n    selected_format: bti\n")
        self.refuse(r"Selected sstable format 'bti' is not available when in storage compatibility mode 'CASSANDRA_4'")

    def test_orphans_tmp_and_txn_logs_are_cleaned(self):
        tdir = self.stopped_node()
        (data,) = [f for f in os.listdir(tdir) if f.endswith("Data.db")]
        for f in os.listdir(tdir):  # a restore that copied every component except Data.db
            if f.endswith(".db") or f.endswith(".txt") or f.endswith(".crc32"):
                shutil.copy(os.path.join(tdir, f), os.path.join(tdir, f.replace("nb-1-", "nb-9-")))
        os.unlink(os.path.join(tdir, "nb-9-big-Data.db"))
        open(os.path.join(tdir, "nb-1-big-Statistics.db.tmp"), "w").close()
        os.makedirs(os.path.join(tdir, "tmp"))
        self.give(tdir)
        self.emu("start")
        names = os.listdir(tdir)
        self.assertFalse(any(n.startswith("nb-9-") for n in names), names)
        self.assertIn(data, names)
        self.assertNotIn("nb-1-big-Statistics.db.tmp", names)
        self.assertNotIn("tmp", names)

    def test_legacy_plain_folder_wins(self):
        tdir = self.stopped_node()
        plain = os.path.join(self.data_dirs()[0], "ks", "t")
        os.makedirs(plain)
        self.give(plain)
        self.emu("start")
        self.emu("write", "ks", "t")
        self.nt("snapshot", "-t", "s", "ks")
        self.assertTrue(os.path.isdir(os.path.join(plain, "snapshots", "s")))
        self.assertTrue(any(f.endswith("Data.db") for f in os.listdir(plain)))
        self.assertFalse(os.path.exists(os.path.join(tdir, "snapshots", "s")))
        if self.nt("version").out != "ReleaseVersion: 4.0.11\n":
            self.assertIn("%s\n" % os.path.join(self.data_dirs()[0], "ks", "t"), self.nt("datapaths", "ks").out)

    def test_generation_recomputed_from_live_and_backups(self):
        self.init("4.1", "--incremental-backups")
        self.make_table()
        for _ in range(3):
            self.emu("write", "ks", "t")
            self.nt("flush")
        self.cqlsh("-e", "TRUNCATE ks.t")
        self.emu("stop")
        self.emu("start")
        self.emu("write", "ks", "t")
        self.nt("flush")
        self.assertEqual([os.path.basename(f) for f in self.live_data_files("ks", "t")], ["nb-4-big-Data.db"])
        # without backups/ the generation restarts (the blog's truncate + restart case)
        for d in self.table_dirs("ks", "t"):
            shutil.rmtree(os.path.join(d, "backups"))
        self.cqlsh("-e", "TRUNCATE ks.t")
        self.emu("stop")
        self.emu("start")
        self.emu("write", "ks", "t")
        self.nt("flush")
        self.assertEqual([os.path.basename(f) for f in self.live_data_files("ks", "t")], ["nb-1-big-Data.db"])

    @unittest.skipUnless(os.geteuid() == 0, "needs root to create files another user cannot write")
    def test_root_owned_files_refuse_start(self):
        self.env["CASSEMU_USER"] = "nobody"
        tdir = self.stopped_node()
        path = os.path.join(tdir, "nb-1-big-Data.db")
        os.chown(tdir, 0, 0)
        os.chown(path, 0, 0)
        os.chmod(path, 0o644)
        self.refuse(r"FSWriteError|Insufficient permissions")


class ImportRefresh(EmuTestCase):
    def staged(self, ver="nb", gen=1):
        src = os.path.join(FIXTURES, ver, "legacy_tables", "legacy_%s_simple" % ver)
        stage = os.path.join(self.tmp, "stage", "ks", "t")
        os.makedirs(stage, exist_ok=True)
        for f in os.listdir(src):
            shutil.copy(os.path.join(src, f), os.path.join(stage, f.replace("-1-", "-%d-" % gen)))
        self.give(os.path.join(self.tmp, "stage"))
        return stage

    def test_import_moves_with_new_generation_and_backs_up(self):
        self.init("4.1", "--incremental-backups")
        self.make_table()
        self.emu("write", "ks", "t")
        self.nt("flush")
        stage = self.staged(gen=1)  # clashes with the live nb-1
        desc = sstable.list_sstables(stage)[0]
        sstable.rewrite_stats(desc, repaired_at=1700000000000)  # a repaired sstable from a backup
        self.give(stage)
        r = self.nt("import", "ks", "t", stage)
        self.assertEqual((r.out, r.err), ("", ""))
        self.assertEqual(os.listdir(stage), [])
        names = [os.path.basename(f) for f in self.live_data_files("ks", "t")]
        self.assertEqual(names, ["nb-1-big-Data.db", "nb-2-big-Data.db"])
        backups = os.path.join(self.table_dirs("ks", "t")[0], "backups")
        self.assertTrue(os.path.exists(os.path.join(backups, "nb-2-big-Data.db")))
        self.assertTrue(digest_ok(self.live_data_files("ks", "t")[1]))
        imported = self.live_data_files("ks", "t")[1].replace("Data.db", "Statistics.db")
        self.assertEqual(sstable.read_stats(imported, "nb"), (0, 0))  # import resets repairedAt

    def test_import_failed_dirs_and_corrupt_digest(self):
        self.init("4.0")
        self.make_table()
        stage = self.staged()
        with open(os.path.join(stage, "nb-1-big-Data.db"), "r+b") as f:
            f.write(b"X")
        missing = os.path.join(self.tmp, "missing")
        r = self.nt("import", "ks", "t", stage, missing, rc=1)
        self.assertEqual(r.err, "Some directories failed to import, check server logs for details:\n%s\n%s\n"
                         % (stage, missing))
        self.assertEqual(self.live_data_files("ks", "t"), [])
        self.assertTrue(os.path.exists(os.path.join(stage, "nb-1-big-Data.db")))

    def test_import_not_on_311(self):
        self.init("3.11")
        self.make_table()
        r = self.nt("import", "ks", "t", "/tmp", rc=1)
        self.assertIn("Found unexpected parameters: [import]", r.out)

    def test_refresh_loads_new_files_under_free_generation(self):
        self.init("4.1", "--incremental-backups")
        self.make_table()
        self.emu("write", "ks", "t")
        self.nt("flush")
        tdir = self.table_dirs("ks", "t")[0]
        src = self.staged(gen=7)
        for f in os.listdir(src):
            shutil.move(os.path.join(src, f), os.path.join(tdir, f))
        self.nt("snapshot", "-t", "before-refresh", "ks")  # not loaded yet: not in the snapshot
        snap = os.path.join(tdir, "snapshots", "before-refresh")
        self.assertFalse(any(f.startswith("nb-7-") for f in os.listdir(snap)))
        r = self.nt("refresh", "ks", "t")
        self.assertEqual(r.out, "nodetool refresh is deprecated, use nodetool import instead\n")
        names = [os.path.basename(f) for f in self.live_data_files("ks", "t")]
        self.assertEqual(names, ["nb-1-big-Data.db", "nb-2-big-Data.db"])
        self.assertTrue(os.path.exists(os.path.join(tdir, "backups", "nb-2-big-Data.db")))


class RebuildIndex(EmuTestCase):
    def index_files(self):
        tdir = self.table_dirs("ks", "t")[0]
        idir = os.path.join(tdir, ".t_v_idx")
        return sorted(f for f in os.listdir(idir) if f.endswith("-Data.db")) if os.path.isdir(idir) else []

    def test_index_files_gone_then_rebuilt_from_the_base_sstables(self):
        self.init("4.1")
        self.make_table(index=True)
        self.emu("write", "ks", "t")
        self.nt("flush")
        self.assertEqual(self.index_files(), ["nb-1-big-Data.db"])
        # A restore that displaced the index files: the node starts with an empty index.
        idir = os.path.join(self.table_dirs("ks", "t")[0], ".t_v_idx")
        self.emu("stop")
        for f in os.listdir(idir):
            os.unlink(os.path.join(idir, f))
        self.emu("start")
        show = json.loads(self.emu("show").out)
        self.assertFalse([p for p in show["tables"]["ks.t"]["live"] if "/.t_v_idx/" in p])
        r = self.nt("rebuild_index", "ks", "t", "t_v_idx")
        self.assertEqual((r.out, r.err), ("", ""))
        self.assertEqual(len(self.index_files()), 1)
        show = json.loads(self.emu("show").out)
        self.assertEqual(len([p for p in show["tables"]["ks.t"]["live"] if "/.t_v_idx/" in p]), 1)

    def test_full_rebuild_replaces_the_index_sstables(self):
        self.init("4.1")
        self.make_table(index=True)
        for _ in range(2):
            self.emu("write", "ks", "t")
            self.nt("flush")
        self.assertEqual(self.index_files(), ["nb-1-big-Data.db", "nb-2-big-Data.db"])
        self.nt("rebuild_index", "ks", "t", "t_v_idx")
        self.assertEqual(self.index_files(), ["nb-3-big-Data.db"])

    def test_arguments(self):
        self.init("4.1")
        self.make_table(index=True)
        r = self.nt("rebuild_index", "ks", "t", rc=1)
        self.assertIn("rebuild_index requires ks, cf and idx args", r.out)
        r = self.nt("rebuild_index", "ks", "nope", "x", rc=1)
        self.assertIn("Unknown keyspace/cf pair (ks.nope)", r.out + r.err)
        self.nt("rebuild_index", "ks", "t", "no_such_idx")  # only logged, like Cassandra
        self.assertEqual(self.index_files(), [])


class Access(EmuTestCase):
    def test_stopped_node_and_wrong_host(self):
        self.init("4.1", start=False)
        r = self.nt("info", rc=1)
        self.assertEqual(r.err, "nodetool: Failed to connect to '127.0.0.1:7199' - ConnectException: 'Connection refused'.\n")
        r = self.cqlsh("-e", "DESCRIBE KEYSPACES", rc=1)
        self.assertTrue(r.err.startswith("Connection error: ('Unable to connect to any servers'"), r)
        self.emu("start")
        r = self.nt("-h", "10.9.9.9", "version", rc=1)
        self.assertIn("Failed to connect to '10.9.9.9:7199'", r.err)
        self.assertEqual(self.nt("-h", "127.0.0.1", "-p", "7199", "version").out, "ReleaseVersion: 4.1.3\n")

    def test_jmx_credentials(self):
        self.init("4.0", "--jmx-user", "cassandra", "--jmx-password", "s3cret")
        r = self.nt("version", rc=1)
        self.assertEqual(r.err, "nodetool: Failed to connect to '127.0.0.1:7199' - SecurityException: "
                                "'Authentication failed! Credentials required'.\n")
        r = self.nt("-u", "cassandra", "-pw", "wrong", "version", rc=1)
        self.assertIn("SecurityException", r.err)
        self.assertEqual(self.nt("-u", "cassandra", "-pw", "s3cret", "version").out, "ReleaseVersion: 4.0.11\n")
        pwf = os.path.join(self.tmp, "jmx.pw")
        with open(pwf, "w") as f:
            f.write("monitor x\ncassandra s3cret\n")
        self.assertEqual(self.nt("-u", "cassandra", "-pwf", pwf, "version").rc, 0)

    def test_info_status_describecluster(self):
        self.init("3.11", "--host-id", "ed19c671-f413-4108-b9f2-1bb62ce8975c", "--dc", "dc1", "--rack", "r1")
        info = self.nt("info").out.splitlines()
        self.assertEqual(info[0], "ID                     : ed19c671-f413-4108-b9f2-1bb62ce8975c")
        self.assertIn("Thrift active          : false", info)
        self.assertIn("Data Center            : dc1", info)
        self.assertIn("Rack                   : r1", info)
        self.assertEqual(info[-1], "Token                  : (invoke with -T/--tokens to see all 256 tokens)")
        st = self.nt("status").out.splitlines()
        self.assertEqual(st[:4], ["Datacenter: dc1", "===============", "Status=Up/Down",
                                  "|/ State=Normal/Leaving/Joining/Moving"])
        self.assertEqual(st[4], "--  Address    Load       Tokens       Owns (effective)  Host ID                               Rack")
        self.assertRegex(st[5], r"^UN  127\.0\.0\.1  \S+ \S+\s+256          100\.0%            ed19c671-f413-4108-b9f2-1bb62ce8975c  r1$")
        dc = self.nt("describecluster").out
        self.assertTrue(dc.startswith("Cluster Information:\n\tName: Test Cluster\n"), dc)
        self.assertRegex(dc, r"\tSchema versions:\n\t\t[0-9a-f-]{36}: \[127\.0\.0\.1\]\n\n")

    def test_repair_output(self):
        self.init("4.1")
        self.make_table(rf=1)
        r = self.nt("repair", "ks")
        self.assertRegex(r.out, r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] Replication factor is 1\. "
                                r"No repair is needed for keyspace 'ks'\n$")
        self.make_table(ks="ks3", rf=3)
        r = self.nt("repair", "ks3")
        self.assertIn("Starting repair command #1", r.out)
        self.assertIn("Repair completed successfully", r.out)

    def test_repair_token_ranges(self):
        self.init("4.1")
        self.make_table(ks="ks3", rf=3)
        self.emu("add-peer", "--address", "127.0.0.2", "--token-list=-100,100")
        self.emu("add-peer", "--address", "127.0.0.3", "--token-list=-50,50")
        info = self.nt("info", "-T").out
        mine = sorted(int(l.split(":")[1]) for l in info.splitlines() if l.startswith("Token "))
        ring = sorted(mine + [-100, 100, -50, 50])
        prev = ring[ring.index(mine[0]) - 1]
        # a primary range of this node: repaired alone, recorded with its bounds
        r = self.nt("repair", "-full", "-st", str(prev), "-et", str(mine[0]), "--", "ks3")
        self.assertIn("# of ranges: 1", r.out)
        self.assertIn("for range [(%d,%d]] finished" % (prev, mine[0]), r.out)
        # a range across two vnode ranges is refused, as getNeighbors does
        lo = ring[0]
        r = self.nt("repair", "-st", str(lo - 1), "-et", str(ring[1]), "ks3", rc=2)
        self.assertIn("intersects a local range", r.err)
        self.assertIn("but is not fully contained in one", r.err)
        # -pr: this node's primary ranges only
        r = self.nt("repair", "-pr", "ks3")
        self.assertIn("# of ranges: %d" % len(mine), r.out)
        with open(os.path.join(self.conf, "emulator", "repairs.jsonl"), encoding="utf-8") as f:
            recs = [json.loads(l) for l in f]
        self.assertEqual(recs[0]["ranges"], [[str(prev), str(mine[0])]])
        self.assertEqual(len(recs), 2)
        self.assertTrue(recs[0]["full"])
        self.assertLessEqual(recs[0]["start"], recs[0]["end"])
        # repair-duration: each command takes that long
        self.emu("repair-duration", "300")
        r = self.nt("repair", "-pr", "ks3")
        with open(os.path.join(self.conf, "emulator", "repairs.jsonl"), encoding="utf-8") as f:
            last = [json.loads(l) for l in f][-1]
        self.assertGreaterEqual(last["end"] - last["start"], 0.3)

    def test_drain_stops_cql_but_nodetool_answers(self):
        self.init("4.0")
        tid = self.make_table()
        self.emu("write", "ks", "t")
        self.nt("drain")
        self.assertEqual(len(self.live_data_files("ks", "t", tid)), 1)
        self.assertEqual(os.listdir(os.path.join(self.root, "commitlog")), [])
        r = self.cqlsh("-e", "DESCRIBE KEYSPACES", rc=1)
        self.assertIn("Unable to connect to any servers", r.err)
        info = self.nt("info").out
        self.assertIn("Gossip active          : false\n", info)
        self.assertIn("Native Transport active: false\n", info)

    def test_cqlsh_file_errors_carry_line_numbers(self):
        self.init("4.1")
        path = os.path.join(self.tmp, "bad.cql")
        with open(path, "w") as f:
            f.write("CREATE KEYSPACE ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1};\n"
                    "\n"
                    "DROP TABLE ks.nope;\n"
                    "CREATE TABLE ks.t (id int PRIMARY KEY);\n")
        r = self.cqlsh("-f", path, rc=2)
        self.assertTrue(r.err.startswith("%s:3:InvalidRequest: " % path), r)
        self.table_id("ks", "t")  # later statements still ran

    def test_datapaths_ring_getendpoints(self):
        self.init("4.1", "--data-dirs", "2", "--tokens", "4")
        tid = self.make_table(rf=1)
        out = self.nt("datapaths", "ks.t").out
        dirs = self.table_dirs("ks", "t", tid)
        self.assertEqual(out, "Keyspace: ks\n\tTable: t\n\tPaths:\n\t\t%s\n\t\t%s\n\n" % tuple(dirs))
        self.assertEqual(self.nt("getendpoints", "ks", "t", "k1").out, "127.0.0.1\n")
        ring = self.nt("ring").out
        self.assertIn("Datacenter: datacenter1\n==========\n", ring)
        self.assertEqual(len([l for l in ring.splitlines() if l.startswith("127.0.0.1  ")]), 4)
        self.assertIn('Warning: "nodetool ring" is used to output all the tokens of a node.', ring)
        self.nt("datapaths", rc=0)
        self.setUp()
        self.init("4.0")
        self.assertIn("Found unexpected parameters: [datapaths]", self.nt("datapaths", rc=1).out)


if __name__ == "__main__":
    unittest.main()
