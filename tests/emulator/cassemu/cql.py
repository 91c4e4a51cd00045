"""Executing the supported CQL statements against the node (DDL, TRUNCATE, INSERT, SELECT)."""

from . import schema, snapshots, sstable
from .schema import CqlError


def _schema_write(node, *tables):
    ks = "system_schema" if node.profile.has_system_schema else "system"
    for t in tables:
        if not node.profile.has_system_schema:
            t = {"tables": "schema_columnfamilies", "columns": "schema_columns",
                 "keyspaces": "schema_keyspaces", "indexes": "schema_columnfamilies"}.get(t, t)
        if t in node.keyspaces.get(ks, {}).get("tables", {}):
            node.write(ks, t, 1)


def _user_table(node, ks, t):
    if ks not in node.keyspaces:
        raise CqlError("InvalidRequest", "Keyspace %s does not exist" % ks)
    if t not in node.keyspaces[ks]["tables"]:
        raise CqlError("InvalidRequest", "Table '%s.%s' doesn't exist" % (ks, t))
    return node.keyspaces[ks]["tables"][t]


def _drop_live(node, ks, t):
    """Delete the live sstables of a table and its indexes (the folders stay)."""
    for key, _idx, _dirs in node.cfs_list(ks, t):
        for desc in node.loaded_descs(key):
            sstable.delete_sstable(desc)
        node.state.setdefault("loaded", {})[key] = []
    node.state.setdefault("pending", {}).pop("%s/%s" % (ks, t), None)
    node._mark_flushed(ks, t)


def execute(node, st):
    """Run one parsed statement; returns (columns, rows) for SELECT, else None."""
    op = st["op"]
    if op in ("noop", "use"):
        return None
    if op == "create_keyspace":
        ks = st["ks"]
        if ks in node.keyspaces:
            if st["if_not_exists"]:
                return None
            raise CqlError("AlreadyExists", "Keyspace '%s' already exists" % ks)
        schema.ensure_identifier(ks)
        _check_datacenters(node, ks, st["replication"])
        node.keyspaces[ks] = {"replication": st["replication"], "durable_writes": st["durable_writes"],
                              "system": False, "tables": {}}
        _schema_write(node, "keyspaces")
        return None
    if op == "create_table":
        ks, t = st["ks"], st["table"]
        if ks not in node.keyspaces:
            raise CqlError("InvalidRequest", "Keyspace '%s' doesn't exist" % ks)
        if t in node.keyspaces[ks]["tables"]:
            if st["if_not_exists"]:
                return None
            raise CqlError("AlreadyExists", "Table '%s.%s' already exists" % (ks, t))
        schema.ensure_identifier(t)
        opts = dict(st["options"])
        tid = opts.pop("id", None) or schema.new_table_id()
        for k2, t2 in node.all_tables():
            if node.table(k2, t2)["id"] == tid:
                raise CqlError("AlreadyExists", "Table with id %s already exists" % schema.dashed(tid))
        node.keyspaces[ks]["tables"][t] = {"id": tid, "columns": st["columns"], "pk": st["pk"],
                                           "indexes": {}, "options": opts}
        node.open_table(ks, t)
        _schema_write(node, "tables", "columns")
        return None
    if op == "create_index":
        tinfo = _user_table(node, st["ks"], st["table"])
        if st["index"] in tinfo["indexes"]:
            if st["if_not_exists"]:
                return None
            raise CqlError("InvalidRequest", "Index %s already exists" % st["index"])
        if st["column"] not in [c[0] for c in tinfo["columns"]]:
            raise CqlError("InvalidRequest", "No column definition found for column %s" % st["column"])
        tinfo["indexes"][st["index"]] = st["column"]
        node.open_table(st["ks"], st["table"])
        base = node.loaded_descs(node.cfs_key(st["ks"], st["table"], None))
        node.build_index(st["ks"], st["table"], st["index"], [b.directory for b in base])
        _schema_write(node, "indexes")
        return None
    if op == "drop_table":
        ks, t = st["ks"], st["table"]
        if ks not in node.keyspaces or t not in node.keyspaces[ks]["tables"]:
            if st["if_exists"]:
                return None
            _user_table(node, ks, t)
        _drop_table(node, ks, t)
        _schema_write(node, "tables", "columns")
        return None
    if op == "drop_keyspace":
        ks = st["ks"]
        if ks not in node.keyspaces:
            if st["if_exists"]:
                return None
            raise CqlError("InvalidRequest", "Keyspace '%s' doesn't exist" % ks)
        if node.is_system(ks):
            raise CqlError("Unauthorized", "Cannot DROP <keyspace %s>" % ks)
        for t in list(node.keyspaces[ks]["tables"]):
            _drop_table(node, ks, t)
        del node.keyspaces[ks]
        _schema_write(node, "keyspaces")
        return None
    if op == "drop_index":
        for t, tinfo in node.keyspaces.get(st["ks"], {}).get("tables", {}).items():
            if st["index"] in tinfo.get("indexes", {}):
                key = node.cfs_key(st["ks"], t, st["index"])
                for desc in node.loaded_descs(key):
                    sstable.delete_sstable(desc)
                node.state.get("loaded", {}).pop(key, None)
                del tinfo["indexes"][st["index"]]
                return None
        if st["if_exists"]:
            return None
        raise CqlError("InvalidRequest", "Index '%s' could not be found in any of the tables of keyspace '%s'" % (st["index"], st["ks"]))
    if op == "truncate":
        ks, t = st["ks"], st["table"]
        _user_table(node, ks, t)
        snapshots.auto_snapshot(node, ks, t, "truncated")
        _drop_live(node, ks, t)
        return None
    if op == "insert":
        _user_table(node, st["ks"], st["table"])
        node.write(st["ks"], st["table"], 1)
        return None
    if op == "alter_table":
        _user_table(node, st["ks"], st["table"])
        _schema_write(node, "tables", "columns")
        return None
    if op == "select":
        return select(node, st)
    raise CqlError("SyntaxException", "unsupported statement")


