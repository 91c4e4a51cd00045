"""Conformance: emulator output compared with the real Cassandra doc samples (fixtures)."""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from emu_testlib import EmuTestCase  # noqa: E402
from cassemu import util  # noqa: E402

SIZE_RE = re.compile(r"^\d+(\.\d{1,2})? (bytes|KiB|MiB|GiB|KB|MB)$")


def strip_prompt(text):
    """Drop the `$ nodetool ...` prompt line the doc samples carry."""
    return "\n".join(l for l in text.splitlines() if not l.startswith("$ "))


def column_starts(header, names):
    return [header.index(n) for n in names]


def assert_table_layout(tc, lines, names):
    """TableBuilder rule: column i+1 starts after the widest cell of column i plus one space."""
    starts = column_starts(lines[0], names)
    rows = [cut(l, starts) for l in lines]
    for i in range(len(names) - 1):
        width = max(len(r[i]) for r in rows)
        tc.assertEqual(starts[i + 1] - starts[i], width + 1, (names[i], lines))
    return rows


def cut(line, starts):
    cells = []
    for i, s in enumerate(starts):
        e = starts[i + 1] if i + 1 < len(starts) else len(line)
        cells.append(line[s:e].rstrip())
    return cells


class DocSetup(EmuTestCase):
    """The docs' example cluster: cqlkeyspace.{t,t2}, catalogkeyspace.{journal,magazine}."""

    def docs_cluster(self, version, *extra):
        # the docs' tables are tiny: use the small fixture sstables so column widths match
        self.env["CASSEMU_VARIANT"] = "0"
        self.init(version, *extra)
        self.cqlsh("-e", "CREATE KEYSPACE cqlkeyspace WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3};"
                         "CREATE TABLE cqlkeyspace.t (id int PRIMARY KEY, k int, v text);"
                         "CREATE TABLE cqlkeyspace.t2 (id int PRIMARY KEY, k int, v text);"
                         "CREATE KEYSPACE catalogkeyspace WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3};"
                         "CREATE TABLE catalogkeyspace.journal (id int PRIMARY KEY, name text, publisher text);"
                         "CREATE TABLE catalogkeyspace.magazine (id int PRIMARY KEY, name text, publisher text);")
        for ks, t in (("cqlkeyspace", "t"), ("cqlkeyspace", "t2"), ("catalogkeyspace", "journal"),
                      ("catalogkeyspace", "magazine")):
            self.emu("write", ks, t, "--rows", "3")


