"""nodetool snapshot, listsnapshots and clearsnapshot (per-version texts and semantics)."""

from . import snapshots, util
from .ntcommon import size


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
