"""`cassandra-emu`: create, start, stop and drive an emulated node (the test's admin backdoor)."""

import argparse
import json
import os
import random
import sys
import time
import uuid

from . import config, cql, node as node_mod, profiles, schema, snapshots, startup, util


def _tokens(n, rng):
    return sorted(rng.randrange(-(2**63), 2**63) for _ in range(n))


def cmd_init(a):
    profile = profiles.get(a.version)
    if os.path.exists(node_mod.state_path()) and not a.force:
        raise util.EmuError("%s already exists (use --force to re-create)" % node_mod.state_path())
    root = a.data_root
    if a.data_dirs == 1:
        data = [os.path.join(root, "data")]
    else:
        data = [os.path.join(root, "data%d" % (i + 1)) for i in range(a.data_dirs)]
    if a.sstable_format == "bti" and profile.major < (5, 0):
        raise util.EmuError("--sstable-format bti needs --version 5.0")
    compat = a.storage_compatibility_mode
    if profile.major >= (5, 0) and compat is None:
        compat = "NONE" if a.sstable_format == "bti" else "CASSANDRA_4"
    settings = {
        "cluster_name": a.cluster,
        "num_tokens": a.tokens or profile.default_tokens,
        "data_file_directories": data,
        "commitlog_directory": os.path.join(root, "commitlog"),
        "saved_caches_directory": os.path.join(root, "saved_caches"),
        "hints_directory": os.path.join(root, "hints"),
        "incremental_backups": a.incremental_backups,
        "listen_address": a.listen_address,
        "uuid_ids": a.uuid_ids if profile.uuid_ids_supported else None,
        "storage_compatibility_mode": compat if profile.major >= (5, 0) else None,
        "sstable_format": a.sstable_format if profile.major >= (5, 0) else None,
    }
    config.write(settings)
    util.write_file(os.path.join(config.conf_dir(), "cassandra-rackdc.properties"),
                    "dc=%s\nrack=%s\n" % (a.dc, a.rack))
    rng = random.Random()
    state = {
        "profile": profile.name,
        "cluster_name": a.cluster,
        "dc": a.dc,
        "rack": a.rack,
        "host_id": a.host_id or str(uuid.uuid4()),
        "tokens": _tokens(settings["num_tokens"], rng),
        "listen_address": a.listen_address,
        "jmx_port": a.jmx_port,
        "jmx": None,
        "running": False,
        "schema": schema.initial_schema(profile),
        "pending": {},
        "gens": {},
        "loaded": {},
        "cl": {"seq": 0, "flushed": {}},
        "peers": [],
        "repair_cmd": 0,
    }
    if a.jmx_user:
        if not a.jmx_password:
            raise util.EmuError("--jmx-user needs --jmx-password")
        state["jmx"] = {"user": a.jmx_user, "password": a.jmx_password}
        util.write_file(os.path.join(config.conf_dir(), "jmxremote.password"),
                        "%s %s\n" % (a.jmx_user, a.jmx_password), mode=0o600)
    n = node_mod.Node(state, config.load())
    for d in n.dirs["data"] + [n.dirs["commitlog"], n.dirs["saved_caches"], n.dirs["hints"]]:
        util.makedirs(d)
    for ks, t in n.all_tables():
        n.open_table(ks, t)
    n.save()
    print("initialised Cassandra %s node %s (%s) in %s" % (profile.release, state["host_id"],
                                                          a.listen_address, config.conf_dir()))


def _with_node(fn, need_running=True):
    with node_mod.lock():
        n = node_mod.Node.load()
        if need_running and not n.running:
            raise util.EmuError("Cassandra is not running")
        try:
            return fn(n)
        finally:
            n.save()


def cmd_start(a):
    def go(n):
        try:
            replayed = startup.start(n)
        except util.StartupError as e:
            startup.log("ERROR Exception encountered during startup: %s" % e)
            raise
        print("Cassandra %s started (host id %s)" % (n.profile.release, n.state["host_id"]))
        for (ks, t), rows in sorted(replayed.items()):
            print("replayed %d mutations of %s.%s from the commit log" % (rows, ks, t))

    _with_node(go, need_running=False)


