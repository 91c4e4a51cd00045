"""Node start/stop: Cassandra's startup checks, directory scrubbing, commit log replay, drain."""

import os

from . import config, schema, snapshots, sstable, util

NON_SSTABLE_DIRS = ("snapshots", "backups")


def log(msg):
    """Append to the emulator's system.log (like /var/log/cassandra/system.log)."""
    from . import node as node_mod

    util.makedirs(node_mod.state_dir())
    with open(os.path.join(node_mod.state_dir(), "system.log"), "a", encoding="utf-8") as f:
        f.write("%s %s\n" % (util.format_instant_ms(util.now_ms()), msg))


def check_config(node):
    p = node.profile
    if p.major >= (5, 0):
        mode = str(node.yaml.get("storage_compatibility_mode", "CASSANDRA_4"))
        sel = node.yaml.get("sstable") or {}
        fmt = sel.get("selected_format", "big") if isinstance(sel, dict) else "big"
        if fmt == "bti" and mode == "CASSANDRA_4":
            raise util.StartupError(
                "Invalid yaml. Please remove properties [selected_format] from your cassandra.yaml "
                "(ConfigurationException: Selected sstable format 'bti' is not available when in "
                "storage compatibility mode 'CASSANDRA_4'.)"
            )
    if not p.uuid_ids_supported and "uuid_sstable_identifiers_enabled" in node.yaml:
        raise util.StartupError(
            "Invalid yaml. Please remove properties [uuid_sstable_identifiers_enabled] from your cassandra.yaml"
        )


def check_data_dirs(node):
    dirs = list(node.dirs["data"]) + [node.dirs["commitlog"], node.dirs["saved_caches"], node.dirs["hints"]]
    for d in dirs:
        if not os.path.isdir(d):
            util.makedirs(d)
        if not util.can_write(d):
            raise util.StartupError("Insufficient permissions on directory %s" % d)


def check_sstables_format(node):
    """StartupChecks.checkSSTablesFormat: every `*.db` outside snapshots/backups must parse."""
    invalid, uuid_ids = [], []
    uuid_on = node.uuid_ids()
    for dd in node.dirs["data"]:
        for root, dirs, files in os.walk(dd):
            dirs[:] = sorted(d for d in dirs if d not in NON_SSTABLE_DIRS)
            for f in sorted(files):
                if not f.endswith(".db") or sstable.TMP_RE.match(f):
                    continue
                path = os.path.join(root, f)
                parsed = sstable.parse_name(f)
                if parsed is None:
                    invalid.append(path)
                    continue
                ver, gen, fmt, _comp, legacy = parsed
                if legacy and node.profile.major >= (4, 1):
                    invalid.append(path)  # 5/6 tokens: "is of version X which is now unsupported"
                    continue
                if isinstance(gen, str) and not node.profile.uuid_ids_supported:
                    invalid.append(path)
                    continue
                if not node.profile.readable(ver, fmt):
                    invalid.append(path)
                    continue
                if isinstance(gen, str) and not uuid_on:
                    uuid_ids.append(path)
    if invalid:
        raise util.StartupError(
            "Detected unreadable sstables %s, please check NEWS.txt and ensure that you have "
            "upgraded through all required intermediate versions, running upgradesstables"
            % ",".join(invalid)
        )
    if uuid_ids:
        raise util.StartupError(
            "UUID sstable identifiers are disabled but some sstables have been created with UUID "
            "identifiers. You have to either delete those sstables or enable UUID sstable "
            "identifiers in cassandra.yaml (uuid_sstable_identifiers_enabled). The list of "
            "affected sstables is: %s. If you decide to delete sstables, and have that data "
            "replicated over other healthy nodes, those will be brought back during repair"
            % ", ".join(uuid_ids)
        )


def check_permissions(node):
    """Files and folders of live tables must be writable by the cassandra user (FSWriteError)."""
    for ks, t in node.all_tables():
        for _key, _idx, dirs in node.cfs_list(ks, t):
            for d in dirs:
                if not os.path.isdir(d):
                    continue
                if not util.can_write(d):
                    raise util.StartupError(
                        "FSWriteError in %s: java.nio.file.AccessDeniedException: %s "
                        "(Insufficient permissions on directory %s)" % (d, d, d))
                for f in sorted(os.listdir(d)):
                    p = os.path.join(d, f)
                    if os.path.isfile(p) and not util.can_write(p):
                        raise util.StartupError(
                            "FSWriteError in %s: java.nio.file.AccessDeniedException: %s" % (p, p))


