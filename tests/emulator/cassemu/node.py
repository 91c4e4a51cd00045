"""The emulated node: state, table folders, memtables, flush, commit log, compaction, backups."""

import json
import os
import random
import uuid
import zlib

from . import config, profiles, schema, sstable, util

STATE_DIR = "emulator"


def state_dir():
    return os.path.join(config.conf_dir(), STATE_DIR)


def state_path():
    return os.path.join(state_dir(), "state.json")


def lock():
    util.makedirs(state_dir())
    return util.Lock(os.path.join(state_dir(), "lock"))


class Node:
    """One node; load with Node.load() under lock(), mutate, then save()."""

    def __init__(self, state, yaml_conf):
        self.state = state
        self.yaml = yaml_conf
        self.profile = profiles.get(state["profile"])
        self.dirs = config.storage_dirs(yaml_conf)
        seed = os.environ.get("CASSEMU_SEED")
        self.rng = random.Random(seed) if seed is not None else random.Random()

    # -- persistence ---------------------------------------------------------------------------

    @classmethod
    def load(cls):
        try:
            with open(state_path(), encoding="utf-8") as f:
                state = json.load(f)
        except FileNotFoundError:
            raise util.EmuError(
                "no emulated node under %s (run cassandra-emu init)" % config.conf_dir()
            )
        return cls(state, config.load())

    def save(self):
        util.makedirs(state_dir())
        tmp = state_path() + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.state, f, indent=1)
        os.replace(tmp, state_path())

    # -- config accessors ----------------------------------------------------------------------

    @property
    def running(self):
        return bool(self.state.get("running"))

    @property
    def address(self):
        return self.state.get("listen_address", "127.0.0.1")

    def yaml_flag(self, key, default=False):
        v = self.yaml.get(key, default)
        return v is True or (isinstance(v, str) and v.lower() == "true")

    def backups_enabled(self, ks, table):
        rt = self.state.get("backup_runtime")
        on = self.yaml_flag("incremental_backups") if rt is None else rt
        if on and self.profile.major >= (5, 0):
            on = self.table(ks, table).get("options", {}).get("incremental_backups", True)
        return bool(on)

    def uuid_ids(self):
        if not self.profile.uuid_ids_supported:
            return False
        return self.yaml_flag("uuid_sstable_identifiers_enabled") or self.yaml_flag(
            "enable_uuid_sstable_identifiers"
        )

    def write_version(self):
        return profiles.write_version(self.profile, self.yaml)

    # -- schema --------------------------------------------------------------------------------

    @property
    def keyspaces(self):
        return self.state["schema"]

    def keyspace(self, ks):
        if ks not in self.keyspaces:
            raise util.EmuError("Keyspace %s does not exist" % ks)
        return self.keyspaces[ks]

    def table(self, ks, t):
        kinfo = self.keyspace(ks)
        if t not in kinfo["tables"]:
            raise util.UsageError("Unknown keyspace/cf pair (%s.%s)" % (ks, t))
        return kinfo["tables"][t]

    def all_tables(self, keyspaces=None):
        for ks in self.keyspaces:
            if keyspaces and ks not in keyspaces:
                continue
            for t in self.keyspaces[ks]["tables"]:
                yield ks, t

    def is_system(self, ks):
        return self.keyspaces.get(ks, {}).get("system", False)

    # -- directories ---------------------------------------------------------------------------

    def data_dirs_for(self, ks):
        dd = self.dirs["data"]
        if self.profile.local_system_first_dir and ks in schema.LOCAL_SYSTEM_KEYSPACES:
            return dd[:1]
        return dd

    def table_dirs(self, ks, t):
        """The table's live folders in every data dir (legacy `<t>/` when that one won)."""
        tinfo = self.table(ks, t)
        if tinfo.get("dir_mode") == "legacy":
            return [os.path.join(d, ks, t) for d in self.data_dirs_for(ks)]
        return [os.path.join(d, ks, "%s-%s" % (t, tinfo["id"])) for d in self.data_dirs_for(ks)]

    def cfs_list(self, ks, t):
        """[(cfs key, index name or None, [dirs])] for the table and each of its 2i."""
        tdirs = self.table_dirs(ks, t)
        out = [(self.cfs_key(ks, t, None), None, tdirs)]
        for idx in sorted(self.table(ks, t).get("indexes", {})):
            out.append((self.cfs_key(ks, t, idx), idx, [os.path.join(d, "." + idx) for d in tdirs]))
        return out

    def cfs_key(self, ks, t, idx):
        base = "%s/%s-%s" % (ks, t, self.table(ks, t)["id"])
        return base + ("/." + idx if idx else "")

    def open_table(self, ks, t):
        """What Cassandra does when it opens a table: pick legacy/id folder, mkdir everywhere."""
        tinfo = self.table(ks, t)
        legacy = any(os.path.isdir(os.path.join(d, ks, t)) for d in self.data_dirs_for(ks))
        tinfo["dir_mode"] = "legacy" if legacy else "id"
        for d in self.table_dirs(ks, t):
            util.makedirs(d)
        for _key, _idx, dirs in self.cfs_list(ks, t):
            for d in dirs:
                util.makedirs(d)

    # -- live sstable tracking -----------------------------------------------------------------

    def loaded(self, key):
        return self.state.setdefault("loaded", {}).setdefault(key, [])

    def loaded_descs(self, key):
        out = []
        for p in self.loaded(key):
            d = sstable.parse_name(os.path.basename(p) + "-Data.db")
            if d is None:
                continue
            ver, gen, fmt, _c, legacy = d
            out.append(sstable.Desc(os.path.dirname(p), ver, gen, fmt, legacy))
        return out

    def track(self, key, desc):
        p = os.path.join(desc.directory, desc.prefix)
        lst = self.loaded(key)
        if p not in lst:
            lst.append(p)

    def untrack(self, key, desc):
        p = os.path.join(desc.directory, desc.prefix)
        lst = self.loaded(key)
        if p in lst:
            lst.remove(p)

    def next_gen(self, key):
        gens = self.state.setdefault("gens", {})
        g = gens.get(key, 1)
        gens[key] = g + 1
        return g

    def new_id(self, key, directory):
        """Next sstable id: a UUID id when enabled, else the next free generation number."""
        if self.uuid_ids():
            return sstable.new_uuid_id(self.state.setdefault("process_lsb", sstable.new_process_lsb()))
        ver, fmt = self.write_version()
        while True:
            g = self.next_gen(key)
            if not os.path.exists(sstable.Desc(directory, ver, g, fmt).path("Data.db")):
                return g

    def recompute_generations(self):
        """At startup: next generation = max(live dirs ∪ backups/) + 1, per table and per 2i."""
        gens = {}
        for ks, t in self.all_tables():
            for key, _idx, dirs in self.cfs_list(ks, t):
                mx = 0
                for d in dirs:
                    for base in (d, os.path.join(d, "backups")):
                        for desc in sstable.list_sstables(base):
                            if isinstance(desc.gen, int):
                                mx = max(mx, desc.gen)
                # backups/.idx for index sstables
                gens[key] = mx + 1
        for ks, t in self.all_tables():
            tdirs = self.table_dirs(ks, t)
            for idx in self.table(ks, t).get("indexes", {}):
                key = self.cfs_key(ks, t, idx)
                for d in tdirs:
                    for desc in sstable.list_sstables(os.path.join(d, "backups", "." + idx)):
                        if isinstance(desc.gen, int):
                            gens[key] = max(gens[key], desc.gen + 1)
        self.state["gens"] = gens

    # -- writes, commit log --------------------------------------------------------------------

    def commitlog_segments(self):
        d = self.dirs["commitlog"]
        try:
            names = os.listdir(d)
        except OSError:
            return []
        segs = [n for n in names if n.startswith("CommitLog-") and n.endswith(".log")]

        def seg_id(n):
            try:
                return int(n[:-4].split("-")[2])
            except (IndexError, ValueError):
                return 0

        return [os.path.join(d, n) for n in sorted(segs, key=seg_id)]

    def _active_segment(self):
        segs = self.commitlog_segments()
        if segs and os.path.getsize(segs[-1]) < 32 * 1024:
            return segs[-1]
        cl = self.state.setdefault("cl", {})
        sid = max(cl.get("next_segment", 0), util.now_ms())
        cl["next_segment"] = sid + 1
        util.makedirs(self.dirs["commitlog"])
        path = os.path.join(
            self.dirs["commitlog"], "CommitLog-%d-%d.log" % (self.profile.commitlog_version, sid)
        )
        util.write_file(path, "")
        return path

    def write(self, ks, t, rows):
        """Apply `rows` mutations: memtable + commit log (unless durable_writes = false)."""
        tinfo = self.table(ks, t)
        key = "%s/%s" % (ks, t)
        pend = self.state.setdefault("pending", {})
        pend[key] = pend.get(key, 0) + rows
        if self.keyspace(ks).get("durable_writes", True):
            cl = self.state.setdefault("cl", {})
            cl["seq"] = cl.get("seq", 0) + 1
            seg = self._active_segment()
            with open(seg, "a", encoding="utf-8") as f:
                f.write("%d\t%s\t%s\t%s\t%d\n" % (cl["seq"], tinfo["id"], ks, t, rows))

    def _mark_flushed(self, ks, t):
        cl = self.state.setdefault("cl", {})
        cl.setdefault("flushed", {})[self.table(ks, t)["id"]] = cl.get("seq", 0)

    def read_commitlog(self):
        recs = []
        for seg in self.commitlog_segments():
            try:
                with open(seg, encoding="utf-8") as f:
                    for line in f:
                        parts = line.rstrip("\n").split("\t")
                        if len(parts) == 5:
                            recs.append((seg, int(parts[0]), parts[1], parts[2], parts[3], int(parts[4])))
            except (OSError, ValueError, UnicodeDecodeError):
                continue
        return recs

    def discard_clean_segments(self, keep_active=True):
        """Delete segments whose every mutation is flushed (or belongs to a dropped table)."""
        segs = self.commitlog_segments()
        flushed = self.state.get("cl", {}).get("flushed", {})
        ids = {self.keyspaces[ks]["tables"][t]["id"] for ks, t in self.all_tables()}
        dirty = set()
        for seg, seq, tid, _ks, _t, _rows in self.read_commitlog():
            if tid in ids and seq > flushed.get(tid, 0):
                dirty.add(seg)
        for i, seg in enumerate(segs):
            if keep_active and i == len(segs) - 1:
                continue
            if seg not in dirty:
                os.unlink(seg)

    def replay_commitlog(self):
        """Startup replay: unflushed mutations of current tables become memtable data again."""
        flushed = self.state.get("cl", {}).get("flushed", {})
        by_id = {self.keyspaces[ks]["tables"][t]["id"]: (ks, t) for ks, t in self.all_tables()}
        replayed = {}
        maxseq = self.state.get("cl", {}).get("seq", 0)
        for _seg, seq, tid, _ks, _t, rows in self.read_commitlog():
            maxseq = max(maxseq, seq)
            if tid in by_id and seq > flushed.get(tid, 0):
                replayed[by_id[tid]] = replayed.get(by_id[tid], 0) + rows
        self.state.setdefault("cl", {})["seq"] = maxseq
        pend = self.state.setdefault("pending", {})
        for (ks, t), rows in replayed.items():
            pend["%s/%s" % (ks, t)] = pend.get("%s/%s" % (ks, t), 0) + rows
        return replayed

    # -- flush ---------------------------------------------------------------------------------

    def pending(self, ks, t):
        return self.state.get("pending", {}).get("%s/%s" % (ks, t), 0)

    def flush(self, ks, t):
        """Flush the memtable: new sstable(s) with fresh ids, TOC last, backups if enabled."""
        rows = self.pending(ks, t)
        if rows <= 0:
            self._mark_flushed(ks, t)
            return []
        ver, fmt = self.write_version()
        created = []
        for key, idx, dirs in self.cfs_list(ks, t):
            # 3.2+: one sstable per data dir (each owns a token range) for big enough memtables.
            if len(dirs) > 1 and self.profile.major >= (3, 0) and rows >= len(dirs):
                targets = list(dirs)
            else:
                targets = [self.rng.choice(dirs)]
            for d in targets:
                util.makedirs(d)
                util.require_writable_dir(d)
                sid = self.new_id(key, d)
                txn = os.path.join(d, "%s_txn_flush_%s.log" % (ver, uuid.uuid1()))
                util.write_file(txn, "ADD:[%s,0,8][0]\n" % os.path.join(d, "%s-%s-%s" % (ver, sid, fmt)))
                seed = zlib.crc32(("%s|%s|%s" % (self.state.get("host_id"), key, sid)).encode())
                desc = sstable.clone_fixture(ver, fmt, d, sid, seed)
                os.unlink(txn)
                self.track(key, desc)
                created.append((key, idx, desc))
                if self.backups_enabled(ks, t):
                    self.backup_link(desc, idx)
        self.state["pending"].pop("%s/%s" % (ks, t), None)
        self._mark_flushed(ks, t)
        return created

    def backup_link(self, desc, idx):
        """Incremental backup: hard-link all components into <table dir>/backups[/.<idx>]/."""
        tdir = os.path.dirname(desc.directory) if idx else desc.directory
        target = os.path.join(tdir, "backups", "." + idx) if idx else os.path.join(tdir, "backups")
        sstable.hard_link_sstable(desc, target)

    def flush_all(self, keyspaces=None):
        out = []
        for ks, t in list(self.all_tables(keyspaces)):
            out += self.flush(ks, t)
        return out

    # -- compaction and metadata rewrites ------------------------------------------------------

    def compact(self, ks, t):
        """Replace all live sstables of each cfs by one new one per data dir (never backed up)."""
        ver, fmt = self.write_version()
        made = []
        for key, _idx, _dirs in self.cfs_list(ks, t):
            descs = self.loaded_descs(key)
            if len(descs) < 1:
                continue
            by_dir = {}
            for d in descs:
                by_dir.setdefault(d.directory, []).append(d)
            for directory, group in by_dir.items():
                util.require_writable_dir(directory)
                sid = self.new_id(key, directory)
                new = sstable.clone_fixture(ver, fmt, directory, sid, len(group))
                self.track(key, new)
                for old in group:
                    sstable.delete_sstable(old)
                    self.untrack(key, old)
                made.append(new)
        return made

    def rewrite_stats(self, ks, t, components=("Statistics.db",)):
        """Rewrite Statistics.db (and Summary.db) of live sstables in place via tmp + rename.

        Same name, new inode, new mtime; snapshots/backups keep the old inode. The bytes are
        re-written from the current file with the repairedAt-style change Cassandra does not
        let us reproduce exactly; the content is kept byte-identical when no change is known."""
        n = 0
        for key, _idx, _dirs in self.cfs_list(ks, t):
            for desc in self.loaded_descs(key):
                for comp in components:
                    p = desc.path(comp)
                    if not os.path.exists(p):
                        continue
                    util.require_writable_dir(desc.directory)
                    with open(p, "rb") as f:
                        data = f.read()
                    tmp = p + ".tmp"
                    util.write_file(tmp, data)
                    os.replace(tmp, p)
                    n += 1
        return n

    # -- misc ----------------------------------------------------------------------------------

    def live_size(self):
        total = 0
        for ks, t in self.all_tables():
            for key, _idx, _dirs in self.cfs_list(ks, t):
                for d in self.loaded_descs(key):
                    total += sstable.data_size(d)
        return total


def answers_on(n, host):
    """Does this node answer on `host` (loopback, its listen address or its hostname)?"""
    import socket

    local = {"127.0.0.1", "localhost", "::1", "0:0:0:0:0:0:0:1", n.address, socket.gethostname()}
    return host in local
