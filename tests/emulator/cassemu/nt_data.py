"""nodetool commands that move data: flush, drain, backups toggles, refresh, import, datapaths."""

import json
import os

from . import sstable, startup, util


def c_statusbackup(n, o, vals, pos):
    rt = n.state.get("backup_runtime")
    on = n.yaml_flag("incremental_backups") if rt is None else rt
    o.p("running" if on else "not running")


def c_enablebackup(n, o, vals, pos):
    n.state["backup_runtime"] = True


def c_disablebackup(n, o, vals, pos):
    n.state["backup_runtime"] = False


def _keyspace_tables(n, pos):
    """flush-style [ks [tables...]] selection with nodetool's errors."""
    if not pos:
        return list(n.all_tables())
    ks = pos[0]
    if ks not in n.keyspaces:
        raise util.UsageError("Keyspace [%s] does not exist." % ks)
    tables = pos[1:] or list(n.keyspaces[ks]["tables"])
    for t in tables:
        n.table(ks, t)
    return [(ks, t) for t in tables]


def c_flush(n, o, vals, pos):
    for ks, t in _keyspace_tables(n, pos):
        n.flush(ks, t)


def c_drain(n, o, vals, pos):
    startup.drain(n)


def _new_sstables_in(n, key, directory):
    loaded = set(n.loaded(key))
    out = []
    for d in sstable.list_sstables(directory):
        if os.path.join(directory, d.prefix) in loaded:
            continue
        if not os.path.exists(d.path("Data.db")):
            continue
        out.append(d)
    return out


def rebuild_indexes(n, ks, t, descs):
    """Secondary indexes are built for new sstables by the node that loads them."""
    if not descs:
        return
    for idx in sorted(n.table(ks, t).get("indexes", {})):
        n.build_index(ks, t, idx, [d.directory for d in descs])


def c_rebuild_index(n, o, vals, pos):
    """`nodetool rebuild_index <keyspace> <table> <indexName...>` (RebuildIndex.java,
    ColumnFamilyStore.rebuildSecondaryIndex): a full rebuild truncates each named index
    (its sstables are deleted) and builds it again from every live sstable of the base table.
    Unknown index names are only logged (SecondaryIndexManager: "No defined indexes with the
    supplied names"); 2.x names them `<table>.<index>`."""
    if len(pos) < 3:
        raise util.UsageError("rebuild_index requires ks, cf and idx args")
    ks, t, names = pos[0], pos[1], pos[2:]
    tinfo = n.table(ks, t)
    wanted = []
    for name in names:
        idx = name.split(".", 1)[1] if name.startswith(t + ".") else name
        if idx in tinfo.get("indexes", {}) and idx not in wanted:
            wanted.append(idx)
    if not wanted:
        startup.log("INFO  No defined indexes with the supplied names: %s" % ",".join(names))
        return
    startup.log("INFO  User Requested secondary index re-build for %s/%s indexes: %s" % (ks, t, ",".join(names)))
    base = n.loaded_descs(n.cfs_key(ks, t, None))
    for idx in wanted:
        key = n.cfs_key(ks, t, idx)
        for old in n.loaded_descs(key):
            sstable.delete_sstable(old)
            n.untrack(key, old)
        if base:
            n.build_index(ks, t, idx, [d.directory for d in base])


def c_refresh(n, o, vals, pos):
    if len(pos) != 2:
        raise util.UsageError("refresh requires ks and cf args")
    if n.profile.refresh_deprecated:
        o.p("nodetool refresh is deprecated, use nodetool import instead")
    ks, t = pos
    n.table(ks, t)
    key = n.cfs_key(ks, t, None)
    added = []
    for d in n.table_dirs(ks, t):
        for desc in _new_sstables_in(n, key, d):
            if not n.profile.readable(desc.ver, desc.fmt):
                raise util.EmuError("Can't open incompatible SSTable! Current version %s, found file: %s"
                                    % (n.write_version()[0], desc.path("Data.db")))
            util.require_writable_dir(d)
            new = sstable.rename_sstable(desc, d, n.new_id(key, d))
            sstable.rewrite_stats(new, level=0)  # refresh resets the level
            n.track(key, new)
            added.append(new)
            if n.backups_enabled(ks, t):
                n.backup_link(new, None)
    rebuild_indexes(n, ks, t, added)


