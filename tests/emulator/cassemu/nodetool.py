"""`nodetool` double: options, output strings, padding, units and exit codes per version."""

import json
import os
import sys
import time
import uuid

from . import node as node_mod
from . import schema, snapshots, sstable, startup, util

HELP_HINT = "See 'nodetool help' or 'nodetool help <command>'."

GLOBAL_OPTS = {"-h": "host", "--host": "host", "-p": "port", "--port": "port",
               "-u": "username", "--username": "username", "-pw": "password",
               "--password": "password", "-pwf": "password_file", "--password-file": "password_file"}
GLOBAL_FLAGS = {"-pp": "print_port", "--print-port": "print_port"}


class Out:
    def __init__(self):
        self.out = []
        self.err = []

    def p(self, s=""):
        self.out.append(s + "\n")

    def e(self, s=""):
        self.err.append(s + "\n")


def parse_args(argv, opts, flags):
    """Airline-like parsing: known options anywhere, `--` ends options, rest positional."""
    vals, pos = {}, []
    i = 0
    allo = dict(GLOBAL_OPTS, **opts)
    allf = dict(GLOBAL_FLAGS, **flags)
    while i < len(argv):
        a = argv[i]
        if a == "--":
            pos += argv[i + 1:]
            break
        if a in allf:
            vals[allf[a]] = True
        elif a in allo:
            if i + 1 >= len(argv):
                raise util.UsageError("Required values for option '%s' not provided" % allo[a])
            vals[allo[a]] = argv[i + 1]
            i += 1
        elif "=" in a and a.split("=", 1)[0] in allo:
            k, v = a.split("=", 1)
            vals[allo[k]] = v
        elif a.startswith("-") and len(a) > 1:
            raise util.UsageError("Found unexpected parameters: [%s]" % a)
        else:
            pos.append(a)
        i += 1
    return vals, pos


def connect(vals):
    """Reach the node like JMX would: host/port, running, credentials."""
    host = vals.get("host", "127.0.0.1")
    port = vals.get("port", "7199")
    n = node_mod.Node.load()
    refused = util.ConnectError(
        "Failed to connect to '%s:%s' - ConnectException: 'Connection refused'." % (host, port))
    if not n.running or not node_mod.answers_on(n, host) or str(port) != str(n.state.get("jmx_port", 7199)):
        raise refused
    jmx = n.state.get("jmx")
    if jmx:
        user, pw = vals.get("username"), vals.get("password")
        if pw is None and vals.get("password_file") and user:
            try:
                with open(vals["password_file"], encoding="utf-8") as f:
                    for line in f:
                        parts = line.split()
                        if len(parts) >= 2 and parts[0] == user and not line.startswith("#"):
                            pw = parts[1]
            except OSError as e:
                raise util.EmuError("%s (No such file or directory)" % e.filename)
        if user is None or pw is None:
            raise util.ConnectError("Failed to connect to '%s:%s' - SecurityException: "
                                    "'Authentication failed! Credentials required'." % (host, port))
        if user != jmx["user"] or pw != jmx["password"]:
            raise util.ConnectError("Failed to connect to '%s:%s' - SecurityException: "
                                    "'Authentication failed! Invalid username or password'." % (host, port))
    return n


def size(n, v):
    return util.stringify_file_size(v, n.profile.binary_units)


# -- commands -----------------------------------------------------------------------------------


def c_version(n, o, vals, pos):
    o.p("ReleaseVersion: %s" % n.profile.release)


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


