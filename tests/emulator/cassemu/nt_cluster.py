"""nodetool commands about the node and its cluster: version, info, status, describecluster, ring, getendpoints, repair."""

import json
import os
import time
import uuid

from . import node as node_mod
from . import schema, util
from .ntcommon import size


def c_version(n, o, vals, pos):
    o.p("ReleaseVersion: %s" % n.profile.release)


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
        rf = schema.replication_factor(n.keyspaces[pos[0]]) if pos else 1
        owns = "?" if unknown else "%.1f%%" % min(100.0, 100.0 * rf / len(nodes))
        rows = []
        for x in members:
            addr = x["address"] + (":7000" if pp else "")
            st = ("U" if x.get("up", True) else "D") + "N"
            rows.append([st, addr, size(n, x["load"]), str(len(x["tokens"])), owns, x["host_id"], x["rack"]])
        if p.major >= (4, 0):
            header = ["--", "Address", "Load", "Tokens", "Owns" if unknown else "Owns (effective)", "Host ID", "Rack"]
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


MIN_TOKEN = -(2 ** 63)
MAX_TOKEN = 2 ** 63 - 1


def _segments(left, right):
    """Range (left, right] as unwrapped (a, b] segments (left >= right wraps; equal = all)."""
    if left < right:
        return [(left, right)]
    return [(left, MAX_TOKEN), (MIN_TOKEN, right)]


def _contains(outer, inner):
    return all(any(a <= c and d <= b for a, b in _segments(*outer)) for c, d in _segments(*inner))


def _intersects(x, y):
    return any(a < d and c < b for a, b in _segments(*x) for c, d in _segments(*y))


def _ring(n):
    """(token, address) of every node the gossip state knows, sorted by token."""
    return sorted((t, x["address"]) for x in _nodes(n) for t in x["tokens"])


def local_ranges(n, ks):
    """The vnode ranges (prev, token] this node replicates for `ks` (SimpleStrategy placement:
    the token's owner and the next RF-1 distinct nodes clockwise), as getLocalReplicas does."""
    ring = _ring(n)
    rf = schema.replication_factor(n.keyspaces[ks])
    out = []
    for i, (tok, _) in enumerate(ring):
        owners = []
        for j in range(len(ring)):
            addr = ring[(i + j) % len(ring)][1]
            if addr not in owners:
                owners.append(addr)
            if len(owners) >= rf:
                break
        if n.address in owners:
            out.append((ring[i - 1][0], tok))
    return out


def primary_ranges(n):
    ring = _ring(n)
    return [(ring[i - 1][0], t) for i, (t, a) in enumerate(ring) if a == n.address]


def _fmt_range(r):
    return "(%d,%d]" % r


def _requested_range(n, ks, vals):
    """The -st/-et range, checked like ActiveRepairService.getNeighbors: it must lie inside one
    local range of the keyspace."""
    try:
        want = (int(vals["st"]), int(vals["et"]))
    except ValueError:
        raise util.EmuError("Repair job has failed with the error message: "
                            "For input string: \"%s\"" % (vals["st"] + ":" + vals["et"]))
    for r in local_ranges(n, ks):
        if _contains(r, want):
            return want
        if _intersects(r, want):
            raise util.EmuError(
                "Repair job has failed with the error message: Requested range %s intersects a local range "
                "(%s) but is not fully contained in one; this would lead to imprecise repair. keyspace: %s"
                % (_fmt_range(want), _fmt_range(r), ks))
    raise util.EmuError("Repair job has failed with the error message: Nothing to repair for %s in %s - aborting"
                        % (_fmt_range(want), ks))


def _record_repair(rec):
    """Appends one repair command to `<state dir>/repairs.jsonl` (what tests read back)."""
    with open(os.path.join(node_mod.state_dir(), "repairs.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps(rec, sort_keys=True) + "\n")


def c_repair(n, o, vals, pos):
    kss = [pos[0]] if pos else [k for k, v in n.keyspaces.items()
                               if not v["replication"].get("class", "").endswith("LocalStrategy")]
    tables = pos[1:] if pos else []
    full = bool(vals.get("full"))
    if ("st" in vals) != ("et" in vals):
        raise util.EmuError("Repair job has failed with the error message: "
                            "Start and end tokens must both be given")
    for ks in kss:
        n.keyspace(ks)
        for t in tables:
            n.table(ks, t)
        if schema.replication_factor(n.keyspaces[ks]) < 2:
            o.p("[%s] Replication factor is 1. No repair is needed for keyspace '%s'" % (_ts(), ks))
            continue
        if "st" in vals:
            ranges = [_requested_range(n, ks, vals)]
        elif vals.get("pr"):
            ranges = primary_ranges(n)
        else:
            ranges = local_ranges(n, ks)
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
               len(ranges)))
        # A repair session takes time (validation compactions, streaming): `repair-duration`.
        time.sleep(n.state.get("repair_ms", 0) / 1000.0)
        for t in (tables or list(n.keyspaces[ks]["tables"])):
            if not full:  # incremental repair marks the sstables repaired (anticompaction)
                n.flush(ks, t)
                n.rewrite_stats(ks, t, repaired_at=util.now_ms())
        o.p("[%s] Repair session %s for range [%s] finished"
            % (_ts(), uuid.uuid1(), ", ".join(_fmt_range(r) for r in ranges)))
        _record_repair({"keyspace": ks, "tables": tables, "ranges": [[str(a), str(b)] for a, b in ranges],
                        "full": full, "start": start, "end": time.time()})
        o.p("[%s] Repair completed successfully" % _ts())
        o.p("[%s] Repair command #%d finished in %d seconds" % (_ts(), cmd, int(time.time() - start)))