class ListSnapshotsConformance(DocSetup):
    def test_40_listsnapshots_matches_doc_sample(self):
        """nodetool_list_snapshots.result (4.0 columns, KiB, unsorted HashMap row order)."""
        self.docs_cluster("4.0")
        self.nt("snapshot", "--kt-list", "cqlkeyspace.t,cqlkeyspace.t2", "--tag", "multi-table")
        self.nt("snapshot", "--kt-list", "catalogkeyspace.journal,cqlkeyspace.t", "--tag", "multi-ks")
        self.nt("snapshot", "--kt-list", "catalogkeyspace.magazine", "--tag", "magazine")
        self.nt("snapshot", "--kt-list", "cqlkeyspace.t,cqlkeyspace.t2", "--tag", "multi-table-2")
        self.nt("snapshot", "--tag", "catalog-ks", "catalogkeyspace")
        got = self.nt("listsnapshots").out
        want = self.sample("nodetool_list_snapshots.result")
        g, w = got.split("\n"), want.split("\n")
        self.assertEqual(g[0], "Snapshot Details: ")  # real output has the trailing space
        self.assertEqual(w[0].rstrip(), g[0].rstrip())
        names = ["Snapshot name", "Keyspace name", "Column family name", "True size", "Size on disk"]
        nrows = len([l for l in g[2:] if l.strip() and not l.startswith("Total")])
        assert_table_layout(self, w[1:11], names)
        assert_table_layout(self, g[1:2 + nrows], names)
        starts = column_starts(g[1], names)
        grows = [cut(l, starts) for l in g[2:] if l.strip() and not l.startswith("Total")]
        wstarts = column_starts(w[1], names)
        wrows = [cut(l, wstarts) for l in w[2:] if l.strip() and not l.startswith("Total")]
        # same rows (tag, ks, table) and the same (unsorted) tag order as Cassandra's HashMap
        self.assertEqual(sorted(r[:3] for r in grows), sorted(r[:3] for r in wrows))
        tag_order = lambda rows: list(dict.fromkeys(r[0] for r in rows))  # noqa: E731
        self.assertEqual(tag_order(grows), tag_order(wrows))
        for r in grows:
            self.assertRegex(r[3], SIZE_RE)
            self.assertRegex(r[4], SIZE_RE)
        # every cell padded, including the last column (trailing spaces in real output)
        widths = {len(l) for l in g[1:2 + len(grows)]}
        self.assertEqual(len(widths), 1, g)
        self.assertEqual(g[2 + len(grows)], "")
        self.assertRegex(g[3 + len(grows)], r"^Total TrueDiskSpaceUsed: \d+(\.\d+)? (bytes|KiB)$")
        self.assertEqual(g[4 + len(grows):], ["", ""])

    def test_empty_listsnapshots_matches_sample(self):
        self.init("4.1")
        got = self.nt("listsnapshots").out
        self.assertEqual(got, "Snapshot Details: \nThere are no snapshots\n")
        want = strip_prompt(self.sample("nodetool_list_snapshot_empty.result"))
        self.assertEqual([l.rstrip() for l in got.splitlines()], want.splitlines())

    def test_41_ttl_snapshot_and_listing_match_samples(self):
        self.docs_cluster("4.1")
        r = self.nt("snapshot", "--tag", "catalog-journal", "--ttl", "3m", "catalogkeyspace.journal")
        self.assertEqual(r.out, strip_prompt(self.sample("nodetool_snapshot_take_ttl.result")) + "\n")
        got = self.nt("listsnapshots").out.splitlines()
        want = strip_prompt(self.sample("nodetool_snapshot_list_ttl_snapshots.result")).splitlines()
        self.assertEqual(got[0].rstrip(), want[0])
        names = ["Snapshot name", "Keyspace name", "Column family name", "True size", "Size on disk",
                 "Creation time", "Expiration time"]
        w = assert_table_layout(self, want[1:3], names)[1]  # the rule holds for the real sample
        g = assert_table_layout(self, got[1:3], names)[1]  # ... and for our output
        self.assertEqual(g[:3], w[:3])
        self.assertRegex(g[3], SIZE_RE)
        self.assertRegex(g[4], SIZE_RE)
        created, expires = util.parse_instant(g[5]), util.parse_instant(g[6])
        self.assertEqual(expires - created, 180000)
        self.assertRegex(g[5], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")

    def test_50_ephemeral_column_matches_sample(self):
        self.docs_cluster("5.0")
        self.nt("snapshot", "--tag", "catalog-cql-ks", "--ttl", "3m", "catalogkeyspace")
        got = self.nt("listsnapshots", "-e").out.splitlines()
        want = strip_prompt(self.sample("nodetool_list_snapshots_ephemeral.result")).splitlines()
        names = ["Snapshot name", "Keyspace name", "Column family name", "True size", "Size on disk",
                 "Creation time", "Expiration time", "Ephemeral"]
        wrows = sorted(assert_table_layout(self, want[1:4], names)[1:])
        grows = sorted(assert_table_layout(self, got[1:4], names)[1:])
        self.assertEqual([r[:3] + r[7:] for r in grows], [r[:3] + r[7:] for r in wrows])
        # without -e there is no Ephemeral column
        plain = self.nt("listsnapshots").out.splitlines()
        self.assertNotIn("Ephemeral", plain[1])


class SnapshotOutputConformance(DocSetup):
    def test_snapshot_keyspace_output_matches_sample(self):
        """snapshot_backup2.result (doc hard-wraps the first line; the real output is one line)."""
        self.docs_cluster("4.0")
        r = self.nt("snapshot", "--tag", "catalog-ks", "catalogkeyspace")
        want = self.sample("snapshot_backup2.result").replace(" and\noptions", " and options")
        self.assertEqual(r.out, want)

    def test_snapshot_kt_list_output_matches_sample(self):
        self.docs_cluster("4.1")
        r = self.nt("snapshot", "--kt-list", "catalogkeyspace.journal,cqlkeyspace.t", "--tag", "multi-ks")
        want = self.sample("snapshot_mult_ks.result").replace("snapshot\nname", "snapshot name")
        self.assertEqual(r.out, want)

    def test_snapshot_output_30_has_no_options(self):
        self.docs_cluster("3.0")
        r = self.nt("snapshot", "-t", "x", "cqlkeyspace", "catalogkeyspace")
        self.assertEqual(r.out, "Requested creating snapshot(s) for [cqlkeyspace, catalogkeyspace] with snapshot name [x]\n"
                                "Snapshot directory: x\n")

    def test_find_backups_and_snapshots_layout(self):
        """find_backups.result / snapshot_all.result: <ks>/<table>-<32 hex id>/{backups,snapshots}."""
        self.docs_cluster("4.0", "--incremental-backups")
        self.nt("flush")
        self.nt("snapshot", "-t", "all")
        pat = re.compile(r"^(?P<ks>\w+)/(?P<t>\w+)-[0-9a-f]{32}/(?P<sub>backups|snapshots)$")
        for sub, sample in (("backups", "find_backups.result"), ("snapshots", "snapshot_all.result")):
            want = set()
            for line in self.sample(sample).splitlines():
                rel = line.split("/data/data/", 1)[1]
                m = pat.match(rel)
                self.assertIsNotNone(m, rel)
                want.add((m.group("ks"), m.group("t")))
            got = set()
            dd = self.data_dirs()[0]
            for ks in ("cqlkeyspace", "catalogkeyspace"):
                for child in os.listdir(os.path.join(dd, ks)):
                    rel = "%s/%s/%s" % (ks, child, sub)
                    if os.path.isdir(os.path.join(dd, rel)):
                        m = pat.match(rel)
                        self.assertIsNotNone(m, rel)
                        got.add((m.group("ks"), m.group("t")))
            self.assertEqual(got, want)

    def test_snapshot_files_listing_link_counts(self):
        """snapshot_files.result: sstable files have 4 links, manifest.json/schema.cql 1."""
        self.docs_cluster("4.0", "--incremental-backups")
        self.nt("snapshot", "-t", "s1", "catalogkeyspace")  # flush -> live + backups link
        self.nt("snapshot", "-t", "s2", "catalogkeyspace")
        sdir = os.path.join(self.table_dirs("catalogkeyspace", "journal")[0], "snapshots", "s1")
        names = sorted(os.listdir(sdir))
        want = [l.split()[-1].replace("manifest.jsonZ", "manifest.json")
                for l in self.sample("snapshot_files.result").splitlines()[1:]]
        self.assertEqual([n.replace("nb-1-", "na-1-") for n in names], want)
        for line in self.sample("snapshot_files.result").splitlines()[1:]:
            links, name = int(line.split()[1]), line.split()[-1].replace("manifest.jsonZ", "manifest.json")
            st = os.stat(os.path.join(sdir, name.replace("na-1-", "nb-1-")))
            self.assertEqual(st.st_nlink, links, name)
        with open(os.path.join(sdir, "manifest.json")) as f:
            self.assertEqual(f.read(), '{"files":["nb-1-big-Data.db"]}\n')  # 31 bytes like the sample
        self.assertEqual(os.path.getsize(os.path.join(sdir, "manifest.json")), 31)


class FormattingUnits(unittest.TestCase):
    def test_stringify_file_size(self):
        self.assertEqual(util.stringify_file_size(0), "0 bytes")
        self.assertEqual(util.stringify_file_size(1023), "1023 bytes")
        self.assertEqual(util.stringify_file_size(1024), "1 KiB")
        self.assertEqual(util.stringify_file_size(4977), "4.86 KiB")
        self.assertEqual(util.stringify_file_size(5837), "5.7 KiB")
        self.assertEqual(util.stringify_file_size(5 * 1024 * 1024 + 512 * 1024, False), "5.5 MB")

    def test_table_builder_pads_last_column(self):
        self.assertEqual(util.table_builder([["ab", "c"], ["a", "long"]]), "ab c   \na  long\n")


if __name__ == "__main__":
    unittest.main()