def c_snapshot(n, o, vals, pos):
    p = n.profile
    tag = vals.get("tag", str(util.now_ms()))
    kt = vals.get("ktlist")
    table = vals.get("table")
    options = {"skipFlush": "true" if vals.get("skip_flush") else "false"}
    ttl = None
    if vals.get("ttl") is not None:
        ttl = snapshots.parse_ttl(vals["ttl"])
        options["ttl"] = vals["ttl"].strip()
    opt_text = "{%s}" % ", ".join("%s=%s" % (k, options[k]) for k in util.java_hashmap_order(options))
    if kt:
        kt = kt.replace(" ", "")
        if pos or table:
            raise util.EmuError("When specifying the Keyspace columfamily list for a snapshot, "
                                "you should not specify columnfamily")
        label = "[%s]" % kt
        entities = kt.split(",")
    else:
        if table and len(pos) != 1:
            raise util.EmuError("When specifying the table for a snapshot, you must specify one and only one keyspace")
        label = "[all keyspaces]" if not pos else "[%s]" % ", ".join(pos)
        entities = None
        if pos and "." in pos[0] and p.positional_kt:
            entities = list(pos)
    line = "Requested creating snapshot(s) for %s" % label
    if tag:
        line += " with snapshot name [%s]" % tag
    if p.snapshot_options_in_output:
        line += " and options %s" % opt_text
    o.p(line)
    if entities:
        targets = []
        for e in entities:
            parts = [x for x in e.split(".") if x]
            if len(parts) != 2:
                raise util.UsageError("Cannot take a snapshot on secondary index or invalid column family name. "
                                      "You must supply a column family name in the form of keyspace.columnfamily")
            n.keyspace(parts[0])
            n.table(parts[0], parts[1])
            targets.append((parts[0], parts[1]))
        snapshots.take(n, tag, targets, bool(vals.get("skip_flush")), ttl)
    else:
        kss = pos or list(n.keyspaces)
        for ks in kss:
            n.keyspace(ks)
        if table:
            n.table(kss[0], table)
            snapshots.take(n, tag, [(kss[0], table)], bool(vals.get("skip_flush")), ttl)
        else:
            targets = [(ks, t) for ks in kss for t in n.keyspaces[ks]["tables"]]
            snapshots.take(n, tag, targets, bool(vals.get("skip_flush")), ttl, check_keyspaces=kss)
    o.p("Snapshot directory: %s" % tag)


def c_listsnapshots(n, o, vals, pos):
    p = n.profile
    live_only = not p.list_dropped_snapshots
    infos = snapshots.discover(n, live_only=live_only, skip_local_system=p.list_hides_local_system)
    rows = []
    show_eph = bool(vals.get("ephemeral"))
    for info in infos:
        m = info.manifest() if p.ttl else None
        if p.major >= (5, 0) and info.ephemeral(p) and not show_eph:
            continue
        if vals.get("no_ttl") and m and m["expires_at"]:
            continue
        true_size, on_disk = info.sizes()
        row = [info.tag, info.ks, info.table, size(n, true_size), size(n, on_disk)]
        if p.ttl:
            row += [util.format_instant_ms(m["created_at"]) if m and m["created_at"] else "",
                    util.format_instant_ms(m["expires_at"]) if m and m["expires_at"] else ""]
        if show_eph:
            row.append("true" if info.ephemeral(p) else "false")
        rows.append(row)
    o.p("Snapshot Details: ")
    if not rows:
        o.p("There are no snapshots")
        return
    header = ["Snapshot name", "Keyspace name", "Column family name", "True size", "Size on disk"]
    if p.ttl:
        header += ["Creation time", "Expiration time"]
    if show_eph:
        header.append("Ephemeral")
    order = util.java_hashmap_order([r[0] for r in rows])
    rows.sort(key=lambda r: order.index(r[0]))
    o.out.append(util.table_builder([header] + rows))
    total = sum(i.sizes()[0] for i in snapshots.discover(n, live_only=True))
    o.p("\nTotal TrueDiskSpaceUsed: %s\n" % size(n, total))


