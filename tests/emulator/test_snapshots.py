"""Snapshot, listsnapshots and clearsnapshot behaviour per version profile."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from emu_testlib import EmuTestCase  # noqa: E402


class SnapshotBehaviour(EmuTestCase):
    def snap_dirs(self, ks, t, tag):
        return [os.path.join(d, "snapshots", tag) for d in self.table_dirs(ks, t)]

    def test_snapshot_flushes_and_hard_links_including_index(self):
        self.init("4.1")
        self.make_table(index=True)
        self.emu("write", "ks", "t", "--rows", "5")
        self.nt("snapshot", "-t", "s1", "ks")
        sdir = self.snap_dirs("ks", "t", "s1")[0]
        tdir = self.table_dirs("ks", "t")[0]
        live = sorted(f for f in os.listdir(tdir) if f.startswith("nb-"))
        self.assertEqual(len(live), 8)
        for f in live:
            self.assertTrue(os.path.samefile(os.path.join(tdir, f), os.path.join(sdir, f)))
        idx = sorted(os.listdir(os.path.join(sdir, ".t_v_idx")))
        self.assertEqual(idx, sorted(os.listdir(os.path.join(tdir, ".t_v_idx"))))
        with open(os.path.join(sdir, "manifest.json")) as f:
            m = json.load(f)
        self.assertEqual(sorted(m["files"]), [".t_v_idx/nb-1-big-Data.db", "nb-1-big-Data.db"])
        self.assertIsNone(m["expires_at"])
        self.assertTrue(os.path.exists(os.path.join(sdir, "schema.cql")))

    def test_node_dying_mid_snapshot_leaves_links_without_manifest(self):
        self.init("4.1")
        self.make_table()
        self.make_table(table="t2")
        for t in ("t", "t2"):
            self.emu("write", "ks", t, "--rows", "5")
        self.emu("flush")
        t_dirs, t2_dirs = self.snap_dirs("ks", "t", "torn"), self.snap_dirs("ks", "t2", "torn")
        env = dict(self.env, CASSEMU_CRASH_SNAPSHOT_AFTER_LINKS="2")
        r = self.run_tool("nodetool", "snapshot", "-t", "torn", "ks", env=env)
        self.assertEqual(r.rc, 2, r)
        self.assertIn("java.rmi.UnmarshalException", r.err)
        self.assertEqual(self.emu("status", ok=False).rc, 3)
        done = [sorted(os.listdir(d)) for d in t_dirs if os.path.isdir(d)]
        torn = [sorted(os.listdir(d)) for d in t2_dirs if os.path.isdir(d)]
        self.assertIn("manifest.json", sum(done, []))
        self.assertIn("nb-1-big-Data.db", sum(torn, []))
        self.assertNotIn("manifest.json", sum(torn, []))
        # Startup keeps the torn snapshot (only ephemeral/expired ones go), and the tag exists.
        self.emu("start")
        self.assertTrue(any(os.path.isdir(d) for d in t2_dirs))
        r = self.nt("snapshot", "-t", "torn", "ks", rc=2)
        self.assertIn("Snapshot torn already exists.", r.err)

    def test_skip_flush_snapshots_only_flushed_data(self):
        self.init("4.0")
        self.make_table()
        self.emu("write", "ks", "t")
        self.nt("snapshot", "-sf", "-t", "noflush", "ks")
        sdir = self.snap_dirs("ks", "t", "noflush")[0]
        self.assertEqual(sorted(os.listdir(sdir)), ["manifest.json", "schema.cql"])
        with open(os.path.join(sdir, "manifest.json")) as f:
            self.assertEqual(f.read(), '{"files":[]}\n')

    def test_skip_flush_unknown_before_311(self):
        self.init("3.0")
        r = self.nt("snapshot", "-sf", "-t", "x", rc=1)
        self.assertEqual(r.out, "nodetool: Found unexpected parameters: [-sf]\n"
                                "See 'nodetool help' or 'nodetool help <command>'.\n")

    def test_existing_tag_fails_with_exit_2(self):
        self.init("4.1")
        self.make_table()
        self.nt("snapshot", "-t", "dup", "ks")
        r = self.nt("snapshot", "-t", "dup", "ks", rc=2)
        self.assertTrue(r.err.startswith("error: Snapshot dup already exists.\n-- StackTrace --\n"), r)
        self.assertIn("Requested creating snapshot(s) for [ks] with snapshot name [dup]", r.out)
        # -kt on another table of the same keyspace is allowed (table-level check)
        self.make_table(table="t2")
        self.nt("snapshot", "-kt", "ks.t2", "-t", "dup")

    def test_tag_validation_per_version(self):
        for version, bad, msg in (("4.1", "a/b", "Snapshot name cannot contain /"),
                                  ("4.0", "a:b", "Snapshot name cannot contain :")):
            with self.subTest(version=version):
                self.setUp()
                self.init(version)
                r = self.nt("snapshot", "-t", bad, rc=2)
                self.assertIn("error: %s" % msg, r.err)

    def test_ttl_minimum_and_availability(self):
        self.init("4.1")
        r = self.nt("snapshot", "-t", "short", "--ttl", "30s", rc=2)
        self.assertIn("ttl for snapshot must be at least 60 seconds", r.err)
        self.setUp()
        self.init("4.0")
        r = self.nt("snapshot", "-t", "x", "--ttl", "1h", rc=1)
        self.assertIn("Found unexpected parameters: [--ttl]", r.out)

    def test_selection_options_and_errors(self):
        self.init("3.11")
        self.make_table()
        self.make_table(table="t2")
        r = self.nt("snapshot", "-t", "a", "-cf", "t", "ks")
        self.assertEqual(r.out.splitlines()[0],
                         "Requested creating snapshot(s) for [ks] with snapshot name [a] and options {skipFlush=false}")
        self.assertTrue(os.path.isdir(self.snap_dirs("ks", "t", "a")[0]))
        self.assertFalse(os.path.isdir(self.snap_dirs("ks", "t2", "a")[0]))
        self.nt("snapshot", "-t", "b", "ks.t2")  # 3.11+: positional ks.table
        self.assertTrue(os.path.isdir(self.snap_dirs("ks", "t2", "b")[0]))
        self.assertFalse(os.path.isdir(self.snap_dirs("ks", "t", "b")[0]))
        r = self.nt("snapshot", "-t", "c", "-cf", "t", rc=2)
        self.assertIn("you must specify one and only one keyspace", r.err)
        r = self.nt("snapshot", "-t", "c", "-kt", "ks.t", "ks", rc=2)
        self.assertIn("you should not specify columnfamily", r.err)
        r = self.nt("snapshot", "-t", "c", "nope", rc=2)
        self.assertIn("error: Keyspace nope does not exist", r.err)

    def test_no_keyspace_snapshots_system_keyspaces_too(self):
        self.init("4.1")
        self.make_table()
        r = self.nt("snapshot", "-t", "everything")
        self.assertTrue(r.out.startswith("Requested creating snapshot(s) for [all keyspaces]"))
        local = os.path.join(self.data_dirs()[0], "system", "local-7ad54392bcdd35a684174e047860b377",
                             "snapshots", "everything")
        self.assertTrue(os.path.isdir(local))
        self.assertFalse(os.path.exists(os.path.join(local, "schema.cql")))  # system: no schema.cql
        self.assertTrue(any(f.endswith("-Data.db") for f in os.listdir(local)))

    def test_manifest_formats_per_version(self):
        expect = {
            "3.11": lambda t: t.startswith('{"files":[') and t.endswith("]}\n") and "\\/" in t,
            "4.1": lambda t: t.startswith('{"files":[') and '"created_at":"' in t and t.endswith('"expires_at":null}'),
            "5.0": lambda t: t.startswith('{\n  "files" : [ ') and '"ephemeral" : false\n}' in t and ".t_v_idx/" in t,
        }
        for version, check in expect.items():
            with self.subTest(version=version):
                self.setUp()
                self.init(version)
                self.make_table(index=True)
                self.emu("write", "ks", "t")
                self.nt("snapshot", "-t", "m", "ks")
                mans = [os.path.join(d, "manifest.json") for d in self.snap_dirs("ks", "t", "m")
                        if os.path.exists(os.path.join(d, "manifest.json"))]
                self.assertEqual(len(mans), 1)
                with open(mans[0]) as f:
                    text = f.read()
                self.assertTrue(check(text), text)

    def test_schema_cql_per_version(self):
        for version, indent in (("3.11", "\tAND "), ("4.0", "    AND ")):
            with self.subTest(version=version):
                self.setUp()
                self.init(version)
                tid = self.make_table(index=True)
                self.nt("snapshot", "-t", "s", "ks")
                (path,) = [os.path.join(d, "schema.cql") for d in self.snap_dirs("ks", "t", "s")
                           if os.path.exists(os.path.join(d, "schema.cql"))]
                with open(path) as f:
                    text = f.read()
                self.assertTrue(text.startswith("CREATE TABLE IF NOT EXISTS ks.t ("), text)
                dashed = "%s-%s-%s-%s-%s" % (tid[:8], tid[8:12], tid[12:16], tid[16:20], tid[20:])
                self.assertIn(") WITH ID = %s\n" % dashed, text)
                self.assertIn(indent, text)
                self.assertIn("CREATE INDEX IF NOT EXISTS t_v_idx ON ks.t (v);", text)
        self.setUp()
        self.init("2.2")
        self.make_table()
        self.nt("snapshot", "-t", "s", "ks")
        self.assertEqual(sorted(os.listdir(self.snap_dirs("ks", "t", "s")[0])), ["manifest.json"])

    def test_multiple_data_dirs_spread_and_manifest_in_one_dir(self):
        self.init("4.1", "--data-dirs", "3")
        self.make_table()
        self.emu("write", "ks", "t", "--rows", "30")
        self.nt("snapshot", "-t", "spread", "ks")
        dirs = self.snap_dirs("ks", "t", "spread")
        datas = [f for d in dirs for f in os.listdir(d) if f.endswith("Data.db")]
        self.assertEqual(len(datas), 3)  # one sstable per data dir
        self.assertEqual(sum(os.path.exists(os.path.join(d, "manifest.json")) for d in dirs), 1)
        self.assertEqual(sum(os.path.exists(os.path.join(d, "schema.cql")) for d in dirs), 1)
        (man,) = [os.path.join(d, "manifest.json") for d in dirs if os.path.exists(os.path.join(d, "manifest.json"))]
        with open(man) as f:
            self.assertEqual(sorted(json.load(f)["files"]), sorted(datas))
        # empty table dirs exist in every data dir; 4.0+ local system keyspaces only in the first
        for d in self.data_dirs():
            self.assertTrue(os.path.isdir(os.path.join(d, "system_auth")))
        self.assertTrue(os.path.isdir(os.path.join(self.data_dirs()[0], "system_schema")))
        self.assertFalse(os.path.exists(os.path.join(self.data_dirs()[1], "system_schema")))


class ListAndClear(EmuTestCase):
    def test_true_size_counts_files_whose_live_name_is_gone(self):
        self.init("4.1")
        self.make_table()
        self.emu("write", "ks", "t")
        self.nt("snapshot", "-t", "before", "ks")
        row = [l for l in self.nt("listsnapshots").out.splitlines() if l.startswith("before")][0]
        small_true = row.split()[3:5]
        self.emu("write", "ks", "t")
        self.emu("flush", "ks", "t")
        self.emu("compact", "ks", "t")  # the snapshotted sstable's live names disappear
        row2 = [l for l in self.nt("listsnapshots").out.splitlines() if l.startswith("before")][0]
        self.assertNotEqual(row2.split()[3:5], small_true)
        self.assertEqual(row2.split()[3:5], row2.split()[5:7])  # true size == size on disk now

    def test_dropped_table_snapshots_hidden_before_41(self):
        for version, visible in (("4.0", False), ("4.1", True)):
            with self.subTest(version=version):
                self.setUp()
                self.init(version)
                self.make_table()
                self.emu("write", "ks", "t")
                self.nt("snapshot", "-t", "keep", "ks")
                self.cqlsh("-e", "DROP TABLE ks.t")
                out = self.nt("listsnapshots").out
                self.assertEqual("keep " in out, visible, out)
                self.assertEqual("dropped-" in out, visible, out)

    def test_311_hides_local_system_snapshots(self):
        self.init("3.11")
        self.nt("snapshot", "-t", "sys", "system")
        self.assertEqual(self.nt("listsnapshots").out, "Snapshot Details: \nThere are no snapshots\n")
        self.setUp()
        self.init("4.0")
        self.nt("snapshot", "-t", "sys", "system")
        self.assertIn("sys ", self.nt("listsnapshots").out)

    def test_clearsnapshot_3x_without_tag_clears_all(self):
        self.init("3.11")
        self.make_table()
        self.nt("snapshot", "-t", "a", "ks")
        self.nt("snapshot", "-t", "b", "ks")
        r = self.nt("clearsnapshot")
        self.assertEqual(r.out, "Requested clearing snapshot(s) for [all keyspaces]\n")
        self.assertFalse(os.path.exists(os.path.join(self.table_dirs("ks", "t")[0], "snapshots", "a")))
        self.assertFalse(os.path.exists(os.path.join(self.table_dirs("ks", "t")[0], "snapshots", "b")))

    def test_clearsnapshot_40_requires_tag_or_all(self):
        self.init("4.0")
        self.make_table()
        self.nt("snapshot", "-t", "a", "ks")
        r = self.nt("clearsnapshot", rc=2)
        self.assertTrue(r.err.startswith("error: Specify snapshot name or --all\n"), r)
        self.assertTrue(os.path.exists(os.path.join(self.table_dirs("ks", "t")[0], "snapshots", "a")))
        r = self.nt("clearsnapshot", "-t", "a", "--all", rc=2)
        self.assertIn("Specify only one of snapshot name or --all", r.err)
        r = self.nt("clearsnapshot", "-t", "a", "ks")
        self.assertEqual(r.out, "Requested clearing snapshot(s) for [ks] with snapshot name [a]\n")
        self.assertFalse(os.path.exists(os.path.join(self.table_dirs("ks", "t")[0], "snapshots", "a")))
        self.nt("clearsnapshot", "-t", "does-not-exist")  # silently ignored
        self.nt("snapshot", "-t", "b", "ks")
        r = self.nt("clearsnapshot", "--all")
        self.assertEqual(r.out, "Requested clearing snapshot(s) for [all keyspaces] with [all snapshots]\n")

    def test_clearsnapshot_50_usage_error_and_dropped_tables(self):
        self.init("5.0")
        self.make_table()
        r = self.nt("clearsnapshot", rc=1)
        self.assertEqual(r.out, "nodetool: Specify snapshot name or --all\n"
                                "See 'nodetool help' or 'nodetool help <command>'.\n")
        self.nt("snapshot", "-t", "old", "ks")
        old_dir = self.table_dirs("ks", "t")[0]
        self.cqlsh("-e", "DROP TABLE ks.t")
        self.nt("clearsnapshot", "-t", "old")  # filesystem driven: dropped tables too
        self.assertFalse(os.path.exists(os.path.join(old_dir, "snapshots", "old")))
        self.assertTrue(os.path.isdir(old_dir))

    def test_ephemeral_snapshots_dropped_at_startup_and_ttl_expiry(self):
        self.init("4.1")
        self.make_table()
        tag = self.emu("ephemeral-snapshot", "ks", "t").out.strip()
        sdir = os.path.join(self.table_dirs("ks", "t")[0], "snapshots", tag)
        self.assertTrue(os.path.exists(os.path.join(sdir, "ephemeral.snapshot")))
        self.nt("snapshot", "-t", "ttl", "--ttl", "60s", "ks")
        man = os.path.join(self.table_dirs("ks", "t")[0], "snapshots", "ttl", "manifest.json")
        with open(man) as f:
            text = f.read()
        with open(man, "w") as f:  # make it already expired
            f.write(text.replace('"expires_at":"', '"expires_at":"2000-01-01T00:00:00Z","x":"'))
        self.emu("stop")
        self.emu("start")
        self.assertFalse(os.path.exists(sdir))
        self.assertFalse(os.path.exists(os.path.dirname(man)))


if __name__ == "__main__":
    unittest.main()