def _drop_table(node, ks, t):
    snapshots.auto_snapshot(node, ks, t, "dropped")
    _drop_live(node, ks, t)
    for key, _idx, _dirs in node.cfs_list(ks, t):
        node.state.get("loaded", {}).pop(key, None)
        node.state.get("gens", {}).pop(key, None)
    del node.keyspaces[ks]["tables"][t]


def _fmt_map(m):
    return "{%s}" % ", ".join("'%s': '%s'" % (k, v) for k, v in m.items())


def _check_datacenters(node, ks, replication):
    """4.0+ refuses NetworkTopologyStrategy options naming a data center the node does not know
    (its own and its peers', `Datacenters.getValidDatacenters`, CASSANDRA-12681)."""
    if node.profile.major < (4, 0) or not replication.get("class", "").endswith("NetworkTopologyStrategy"):
        return
    known = {node.state.get("dc", "")} | {p.get("dc", "") for p in node.state.get("peers", [])}
    for key in replication:
        if key not in ("class", "replication_factor") and key not in known:
            raise CqlError("ConfigurationException",
                           "Unrecognized strategy option {%s} passed to NetworkTopologyStrategy for keyspace %s"
                           % (key, ks))


def select(node, st):
    ks, t, where = st["ks"], st["table"], st["where"]

    if ks == "system_schema" and not node.profile.has_system_schema:
        raise CqlError("InvalidRequest", "Keyspace system_schema does not exist")
    if (ks, t) == ("system", "schema_columnfamilies") and node.profile.has_system_schema:
        raise CqlError("InvalidRequest", "unconfigured table schema_columnfamilies")

    def want(row_ks):
        return "keyspace_name" not in where or where["keyspace_name"] == row_ks

    if (ks, t) in (("system_schema", "tables"), ("system", "schema_columnfamilies")):
        idcol = "id" if t == "tables" else "cf_id"
        tcol = "table_name" if t == "tables" else "columnfamily_name"
        rows = []
        for k, tb in node.all_tables():
            if want(k) and ("table_name" not in where or where["table_name"] == tb):
                rows.append({"keyspace_name": k, tcol: tb, idcol: schema.dashed(node.table(k, tb)["id"])})
        default = ["keyspace_name", tcol, idcol]
    elif (ks, t) == ("system_schema", "keyspaces"):
        rows = [{"keyspace_name": k, "durable_writes": "True" if v.get("durable_writes", True) else "False",
                 "replication": _fmt_map(v["replication"])} for k, v in node.keyspaces.items() if want(k)]
        default = ["keyspace_name", "durable_writes", "replication"]
    elif (ks, t) == ("system_schema", "indexes"):
        rows = []
        for k, tb in node.all_tables():
            for iname, col in node.table(k, tb).get("indexes", {}).items():
                if want(k):
                    rows.append({"keyspace_name": k, "table_name": tb, "index_name": iname,
                                 "kind": "COMPOSITES", "options": "{'target': '%s'}" % col})
        default = ["keyspace_name", "table_name", "index_name", "kind", "options"]
    elif (ks, t) == ("system_schema", "views"):
        rows, default = [], ["keyspace_name", "view_name", "id"]
    elif (ks, t) == ("system", "local"):
        rows = [{"key": "local", "host_id": node.state["host_id"], "data_center": node.state["dc"],
                 "rack": node.state["rack"], "cluster_name": node.state["cluster_name"],
                 "release_version": node.profile.release,
                 "listen_address": node.address, "broadcast_address": node.address}]
        default = ["key", "host_id", "data_center", "rack", "cluster_name", "release_version",
                   "listen_address", "broadcast_address"]
    else:
        _user_table(node, ks, t)
        raise CqlError("InvalidRequest", "the emulator does not store rows (SELECT from %s.%s)" % (ks, t))
    cols = st["columns"]
    if cols == ["*"]:
        cols = default
    cols = [c.lower() for c in cols]
    for c in cols:
        if rows and c not in rows[0]:
            raise CqlError("InvalidRequest", "Undefined column name %s" % c)
        if not rows and c not in default:
            raise CqlError("InvalidRequest", "Undefined column name %s" % c)
    return cols, [[str(r.get(c, "null")) for c in cols] for r in rows]