def c_clearsnapshot(n, o, vals, pos):
    p = n.profile
    tag = vals.get("tag", "")
    all_ = bool(vals.get("all"))
    older = None
    if vals.get("older_than"):
        older = util.now_ms() - snapshots.parse_ttl(vals["older_than"]) * 1000
    if vals.get("older_than_timestamp"):
        older = util.parse_instant(vals["older_than_timestamp"])
    label = "[all keyspaces]" if not pos else "[%s]" % ", ".join(pos)
    if p.clearsnapshot_needs_tag:
        if not tag and not all_:
            if p.major >= (5, 0):
                raise util.UsageError("Specify snapshot name or --all")
            raise util.EmuError("Specify snapshot name or --all")
        if tag and all_:
            if p.major >= (5, 0):
                raise util.UsageError("Specify only one of snapshot name or --all")
            raise util.EmuError("Specify only one of snapshot name or --all")
        line = "Requested clearing snapshot(s) for %s" % label
        line += " with [all snapshots]" if all_ else " with snapshot name [%s]" % tag
        if vals.get("older_than"):
            line += " older than %d seconds." % snapshots.parse_ttl(vals["older_than"])
        elif vals.get("older_than_timestamp"):
            line += " older than timestamp %s." % vals["older_than_timestamp"]
    else:
        line = "Requested clearing snapshot(s) for %s" % label
        if tag:
            line += " with snapshot name [%s]" % tag
    o.p(line)
    snapshots.clear(n, tag, pos, older)


def c_info(n, o, vals, pos):
    p = n.profile
    up = not n.state.get("drained")
    lines = [("ID", n.state["host_id"]), ("Gossip active", "true" if up else "false")]
    if (3, 0) <= p.major < (4, 0) or p.major < (3, 0):
        lines.append(("Thrift active", "false"))
    lines.append(("Native Transport active", "true" if up and n.state.get("native_transport", True) else "false"))
    load = n.live_size()
    lines.append(("Load", size(n, load)))
    if p.major >= (5, 0):
        lines.append(("Uncompressed load", size(n, load * 2)))
    uptime = (util.now_ms() - n.state.get("started_ms", util.now_ms())) // 1000
    lines += [("Generation No", str(n.state.get("generation_no", 0) if up else 0)),
              ("Uptime (seconds)", str(uptime)), ("Heap Memory (MB)", "121.30 / 975.13"),
              ("Off Heap Memory (MB)", "0.00"), ("Data Center", n.state["dc"]), ("Rack", n.state["rack"]),
              ("Exceptions", "0")]
    u = "MiB" if p.binary_units else "MB"
    lines += [
        ("Key Cache", "entries 0, size 0 bytes, capacity 48 %s, 0 hits, 0 requests, NaN recent hit rate, 14400 save period in seconds" % u),
        ("Row Cache", "entries 0, size 0 bytes, capacity 0 bytes, 0 hits, 0 requests, NaN recent hit rate, 0 save period in seconds"),
        ("Counter Cache", "entries 0, size 0 bytes, capacity 24 %s, 0 hits, 0 requests, NaN recent hit rate, 7200 save period in seconds" % u),
    ]
    if p.major >= (3, 11):
        lines.append(("Chunk Cache", "entries 0, size 0 bytes, capacity 211 MiB, 0 misses, 0 requests, NaN recent hit rate, NaN microseconds miss latency"))
        lines.append(("Percent Repaired", "0.0%"))
    toks = n.state["tokens"]
    if vals.get("tokens"):
        lines += [("Token", str(t)) for t in toks]
    elif len(toks) == 1:
        lines.append(("Token", str(toks[0])))
    else:
        lines.append(("Token", "(invoke with -T/--tokens to see all %d tokens)" % len(toks)))
    for k, v in lines:
        o.p("%-23s: %s" % (k, v))


def _nodes(n):
    me = {"address": n.address, "host_id": n.state["host_id"], "dc": n.state["dc"], "rack": n.state["rack"],
          "tokens": n.state["tokens"], "up": True, "load": n.live_size()}
    return [me] + [dict(p, load=0) for p in n.state.get("peers", [])]


def _ownership_note(n, pos):
    if pos:
        return False
    repl = {json.dumps(v["replication"], sort_keys=True) for k, v in n.keyspaces.items() if not v.get("system")}
    return len(repl) > 1