def receive(n, ks, t, descs, copy, repaired_at=0, level=None):
    """Sstables entering a live table the way import and streaming do it: each one gets a new
    unique id in one of the table's data dirs (never overwriting), all of them or none (moved
    back / copies removed on failure); then repairedAt/level are reset as asked, the node
    loads them and links them into backups/ when incremental backups are on. Returns the new
    descriptors; the caller rebuilds indexes once for all of them."""
    key = n.cfs_key(ks, t, None)
    moved = []
    try:
        for d in descs:
            target = n.rng.choice(n.table_dirs(ks, t))
            util.makedirs(target)
            util.require_writable_dir(target)
            moved.append((d, sstable.rename_sstable(d, target, n.new_id(key, target), copy=copy)))
    except (OSError, util.EmuError):
        for d, new in reversed(moved):
            if copy:
                sstable.delete_sstable(new)
            else:
                sstable.rename_sstable(new, d.directory, d.gen)
        raise
    added = []
    for _d, new in moved:
        if repaired_at is not None or level is not None:
            sstable.rewrite_stats(new, repaired_at=repaired_at, level=level)
        n.track(key, new)
        added.append(new)
        if n.backups_enabled(ks, t):
            n.backup_link(new, None)
    return added


def c_import(n, o, vals, pos):
    if len(pos) < 3:
        raise util.UsageError("import requires keyspace, table name and directories")
    ks, t, srcs = pos[0], pos[1], pos[2:]
    n.table(ks, t)
    if vals.get("quick"):
        o.p("Doing a quick import - skipping sstable verification and row cache invalidation")
    verify = not (vals.get("no_verify") or vals.get("quick"))
    failed, added = [], []
    for src in srcs:
        descs = [d for d in sstable.list_sstables(src) if os.path.exists(d.path("Data.db"))]
        ok = os.path.isdir(src)
        for d in descs:
            if not n.profile.readable(d.ver, d.fmt) or (d.is_uuid and not n.profile.uuid_ids_supported):
                ok = False
            elif verify and not sstable.verify_digest(d):
                ok = False
            elif verify and any(c not in d.components() for c in sstable.toc_components(d)):
                ok = False
        if ok and not vals.get("copy_data") and not util.can_write(src):
            ok = False
        if not ok:
            failed.append(src)
            continue
        try:
            added += receive(n, ks, t, descs, copy=bool(vals.get("copy_data")),
                             repaired_at=None if vals.get("keep_repaired") else 0,
                             level=None if vals.get("keep_level") else 0)
        except (OSError, util.EmuError):
            failed.append(src)
            continue
    rebuild_indexes(n, ks, t, added)
    if failed:
        o.e("Some directories failed to import, check server logs for details:")
        for f in failed:
            o.e(f)
        return 1
    return 0


def c_datapaths(n, o, vals, pos):
    sel = []
    for ks, t in n.all_tables():
        if pos and not any(p == ks or p == "%s.%s" % (ks, t) for p in pos):
            continue
        sel.append((ks, t))
    if vals.get("format") == "json":
        out = {}
        for ks, t in sel:
            out.setdefault(ks, {})[t] = n.table_dirs(ks, t)
        o.p(json.dumps(out, indent=2))
        return
    last = None
    for ks, t in sel:
        if ks != last:
            o.p("Keyspace: %s" % ks)
            last = ks
        o.p("\tTable: %s" % t)
        o.p("\tPaths:")
        for d in n.table_dirs(ks, t):
            o.p("\t\t%s" % d)
        o.p()