def cmd_stop(a):
    _with_node(lambda n: startup.stop(n, kill=a.kill))


def cmd_status(a):
    with node_mod.lock():
        n = node_mod.Node.load()
    print("running" if n.running else "stopped")
    return 0 if n.running else 3


def cmd_cql(a):
    def go(n):
        ks = None
        for stmt in schema.split_statements(a.statement):
            st = schema.parse(stmt, ks)
            if st["op"] == "use":
                ks = st["ks"]
            res = cql.execute(n, st)
            if res:
                cols, rows = res
                for r in rows:
                    print("\t".join(r))

    try:
        _with_node(go)
    except schema.CqlError as e:
        raise util.EmuError("%s: %s" % (e.kind, e))


def cmd_write(a):
    def go(n):
        n.table(a.keyspace, a.table)
        if n.state.get("drained"):
            raise util.EmuError("node is drained: writes are rejected")
        n.write(a.keyspace, a.table, a.rows)

    _with_node(go)


def cmd_flush(a):
    def go(n):
        for ks, t in list(n.all_tables([a.keyspace] if a.keyspace else None)):
            if not a.tables or t in a.tables:
                n.flush(ks, t)

    _with_node(go)


def cmd_compact(a):
    _with_node(lambda n: n.compact(a.keyspace, a.table))


def cmd_rewrite_stats(a):
    rep = a.repaired_at if a.repaired_at is not None else util.now_ms()
    _with_node(lambda n: print(n.rewrite_stats(a.keyspace, a.table, repaired_at=rep, level=a.level,
                                               summary=a.summary)))


def cmd_churn(a):
    """Keep a table busy like a live node: write, flush (TOC last), compact, rewrite metadata.

    Each step takes the node lock on its own, so backups/snapshots interleave with the churn."""
    deadline = time.time() + a.seconds
    step = 0
    while time.time() < deadline:
        step += 1

        def go(n, step=step):
            n.write(a.keyspace, a.table, a.rows)
            n.flush(a.keyspace, a.table)
            if step % 3 == 0:
                n.compact(a.keyspace, a.table)
            elif step % 3 == 2:
                n.rewrite_stats(a.keyspace, a.table, repaired_at=util.now_ms())

        _with_node(go)
        time.sleep(a.interval)
    print(step)


def cmd_ephemeral_snapshot(a):
    def go(n):
        tag = a.tag or str(uuid.uuid4())
        snapshots.take(n, tag, [(a.keyspace, a.table)], ephemeral=True)
        print(tag)

    _with_node(go)


def cmd_show(a):
    with node_mod.lock():
        n = node_mod.Node.load()
    out = {
        "profile": n.profile.name,
        "release": n.profile.release,
        "running": n.running,
        "host_id": n.state["host_id"],
        "data_dirs": n.dirs["data"],
        "commitlog": n.dirs["commitlog"],
        "tables": {
            "%s.%s" % (ks, t): {"id": n.table(ks, t)["id"], "dirs": n.table_dirs(ks, t),
                                "pending": n.pending(ks, t),
                                "live": sorted(p for key, _i, _d in n.cfs_list(ks, t) for p in n.loaded(key))}
            for ks, t in n.all_tables() if not n.is_system(ks) or a.all
        },
    }
    print(json.dumps(out, indent=1, sort_keys=True))


def cmd_add_peer(a):
    def go(n):
        n.state.setdefault("peers", []).append({
            "address": a.address, "host_id": a.host_id or str(uuid.uuid4()), "dc": a.dc or n.state["dc"],
            "rack": a.rack or n.state["rack"],
            "tokens": ([int(t) for t in a.token_list.split(",")] if a.token_list
                       else _tokens(a.tokens or len(n.state["tokens"]), random.Random())),
            "up": not a.down})

    _with_node(go, need_running=False)


def cmd_repair_duration(a):
    """How long each repair command takes (default 0): real sessions take seconds to hours."""
    def go(n):
        n.state["repair_ms"] = a.ms

    _with_node(go, need_running=False)