def c_status(n, o, vals, pos):
    p = n.profile
    if pos:
        n.keyspace(pos[0])
    nodes = _nodes(n)
    unknown = _ownership_note(n, pos)
    pp = vals.get("print_port") and p.print_port
    for dc in sorted({x["dc"] for x in nodes}):
        members = [x for x in nodes if x["dc"] == dc]
        title = "Datacenter: %s" % dc
        o.p(title)
        o.p("=" * len(title))
        o.p("Status=Up/Down")
        o.p("|/ State=Normal/Leaving/Joining/Moving")
        rf = 1
        if pos:
            rf = schema.replication_factor(n.keyspaces[pos[0]])
        owns_each = "?" if unknown else "%s%%" % util.java_decimal_format(min(100.0, 100.0 * rf / len(nodes)) if pos else 100.0 / len(nodes) * 1.0)
        rows = []
        for x in members:
            addr = x["address"] + (":7000" if pp else "")
            st = ("U" if x.get("up", True) else "D") + "N"
            load = size(n, x["load"])
            owns = owns_each if "%" not in owns_each else "%.1f%%" % float(owns_each[:-1])
            rows.append([st, addr, load, str(len(x["tokens"])), owns, x["host_id"], x["rack"]])
        if p.major >= (4, 0):
            header = ["--", "Address", "Load", "Tokens", "Owns (effective)" if not unknown else "Owns", "Host ID", "Rack"]
            if pos:
                header[4] = "Owns (effective)"
            o.out.append(util.table_builder([header] + rows, "  "))
        else:
            w = max(len(r[1]) for r in rows + [["", "Address"]])
            fmt = "%s%s  %-" + str(w) + "s  %-9s  %-11s  %-16s  %-36s  %s"
            o.p(fmt % ("-", "-", "Address", "Load", "Tokens", "Owns (effective)" if not unknown else "Owns", "Host ID", "Rack"))
            for r in rows:
                o.p(fmt % (r[0][0], r[0][1], r[1], r[2], r[3], r[4], r[5], r[6]))
        o.p()
    if unknown:
        o.p("Note: Non-system keyspaces don't have the same replication settings, effective ownership information is meaningless")


def c_describecluster(n, o, vals, pos):
    p = n.profile
    sv = str(uuid.uuid5(uuid.NAMESPACE_OID, json.dumps(n.keyspaces, sort_keys=True)))
    addrs = [x["address"] for x in _nodes(n)]
    o.p("Cluster Information:")
    o.p("\tName: %s" % n.state["cluster_name"])
    if p.major >= (3, 11):
        o.p("\tSnitch: org.apache.cassandra.locator.GossipingPropertyFileSnitch")
        o.p("\tDynamicEndPointSnitch: enabled")
    else:
        o.p("\tSnitch: org.apache.cassandra.locator.DynamicEndpointSnitch")
    o.p("\tPartitioner: org.apache.cassandra.dht.Murmur3Partitioner")
    o.p("\tSchema versions:")
    sfx = ":7000" if p.major >= (4, 0) else ""
    o.p("\t\t%s: [%s]" % (sv, ", ".join(a + sfx for a in addrs)))
    o.p()
    if p.major >= (4, 0):
        nodes = _nodes(n)
        down = sum(1 for x in nodes if not x.get("up", True))
        o.p("Stats for all nodes:")
        o.p("\tLive: %d" % (len(nodes) - down))
        o.p("\tJoining: 0")
        o.p("\tMoving: 0")
        o.p("\tLeaving: 0")
        o.p("\tUnreachable: %d" % down)
        o.p()
        o.p("Data Centers: ")
        for dc in sorted({x["dc"] for x in nodes}):
            members = [x for x in nodes if x["dc"] == dc]
            o.p("\t%s #Nodes: %d #Down: %d" % (dc, len(members), sum(1 for x in members if not x.get("up", True))))
        o.p()
        o.p("Database versions:")
        o.p("\t%s: [%s]" % (p.release, ", ".join(a + ":7000" for a in addrs)))
        o.p()
        o.p("Keyspaces:")
        for ks, kinfo in n.keyspaces.items():
            repl = kinfo["replication"]
            o.p("\t%s -> Replication class: %s {%s}" % (
                ks, repl.get("class", "").split(".")[-1],
                ", ".join("%s=%s" % (k, v) for k, v in repl.items() if k != "class")))
        o.p()