def scrub_table_dir(d):
    """ColumnFamilyStore.scrubDataDirectories for one folder: txn logs, tmp, *.tmp, orphans."""
    if not os.path.isdir(d):
        return
    for f in sorted(os.listdir(d)):
        p = os.path.join(d, f)
        m = sstable.TXN_RE.match(f)
        if m and os.path.isfile(p):
            # Unfinished transaction: roll back (remove what it added), then the log.
            with open(p, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if line.startswith("ADD:["):
                        prefix = line[5:].split(",", 1)[0]
                        base = os.path.basename(prefix)
                        for g in os.listdir(os.path.dirname(prefix) or d):
                            if g.startswith(base + "-"):
                                os.unlink(os.path.join(os.path.dirname(prefix) or d, g))
            os.unlink(p)
            log("Removed unfinished transaction %s" % p)
    for f in sorted(os.listdir(d)):
        p = os.path.join(d, f)
        if f == "tmp" and os.path.isdir(p):
            util.rmtree(p)
        elif f.endswith(".tmp") and os.path.isfile(p):
            os.unlink(p)
        elif sstable.TMP_RE.match(f) and os.path.isfile(p):
            os.unlink(p)
    for desc in sstable.list_sstables(d):
        data = desc.path("Data.db")
        if not os.path.exists(data) or os.path.getsize(data) == 0:
            log("Removing orphans for %s: %s" % (desc.prefix, desc.components()))
            sstable.delete_sstable(desc)


def drop_ephemeral_and_expired(node):
    now = util.now_ms()
    for info in snapshots.discover(node, live_only=False):
        m = info.manifest()
        expired = bool(m and m["expires_at"] and m["expires_at"] <= now and node.profile.ttl)
        if info.ephemeral(node.profile) or expired:
            snapshots.remove_snapshot_everywhere(info)
            log("Removed %s snapshot %s of %s.%s" % ("expired" if expired else "ephemeral", info.tag, info.ks, info.table))


def start(node):
    if node.running:
        raise util.StartupError(
            "Port already in use: 7199; nested exception is: java.net.BindException: Address already in use")
    node.yaml = config.load()
    node.dirs = config.storage_dirs(node.yaml)
    check_config(node)
    check_data_dirs(node)
    check_sstables_format(node)
    for ks, t in node.all_tables():
        node.open_table(ks, t)
    check_permissions(node)
    drop_ephemeral_and_expired(node)
    loaded = {}
    for ks, t in node.all_tables():
        for key, _idx, dirs in node.cfs_list(ks, t):
            loaded[key] = []
            for d in dirs:
                scrub_table_dir(d)
                for desc in sstable.list_sstables(d):
                    loaded[key].append(os.path.join(d, desc.prefix))
    node.state["loaded"] = loaded
    node.recompute_generations()
    node.state["process_lsb"] = sstable.new_process_lsb()
    node.state["backup_runtime"] = None
    node.state["drained"] = False
    node.state["running"] = True
    node.state["native_transport"] = True
    node.state["pending"] = {}
    node.state["started_ms"] = util.now_ms()
    node.state["generation_no"] = util.now_ms() // 1000
    replayed = node.replay_commitlog()
    for ks, t in sorted(replayed):
        node.flush(ks, t)
    if replayed:
        log("Log replay complete, %d replayed mutations" % sum(replayed.values()))
    node.discard_clean_segments(keep_active=False)
    node._active_segment()
    local_ks = "system"
    node.write(local_ks, "local", 1)
    log("Node %s state jump to NORMAL" % node.address)
    return replayed


def stop(node, kill=False):
    """Clean stop = drain (3.0+: flush everything, recycle the commit log); kill = nothing."""
    if not node.running:
        raise util.EmuError("Cassandra is not running")
    if not kill and not node.state.get("drained"):
        drain(node, final=True)
    node.state["running"] = False
    node.state["pending"] = {}  # memtables are gone with the process
    node.state["backup_runtime"] = None


def drain(node, final=False):
    if node.profile.drain_on_stop or not final:
        node.flush_all()
    else:
        # 2.1/2.2 shutdown hook: only keyspaces with durable_writes = false are flushed.
        for ks in list(node.keyspaces):
            if not node.keyspaces[ks].get("durable_writes", True):
                node.flush_all([ks])
        return
    node.discard_clean_segments(keep_active=False)
    node.state["drained"] = True
    node.state["native_transport"] = False


def system_local_keyspace():
    return schema.LOCAL_SYSTEM_KEYSPACES[0]
