"""Snapshots: hard links, manifest.json / schema.cql per version, listing sizes, clearing, TTL."""

import json
import os
import re

from . import schema, sstable, util

EPHEMERAL_MARKER = "ephemeral.snapshot"
TABLE_DIR_RE = re.compile(r"^(?P<table>\w+)-(?P<id>[0-9a-f]{32})$")


def json_simple_string(s):
    """json-simple's escaping (it escapes `/` as `\\/`)."""
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "/":
            out.append("\\/")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F:
            out.append("\\u%04X" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def render_manifest(profile, files, created_ms, expires_ms, ephemeral):
    if profile.manifest_style == "json-simple":
        return '{"files":[%s]}\n' % ",".join(json_simple_string(f) for f in files)
    created = json.dumps(util.format_instant_ms(created_ms))
    expires = json.dumps(util.format_instant_ms(expires_ms)) if expires_ms else "null"
    if profile.manifest_style == "jackson":
        return '{"files":[%s],"created_at":%s,"expires_at":%s}' % (
            ",".join(json.dumps(f) for f in files), created, expires)
    arr = "[ %s ]" % ", ".join(json.dumps(f) for f in files) if files else "[ ]"
    return (
        '{\n  "files" : %s,\n  "created_at" : %s,\n  "expires_at" : %s,\n  "ephemeral" : %s\n}'
        % (arr, created, expires, "true" if ephemeral else "false")
    )


def read_manifest(path):
    """Parse any manifest shape -> dict (files, created_at ms, expires_at ms, ephemeral)."""
    try:
        with open(path, encoding="utf-8") as f:
            m = json.load(f)
    except (OSError, ValueError):
        return None
    out = {"files": m.get("files", []), "created_at": None, "expires_at": None,
           "ephemeral": bool(m.get("ephemeral", False))}
    for k in ("created_at", "expires_at"):
        if m.get(k):
            try:
                out[k] = util.parse_instant(m[k])
            except ValueError:
                pass
    return out


def validate_tag(profile, tag):
    if not tag:
        raise util.EmuError("You must supply a snapshot name.")
    if profile.major == (4, 0) and ":" in tag:
        raise util.EmuError("Snapshot name cannot contain :")
    if profile.major >= (4, 1) and "/" in tag:
        raise util.EmuError("Snapshot name cannot contain /")


def snapshot_exists(node, ks, t, tag):
    return any(os.path.exists(os.path.join(d, "snapshots", tag)) for d in node.table_dirs(ks, t))


def take(node, tag, targets, skip_flush=False, ttl_seconds=None, ephemeral=False, check_keyspaces=()):
    """Snapshot every (ks, table) in targets. check_keyspaces: keyspace-level existence checks."""
    validate_tag(node.profile, tag)
    if ttl_seconds is not None and ttl_seconds < 60:
        raise util.EmuError("ttl for snapshot must be at least 60 seconds")
    for ks in check_keyspaces:
        for _ks, t in node.all_tables([ks]):
            if snapshot_exists(node, ks, t, tag):
                raise util.EmuError("Snapshot %s already exists." % tag)
    for ks, t in targets:
        if snapshot_exists(node, ks, t, tag):
            raise util.EmuError("Snapshot %s already exists." % tag)
    crash_at = int(os.environ.get("CASSEMU_CRASH_SNAPSHOT_AFTER_LINKS") or 0)
    for i, (ks, t) in enumerate(targets, 1):
        if not skip_flush:
            node.flush(ks, t)
        snapshot_table(node, ks, t, tag, ttl_seconds, ephemeral, crash=(i == crash_at))


def die(node):
    """The JVM dies (kill -9, OOM): memtables are lost, nothing more is written."""
    node.state["running"] = False
    node.state["pending"] = {}
    node.state["backup_runtime"] = None
    raise util.EmuError("java.rmi.UnmarshalException: Error unmarshaling return header; "
                        "nested exception is: java.io.EOFException")


def snapshot_table(node, ks, t, tag, ttl_seconds=None, ephemeral=False, crash=False):
    """Links one table's sstables, then writes its manifest.json (and schema.cql) - in this
    order, as ColumnFamilyStore.snapshotWithoutMemtable does; `crash`: the node dies between
    the links and the manifest (test knob CASSEMU_CRASH_SNAPSHOT_AFTER_LINKS=N, N-th table)."""
    created = util.now_ms()
    files = []
    for key, idx, _dirs in node.cfs_list(ks, t):
        for desc in node.loaded_descs(key):
            tdir = os.path.dirname(desc.directory) if idx else desc.directory
            target = os.path.join(tdir, "snapshots", tag, "." + idx) if idx else os.path.join(tdir, "snapshots", tag)
            data = desc.path("Data.db")
            if not os.path.exists(data):
                raise util.FSWriteError("Tried to hard link to file that does not exist %s" % data)
            sstable.hard_link_sstable(desc, target)
            rel = desc.prefix + "-Data.db"
            files.append(("." + idx + "/" + rel) if idx else rel)
    if crash:
        die(node)
    files = util.java_hashmap_order(files)
    tdirs = node.table_dirs(ks, t)
    expires = created + ttl_seconds * 1000 if ttl_seconds else None
    mdir = os.path.join(node.rng.choice(tdirs), "snapshots", tag)
    util.makedirs(mdir)
    util.write_file(os.path.join(mdir, "manifest.json"),
                    render_manifest(node.profile, files, created, expires, ephemeral))
    if node.profile.schema_cql and not node.is_system(ks):
        sdir = os.path.join(node.rng.choice(tdirs), "snapshots", tag)
        util.makedirs(sdir)
        util.write_file(os.path.join(sdir, "schema.cql"),
                        schema.render_schema_cql(node.profile, ks, t, node.table(ks, t)))
    if ephemeral and not node.profile.ephemeral_in_manifest:
        edir = os.path.join(node.rng.choice(tdirs), "snapshots", tag)
        util.makedirs(edir)
        util.write_file(os.path.join(edir, EPHEMERAL_MARKER), "")


def auto_snapshot(node, ks, t, prefix):
    """DROP/TRUNCATE auto snapshot `<prefix>-<millis>-<table>` (if auto_snapshot is on)."""
    if not node.yaml_flag("auto_snapshot", True):
        return None
    if node.profile.major >= (5, 0) and not node.table(ks, t).get("options", {}).get("allow_auto_snapshot", True):
        return None
    tag = "%s-%d-%s" % (prefix, util.now_ms(), t)
    ttl = node.yaml.get("auto_snapshot_ttl") if node.profile.ttl else None
    node.flush(ks, t)
    snapshot_table(node, ks, t, tag, parse_ttl(str(ttl)) if ttl else None)
    return tag


def parse_ttl(text):
    m = re.match(r"^(\d+)\s*(s|m|h|d|ms|us|ns)?$", text.strip(), re.I)
    if not m:
        raise util.EmuError("Invalid duration: %s" % text)
    n = int(m.group(1))
    unit = (m.group(2) or "s").lower()
    return {"s": n, "m": n * 60, "h": n * 3600, "d": n * 86400, "ms": n // 1000,
            "us": n // 10**6, "ns": n // 10**9}[unit]


# -- discovery --------------------------------------------------------------------------------


class SnapshotInfo:
    def __init__(self, tag, ks, table, table_id):
        self.tag = tag
        self.ks = ks
        self.table = table
        self.table_id = table_id
        self.dirs = []  # (table dir, snapshot dir)

    def manifest(self):
        for _tdir, sdir in self.dirs:
            m = read_manifest(os.path.join(sdir, "manifest.json"))
            if m is not None:
                return m
        return None

    def ephemeral(self, profile):
        if profile.ephemeral_in_manifest:
            m = self.manifest()
            return bool(m and m["ephemeral"])
        return any(os.path.exists(os.path.join(s, EPHEMERAL_MARKER)) for _t, s in self.dirs)

    def sizes(self):
        """(true size, size on disk): true size counts files whose live same-named file is gone."""
        true_size = on_disk = 0
        for tdir, sdir in self.dirs:
            for root, _dirs, files in os.walk(sdir):
                for f in files:
                    p = os.path.join(root, f)
                    try:
                        size = os.path.getsize(p)
                    except OSError:
                        continue
                    on_disk += size
                    live = os.path.join(tdir, os.path.relpath(p, sdir))
                    if not os.path.exists(live):
                        true_size += size
        return true_size, on_disk


def discover(node, live_only, skip_local_system=False):
    """All snapshots on disk; live_only: only tables (and ids) of the current schema."""
    found = {}
    order = []
    if live_only:
        for ks, t in node.all_tables():
            if skip_local_system and ks in schema.LOCAL_SYSTEM_KEYSPACES:
                continue
            tid = node.table(ks, t)["id"]
            for tdir in node.table_dirs(ks, t):
                _collect(found, order, ks, t, tid, tdir)
    else:
        for dd in node.dirs["data"]:
            for ks in _listdir(dd):
                for child in _listdir(os.path.join(dd, ks)):
                    m = TABLE_DIR_RE.match(child)
                    if not m:
                        continue
                    _collect(found, order, ks, m.group("table"), m.group("id"), os.path.join(dd, ks, child))
    return [found[k] for k in order]


def _listdir(p):
    try:
        return sorted(os.listdir(p))
    except OSError:
        return []


def _collect(found, order, ks, t, tid, tdir):
    sroot = os.path.join(tdir, "snapshots")
    for tag in _listdir(sroot):
        sdir = os.path.join(sroot, tag)
        if not os.path.isdir(sdir):
            continue
        key = (tag, ks, t, tid)
        if key not in found:
            found[key] = SnapshotInfo(tag, ks, t, tid)
            order.append(key)
        found[key].dirs.append((tdir, sdir))


def clear(node, tag, keyspaces, older_than_ms=None):
    """clearsnapshot: filesystem driven over every data dir; empty tag = all snapshots."""
    removed = []
    for dd in node.dirs["data"]:
        for ks in _listdir(dd):
            if keyspaces and ks not in keyspaces:
                continue
            for child in _listdir(os.path.join(dd, ks)):
                sroot = os.path.join(dd, ks, child, "snapshots")
                if not os.path.isdir(sroot):
                    continue
                tags = [tag] if tag else _listdir(sroot)
                for tg in tags:
                    sdir = os.path.join(sroot, tg)
                    if not os.path.isdir(sdir):
                        continue
                    if node.profile.ephemeral_in_manifest:
                        m = _manifest_anywhere(node, ks, child, tg)
                        if m and m["ephemeral"]:
                            continue
                        if older_than_ms is not None and (not m or not m["created_at"] or m["created_at"] >= older_than_ms):
                            continue
                    util.require_writable_dir(sroot)
                    util.rmtree(sdir)
                    removed.append(sdir)
                if not tag and older_than_ms is None and os.path.isdir(sroot) and not os.listdir(sroot):
                    os.rmdir(sroot)
    return removed


def _manifest_anywhere(node, ks, child, tag):
    for dd in node.dirs["data"]:
        m = read_manifest(os.path.join(dd, ks, child, "snapshots", tag, "manifest.json"))
        if m is not None:
            return m
    return None


def remove_snapshot_everywhere(info):
    for _tdir, sdir in info.dirs:
        util.rmtree(sdir)