def c_ring(n, o, vals, pos):
    nodes = _nodes(n)
    w = max(len(x["address"]) for x in nodes + [{"address": "Address"}])
    fmt = "%-" + str(w) + "s  %-12s%-7s%-8s%-16s%-20s%-44s"
    unknown = _ownership_note(n, pos)
    for dc in sorted({x["dc"] for x in nodes}):
        toks = sorted((t, x) for x in nodes if x["dc"] == dc for t in x["tokens"])
        o.p()
        o.p("Datacenter: %s" % dc)
        o.p("==========")
        o.p(fmt % ("Address", "Rack", "Status", "State", "Load", "Owns", "Token"))
        o.p(fmt % ("", "", "", "", "", "", str(toks[-1][0])))
        for t, x in toks:
            owns = "?" if unknown else "%.2f%%" % (100.0 / len(nodes))
            o.p(fmt % (x["address"], x["rack"], "Up" if x.get("up", True) else "Down", "Normal",
                       size(n, x["load"]), owns, str(t)))
        o.p()
    if any(len(x["tokens"]) > 1 for x in nodes):
        o.p('  Warning: "nodetool ring" is used to output all the tokens of a node.')
        o.p('  To view status related info of a node use "nodetool status" instead.\n')
    if unknown:
        o.p("  Note: Non-system keyspaces don't have the same replication settings, effective ownership information is meaningless")


def c_getendpoints(n, o, vals, pos):
    if len(pos) != 3:
        raise util.UsageError("getendpoints requires keyspace, table and partition key arguments")
    n.table(pos[0], pos[1])
    rf = schema.replication_factor(n.keyspace(pos[0]))
    nodes = _nodes(n)
    start = sum(pos[2].encode()) % len(nodes)
    for i in range(min(rf, len(nodes))):
        addr = nodes[(start + i) % len(nodes)]["address"]
        o.p(addr + (":7000" if vals.get("print_port") and n.profile.print_port else ""))


def _ts():
    t = time.time()
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) + ",%03d" % (int(t * 1000) % 1000)


def c_repair(n, o, vals, pos):
    kss = [pos[0]] if pos else [k for k, v in n.keyspaces.items()
                               if not v["replication"].get("class", "").endswith("LocalStrategy")]
    tables = pos[1:] if pos else []
    full = bool(vals.get("full"))
    for ks in kss:
        n.keyspace(ks)
        for t in tables:
            n.table(ks, t)
        if schema.replication_factor(n.keyspaces[ks]) < 2 or len(_nodes(n)) < 2 and False:
            o.p("[%s] Replication factor is 1. No repair is needed for keyspace '%s'" % (_ts(), ks))
            continue
        n.state["repair_cmd"] = n.state.get("repair_cmd", 0) + 1
        cmd = n.state["repair_cmd"]
        start = time.time()
        o.p("[%s] Starting repair command #%d (%s), repairing keyspace %s with repair options "
            "(parallelism: %s, primary range: %s, incremental: %s, job threads: 1, ColumnFamilies: [%s], "
            "dataCenters: [], hosts: [], previewKind: NONE, # of ranges: %d, pull repair: false, "
            "force repair: false, optimise streams: false, ignore unreplicated keyspaces: false, "
            "repairPaxos: true, paxosOnly: false)"
            % (_ts(), cmd, uuid.uuid1(), ks, "sequential" if vals.get("seq") else "parallel",
               "true" if vals.get("pr") else "false", "false" if full else "true", ", ".join(tables),
               len(n.state["tokens"])))
        for t in (tables or list(n.keyspaces[ks]["tables"])):
            if not full:
                n.flush(ks, t)
                n.rewrite_stats(ks, t)
        o.p("[%s] Repair session %s for range [(%d,%d]] finished" % (_ts(), uuid.uuid1(), n.state["tokens"][0], n.state["tokens"][-1]))
        o.p("[%s] Repair completed successfully" % _ts())
        o.p("[%s] Repair command #%d finished in %d seconds" % (_ts(), cmd, int(time.time() - start)))


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