def parser():
    p = argparse.ArgumentParser(prog="cassandra-emu", description="Cassandra node emulator for cbk tests")
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("init")
    i.add_argument("--version", required=True, choices=sorted(profiles.PROFILES))
    i.add_argument("--data-root", default="/var/lib/cassandra")
    i.add_argument("--data-dirs", type=int, default=1)
    i.add_argument("--cluster", default="Test Cluster")
    i.add_argument("--dc", default="datacenter1")
    i.add_argument("--rack", default="rack1")
    i.add_argument("--host-id")
    i.add_argument("--tokens", type=int)
    i.add_argument("--listen-address", default="127.0.0.1")
    i.add_argument("--jmx-port", type=int, default=7199)
    i.add_argument("--incremental-backups", action="store_true")
    i.add_argument("--uuid-ids", action="store_true")
    i.add_argument("--sstable-format", choices=["big", "bti"], default="big")
    i.add_argument("--storage-compatibility-mode", choices=["CASSANDRA_4", "UPGRADING", "NONE"])
    i.add_argument("--jmx-user")
    i.add_argument("--jmx-password")
    i.add_argument("--force", action="store_true")
    i.set_defaults(fn=cmd_init)
    sub.add_parser("start").set_defaults(fn=cmd_start)
    s = sub.add_parser("stop")
    s.add_argument("--kill", action="store_true")
    s.set_defaults(fn=cmd_stop)
    sub.add_parser("status").set_defaults(fn=cmd_status)
    c = sub.add_parser("cql")
    c.add_argument("statement")
    c.set_defaults(fn=cmd_cql)
    w = sub.add_parser("write")
    w.add_argument("keyspace")
    w.add_argument("table")
    w.add_argument("--rows", type=int, default=100)
    w.set_defaults(fn=cmd_write)
    f = sub.add_parser("flush")
    f.add_argument("keyspace", nargs="?")
    f.add_argument("tables", nargs="*")
    f.set_defaults(fn=cmd_flush)
    for name, fn in (("compact", cmd_compact), ("rewrite-stats", cmd_rewrite_stats),
                     ("repair-mark", cmd_rewrite_stats)):
        x = sub.add_parser(name)
        x.add_argument("keyspace")
        x.add_argument("table")
        if fn is cmd_rewrite_stats:
            x.add_argument("--summary", action="store_true", help="also rewrite Summary.db")
            x.add_argument("--repaired-at", type=int, help="repairedAt (ms) to write")
            x.add_argument("--level", type=int, help="sstableLevel to write")
        x.set_defaults(fn=fn)
    ch = sub.add_parser("churn")
    ch.add_argument("keyspace")
    ch.add_argument("table")
    ch.add_argument("--seconds", type=float, default=5.0)
    ch.add_argument("--interval", type=float, default=0.2)
    ch.add_argument("--rows", type=int, default=10)
    ch.set_defaults(fn=cmd_churn)
    e = sub.add_parser("ephemeral-snapshot")
    e.add_argument("keyspace")
    e.add_argument("table")
    e.add_argument("--tag")
    e.set_defaults(fn=cmd_ephemeral_snapshot)
    sh = sub.add_parser("show")
    sh.add_argument("--all", action="store_true", help="include system tables")
    sh.set_defaults(fn=cmd_show)
    ap = sub.add_parser("add-peer")
    ap.add_argument("--address", required=True)
    ap.add_argument("--host-id")
    ap.add_argument("--dc")
    ap.add_argument("--rack")
    ap.add_argument("--tokens", type=int)
    ap.add_argument("--token-list", help="the peer's tokens, comma separated (default: random)")
    ap.add_argument("--down", action="store_true")
    ap.set_defaults(fn=cmd_add_peer)
    rd = sub.add_parser("repair-duration")
    rd.add_argument("ms", type=int)
    rd.set_defaults(fn=cmd_repair_duration)
    return p


def main(argv=None):
    a = parser().parse_args(argv)
    try:
        rc = a.fn(a)
    except util.EmuError as e:
        print("cassandra-emu: %s" % e, file=sys.stderr)
        return e.exit_code
    return rc or 0