def _rebuild_indexes(n, ks, t, descs):
    ver, fmt = n.write_version()
    for idx in sorted(n.table(ks, t).get("indexes", {})):
        key = n.cfs_key(ks, t, idx)
        for d in sorted({x.directory for x in descs}):
            idir = os.path.join(d, "." + idx)
            util.makedirs(idir)
            desc = sstable.clone_fixture(ver, fmt, idir, n.new_id(key, idir))
            n.track(key, desc)
            if n.backups_enabled(ks, t):
                n.backup_link(desc, idx)


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
            n.track(key, new)
            added.append(new)
            if n.backups_enabled(ks, t):
                n.backup_link(new, None)
    if added:
        _rebuild_indexes(n, ks, t, added)


def c_import(n, o, vals, pos):
    if len(pos) < 3:
        raise util.UsageError("import requires keyspace, table name and directories")
    ks, t, srcs = pos[0], pos[1], pos[2:]
    n.table(ks, t)
    if vals.get("quick"):
        o.p("Doing a quick import - skipping sstable verification and row cache invalidation")
    verify = not (vals.get("no_verify") or vals.get("quick"))
    key = n.cfs_key(ks, t, None)
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
        moved = []
        try:
            for d in descs:
                target = n.rng.choice(n.table_dirs(ks, t))
                util.require_writable_dir(target)
                new = sstable.rename_sstable(d, target, n.new_id(key, target), copy=bool(vals.get("copy_data")))
                moved.append((d, new))
        except (OSError, util.EmuError):
            for d, new in reversed(moved):
                if vals.get("copy_data"):
                    sstable.delete_sstable(new)
                else:
                    sstable.rename_sstable(new, d.directory, d.gen)
            failed.append(src)
            continue
        for _d, new in moved:
            n.track(key, new)
            added.append(new)
            if n.backups_enabled(ks, t):
                n.backup_link(new, None)
    if added:
        _rebuild_indexes(n, ks, t, added)
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


COMMANDS = {
    "version": (c_version, {}, {}),
    "statusbackup": (c_statusbackup, {}, {}),
    "enablebackup": (c_enablebackup, {}, {}),
    "disablebackup": (c_disablebackup, {}, {}),
    "flush": (c_flush, {}, {}),
    "drain": (c_drain, {}, {}),
    "snapshot": (c_snapshot, {"-t": "tag", "--tag": "tag", "-cf": "table", "--column-family": "table",
                              "--table": "table", "-kt": "ktlist", "--kt-list": "ktlist", "-kc": "ktlist",
                              "--kc.list": "ktlist", "--ttl": "ttl"},
                 {"-sf": "skip_flush", "--skip-flush": "skip_flush"}),
    "listsnapshots": (c_listsnapshots, {}, {"-nt": "no_ttl", "--no-ttl": "no_ttl", "-e": "ephemeral",
                                            "--ephemeral": "ephemeral"}),
    "clearsnapshot": (c_clearsnapshot, {"-t": "tag", "--tag": "tag", "--older-than": "older_than",
                                        "--older-than-timestamp": "older_than_timestamp"}, {"--all": "all"}),
    "info": (c_info, {}, {"-T": "tokens", "--tokens": "tokens"}),
    "status": (c_status, {}, {"-r": "resolve_ip", "--resolve-ip": "resolve_ip"}),
    "describecluster": (c_describecluster, {}, {}),
    "ring": (c_ring, {}, {"-r": "resolve_ip"}),
    "getendpoints": (c_getendpoints, {}, {}),
    "repair": (c_repair, {"-st": "st", "-et": "et", "-j": "jobs", "-dc": "dc", "-hosts": "hosts"},
               {"-full": "full", "--full": "full", "-pr": "pr", "--partitioner-range": "pr", "-seq": "seq",
                "--sequential": "seq", "-dcpar": "dcpar", "-local": "local", "-os": "os", "-iuk": "iuk",
                "-inc": "inc"}),
    "refresh": (c_refresh, {}, {}),
    "import": (c_import, {}, {"-l": "keep_level", "--keep-level": "keep_level", "-r": "keep_repaired",
                              "--keep-repaired": "keep_repaired", "-v": "no_verify", "--no-verify": "no_verify",
                              "-t": "no_tokens", "--no-tokens": "no_tokens", "-c": "no_invalidate",
                              "--no-invalidate-caches": "no_invalidate", "-q": "quick", "--quick": "quick",
                              "-e": "extended", "--extended-verify": "extended", "-p": "copy_data",
                              "--copy-data": "copy_data"}),
    "datapaths": (c_datapaths, {"-F": "format", "--format": "format"}, {}),
}


def available(profile, name, vals_flags):
    if name == "import" and not profile.import_cmd:
        return False
    if name == "datapaths" and not profile.datapaths:
        return False
    return True


def run(argv):
    """Returns (exit code, stdout text, stderr text)."""
    o = Out()
    # find the command: first positional that is not an option value
    cmd = None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in GLOBAL_OPTS:
            i += 2
            continue
        if a in GLOBAL_FLAGS:
            i += 1
            continue
        cmd = a
        break
    if cmd is None:
        o.p("usage: nodetool [(-h <host> | --host <host>)] [(-p <port> | --port <port>)] <command> [<args>]")
        return 1, "".join(o.out), "".join(o.err)
    rest = argv[:i] + argv[i + 1:]
    try:
        with node_mod.lock():
            try:
                n0 = node_mod.Node.load()
            except util.EmuError:
                n0 = None
            if cmd not in COMMANDS or (n0 and not available(n0.profile, cmd, None)):
                raise util.UsageError("Found unexpected parameters: [%s]" % cmd)
            fn, opts, flags = COMMANDS[cmd]
            opts = dict(opts)
            flags = dict(flags)
            if n0 is not None:
                if cmd == "snapshot" and not n0.profile.skip_flush:
                    flags = {k: v for k, v in flags.items() if v != "skip_flush"}
                if cmd == "snapshot" and not n0.profile.ttl:
                    opts.pop("--ttl", None)
                if cmd == "clearsnapshot" and not n0.profile.clearsnapshot_needs_tag:
                    flags.pop("--all", None)
                if cmd == "clearsnapshot" and n0.profile.major < (5, 0):
                    opts.pop("--older-than", None)
                    opts.pop("--older-than-timestamp", None)
                if cmd == "listsnapshots" and not n0.profile.ttl:
                    flags = {}
                if cmd == "listsnapshots" and n0.profile.major < (5, 0):
                    flags = {k: v for k, v in flags.items() if v != "ephemeral"}
            vals, pos = parse_args(rest, opts, flags)
            if n0 is None:
                raise util.ConnectError("Failed to connect to '%s:%s' - ConnectException: 'Connection refused'."
                                        % (vals.get("host", "127.0.0.1"), vals.get("port", "7199")))
            n = connect(vals)
            try:
                rc = fn(n, o, vals, pos) or 0
            finally:
                n.save()
    except util.ConnectError as e:
        o.e("nodetool: %s" % e)
        return 1, "".join(o.out), "".join(o.err)
    except util.UsageError as e:
        o.p("nodetool: %s" % e)
        o.p(HELP_HINT)
        return 1, "".join(o.out), "".join(o.err)
    except (util.EmuError, OSError) as e:
        msg = str(e)
        o.e("error: %s" % msg)
        o.e("-- StackTrace --")
        cls = "java.io.IOException" if not isinstance(e, util.FSWriteError) else "org.apache.cassandra.io.FSWriteError"
        o.e("%s: %s" % (cls, msg))
        o.e("\tat org.apache.cassandra.service.StorageService.takeSnapshot(StorageService.java:0)" if cmd == "snapshot"
            else "\tat org.apache.cassandra.tools.NodeTool$NodeToolCmd.run(NodeTool.java:0)")
        return 2, "".join(o.out), "".join(o.err)
    return rc, "".join(o.out), "".join(o.err)


def main(argv=None):
    rc, out, err = run(sys.argv[1:] if argv is None else argv)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return rc
