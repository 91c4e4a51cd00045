"""Schema model: system keyspaces with name-based ids, a small CQL parser, schema.cql rendering."""

import hashlib
import re
import uuid

LOCAL_SYSTEM_KEYSPACES = ("system", "system_schema")

_SYSTEM_TABLES_COMMON = {
    "system": [
        "local", "peers", "paxos", "batches", "compaction_history", "size_estimates",
        "sstable_activity", "available_ranges", "transferred_ranges", "built_views",
        "prepared_statements", "IndexInfo", "views_builds_in_progress",
    ],
    "system_auth": ["roles", "role_members", "role_permissions", "resource_role_permissons_index"],
    "system_distributed": ["repair_history", "parent_repair_history", "view_build_status"],
    "system_traces": ["sessions", "events"],
}
_SYSTEM_SCHEMA = [
    "keyspaces", "tables", "columns", "triggers", "views", "types", "functions",
    "aggregates", "indexes", "dropped_columns",
]
_SYSTEM_22_SCHEMA = [
    "schema_keyspaces", "schema_columnfamilies", "schema_columns", "schema_triggers",
    "schema_usertypes", "schema_functions", "schema_aggregates", "hints",
]


def system_keyspaces(profile):
    """{keyspace: [tables]} of the node's system keyspaces for this release."""
    ks = {k: list(v) for k, v in _SYSTEM_TABLES_COMMON.items()}
    if profile.has_system_schema:
        ks["system_schema"] = list(_SYSTEM_SCHEMA)
    else:
        ks["system"] += _SYSTEM_22_SCHEMA
    if profile.major >= (4, 0):
        ks["system"] += ["peers_v2", "repairs", "available_ranges_v2", "transferred_ranges_v2"]
        ks["system_auth"].append("network_permissions")
    if profile.major >= (4, 1):
        ks["system"] += ["top_partitions", "paxos_repair_history"]
    return ks


def system_table_id(keyspace, table):
    """TableId.forSystemTable: UUID.nameUUIDFromBytes(ks ++ table), hex without dashes."""
    digest = bytearray(hashlib.md5((keyspace + table).encode("utf-8")).digest())
    digest[6] = (digest[6] & 0x0F) | 0x30
    digest[8] = (digest[8] & 0x3F) | 0x80
    return bytes(digest).hex()


def new_table_id():
    """A time-based (v1) UUID like TableId.generate(), hex without dashes."""
    return uuid.uuid1().hex


def dashed(hex32):
    return str(uuid.UUID(hex=hex32))


SYSTEM_REPLICATION = {"class": "org.apache.cassandra.locator.LocalStrategy"}
_DIST_REPLICATION = {"class": "org.apache.cassandra.locator.SimpleStrategy", "replication_factor": "3"}


def initial_schema(profile):
    kss = {}
    for ks, tables in system_keyspaces(profile).items():
        repl = SYSTEM_REPLICATION if ks in LOCAL_SYSTEM_KEYSPACES else dict(_DIST_REPLICATION)
        if ks == "system_auth":
            repl = {"class": "org.apache.cassandra.locator.SimpleStrategy", "replication_factor": "1"}
        kss[ks] = {
            "replication": repl,
            "durable_writes": True,
            "system": True,
            "tables": {
                t: {"id": system_table_id(ks, t), "columns": [], "pk": [], "indexes": {}, "options": {}}
                for t in tables
            },
        }
    return kss


# ---------------------------------------------------------------------------------------------
# CQL parsing (only the statements the emulator supports)


class CqlError(Exception):
    """InvalidRequest / SyntaxException as cqlsh reports them."""

    def __init__(self, kind, msg):
        super().__init__(msg)
        self.kind = kind


IDENT = r'(?:"[^"]+"|\w+)'


def unquote(name):
    name = name.strip()
    if name.startswith('"') and name.endswith('"'):
        return name[1:-1]
    return name.lower()


def split_statements(text):
    """Split CQL text on `;` outside quotes/comments."""
    stmts, cur, quote = [], [], None
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            cur.append(c)
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
            cur.append(c)
        elif text.startswith("--", i) or text.startswith("//", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            continue
        elif c == ";":
            s = "".join(cur).strip()
            if s:
                stmts.append(s)
            cur = []
        else:
            cur.append(c)
        i += 1
    s = "".join(cur).strip()
    if s:
        stmts.append(s)
    return stmts


def _qualified(name, current_ks):
    parts = [p for p in re.findall(IDENT, name)]
    if len(parts) == 2:
        return unquote(parts[0]), unquote(parts[1])
    if len(parts) == 1:
        if not current_ks:
            raise CqlError("InvalidRequest", "No keyspace has been specified. USE a keyspace, or explicitly specify keyspace.tablename")
        return current_ks, unquote(parts[0])
    raise CqlError("SyntaxException", "line 1:0 no viable alternative at input '%s'" % name)


def _parse_map(text):
    """Parse a CQL map literal {'k': 'v', ...} into a dict of strings."""
    out = {}
    for k, v in re.findall(r"'([^']*)'\s*:\s*('[^']*'|[\w.]+)", text):
        out[k] = v.strip("'")
    return out


def _matching_paren(text, start):
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    raise CqlError("SyntaxException", "line 1:%d mismatched input" % len(text))


def parse(stmt, current_ks=None):
    """Parse one statement into a dict {op: ..., ...}."""
    s = stmt.strip().rstrip(";").strip()
    low = s.lower()
    m = re.match(r"use\s+(" + IDENT + r")$", s, re.I)
    if m:
        return {"op": "use", "ks": unquote(m.group(1))}
    m = re.match(r"create\s+keyspace\s+(if\s+not\s+exists\s+)?(" + IDENT + r")\s+with\s+(.*)$", s, re.I | re.S)
    if m:
        rest = m.group(3)
        rm = re.search(r"replication\s*=\s*(\{[^}]*\})", rest, re.I)
        if not rm:
            raise CqlError("SyntaxException", "Missing mandatory option 'replication'")
        dw = re.search(r"durable_writes\s*=\s*(true|false)", rest, re.I)
        return {
            "op": "create_keyspace",
            "ks": unquote(m.group(2)),
            "if_not_exists": bool(m.group(1)),
            "replication": _parse_map(rm.group(1)),
            "durable_writes": not (dw and dw.group(1).lower() == "false"),
        }
    m = re.match(r"create\s+(?:table|columnfamily)\s+(if\s+not\s+exists\s+)?(" + IDENT + r"(?:\s*\.\s*" + IDENT + r")?)\s*\(", s, re.I | re.S)
    if m:
        ks, table = _qualified(m.group(2), current_ks)
        open_at = m.end() - 1
        close_at = _matching_paren(s, open_at)
        body = s[open_at + 1:close_at]
        after = s[close_at + 1:]
        columns, pk = _parse_columns(body)
        opts = {}
        idm = re.search(r"\bid\s*=\s*([0-9a-fA-F-]{32,36})", after, re.I)
        if idm:
            try:
                opts["id"] = uuid.UUID(idm.group(1)).hex
            except ValueError:
                raise CqlError("InvalidRequest", "Invalid table id %s" % idm.group(1))
        for opt in ("incremental_backups", "allow_auto_snapshot"):
            om = re.search(r"\b%s\s*=\s*(true|false)" % opt, after, re.I)
            if om:
                opts[opt] = om.group(1).lower() == "true"
        return {
            "op": "create_table", "ks": ks, "table": table, "if_not_exists": bool(m.group(1)),
            "columns": columns, "pk": pk, "options": opts,
        }
    m = re.match(r"create\s+(?:custom\s+)?index\s+(if\s+not\s+exists\s+)?(" + IDENT + r")?\s*on\s+(" + IDENT + r"(?:\s*\.\s*" + IDENT + r")?)\s*\(\s*(?:\w+\s*\(\s*)?(" + IDENT + r")\s*\)?\s*\)", s, re.I | re.S)
    if m:
        ks, table = _qualified(m.group(3), current_ks)
        col = unquote(m.group(4))
        name = unquote(m.group(2)) if m.group(2) else "%s_%s_idx" % (table, col)
        return {"op": "create_index", "ks": ks, "table": table, "index": name, "column": col,
                "if_not_exists": bool(m.group(1))}
    m = re.match(r"create\s+type\s+", s, re.I)
    if m:
        return {"op": "noop"}
    m = re.match(r"drop\s+(table|columnfamily)\s+(if\s+exists\s+)?(" + IDENT + r"(?:\s*\.\s*" + IDENT + r")?)$", s, re.I)
    if m:
        ks, table = _qualified(m.group(3), current_ks)
        return {"op": "drop_table", "ks": ks, "table": table, "if_exists": bool(m.group(2))}
    m = re.match(r"drop\s+keyspace\s+(if\s+exists\s+)?(" + IDENT + r")$", s, re.I)
    if m:
        return {"op": "drop_keyspace", "ks": unquote(m.group(2)), "if_exists": bool(m.group(1))}
    m = re.match(r"drop\s+index\s+(if\s+exists\s+)?(" + IDENT + r"(?:\s*\.\s*" + IDENT + r")?)$", s, re.I)
    if m:
        ks, idx = _qualified(m.group(2), current_ks)
        return {"op": "drop_index", "ks": ks, "index": idx, "if_exists": bool(m.group(1))}
    m = re.match(r"truncate\s+(?:table\s+)?(" + IDENT + r"(?:\s*\.\s*" + IDENT + r")?)$", s, re.I)
    if m:
        ks, table = _qualified(m.group(1), current_ks)
        return {"op": "truncate", "ks": ks, "table": table}
    m = re.match(r"insert\s+into\s+(" + IDENT + r"(?:\s*\.\s*" + IDENT + r")?)", s, re.I)
    if m:
        ks, table = _qualified(m.group(1), current_ks)
        return {"op": "insert", "ks": ks, "table": table}
    m = re.match(r"alter\s+table\s+(" + IDENT + r"(?:\s*\.\s*" + IDENT + r")?)\s+(.*)$", s, re.I | re.S)
    if m:
        ks, table = _qualified(m.group(1), current_ks)
        return {"op": "alter_table", "ks": ks, "table": table, "rest": m.group(2)}
    m = re.match(r"select\s+(.*?)\s+from\s+(" + IDENT + r"(?:\s*\.\s*" + IDENT + r")?)\s*(?:where\s+(.*?))?\s*(?:limit\s+\d+)?\s*(?:allow\s+filtering)?$", s, re.I | re.S)
    if m:
        ks, table = _qualified(m.group(2), current_ks)
        where = {}
        if m.group(3):
            for k, v in re.findall(r"(\w+)\s*=\s*'([^']*)'", m.group(3)):
                where[k.lower()] = v
        cols = [c.strip() for c in m.group(1).split(",")]
        return {"op": "select", "ks": ks, "table": table, "columns": cols, "where": where}
    if low.startswith("describe") or low.startswith("desc "):
        return {"op": "describe", "rest": s.split(None, 1)[1] if " " in s else ""}
    raise CqlError("SyntaxException", "line 1:0 no viable alternative at input '%s'" % s.split()[0])


def _split_top(body):
    parts, depth, cur = [], 0, []
    for c in body:
        if c in "(<":
            depth += 1
        elif c in ")>":
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return parts


def _parse_columns(body):
    columns, pk = [], []
    for part in _split_top(body):
        pm = re.match(r"primary\s+key\s*\((.*)\)$", part, re.I | re.S)
        if pm:
            inner = pm.group(1).replace("(", "").replace(")", "")
            pk = [unquote(c) for c in inner.split(",") if c.strip()]
            continue
        cm = re.match(r"(" + IDENT + r")\s+(.+?)(\s+static)?(\s+primary\s+key)?$", part, re.I | re.S)
        if not cm:
            raise CqlError("SyntaxException", "line 1:0 mismatched input '%s'" % part)
        name = unquote(cm.group(1))
        columns.append([name, " ".join(cm.group(2).split())])
        if cm.group(4):
            pk = [name]
    if not pk:
        raise CqlError("InvalidRequest", "No PRIMARY KEY specifed (exactly one required)")
    return columns, pk


# ---------------------------------------------------------------------------------------------
# schema.cql


def render_schema_cql(profile, ks, table, tinfo):
    """The snapshot's schema.cql: CREATE TABLE IF NOT EXISTS ... WITH ID = ..., then indexes."""
    ind = profile.schema_indent
    cols = list(tinfo["columns"])
    lines = ["CREATE TABLE IF NOT EXISTS %s.%s (" % (ks, table)]
    single_pk = len(tinfo["pk"]) == 1
    body = []
    for name, typ in cols:
        suffix = " PRIMARY KEY" if single_pk and name == tinfo["pk"][0] else ""
        body.append("%s%s %s%s" % (ind, name, typ, suffix))
    if not single_pk:
        body.append("%sPRIMARY KEY (%s)" % (ind, ", ".join(tinfo["pk"])))
    lines.append(",\n".join(body))
    opts = [
        ("additional_write_policy", "'99p'") if profile.major >= (4, 0) else None,
        ("bloom_filter_fp_chance", "0.01"),
        ("caching", "{'keys': 'ALL', 'rows_per_partition': 'NONE'}"),
        ("cdc", "false") if profile.major >= (3, 8) else None,
        ("comment", "''"),
        ("compaction", "{'class': 'org.apache.cassandra.db.compaction.SizeTieredCompactionStrategy', 'max_threshold': '32', 'min_threshold': '4'}"),
        ("compression", "{'chunk_length_in_kb': '%d', 'class': 'org.apache.cassandra.io.compress.LZ4Compressor'}" % (16 if profile.major >= (4, 0) else 64)),
        ("crc_check_chance", "1.0"),
        ("default_time_to_live", "0"),
        ("extensions", "{}") if profile.major >= (4, 0) else None,
        ("gc_grace_seconds", "864000"),
        ("incremental_backups", str(tinfo.get("options", {}).get("incremental_backups", True)).lower()) if profile.major >= (5, 0) else None,
        ("max_index_interval", "2048"),
        ("memtable_flush_period_in_ms", "0"),
        ("min_index_interval", "128"),
        ("read_repair", "'BLOCKING'") if profile.major >= (4, 0) else None,
        ("speculative_retry", "'99p'" if profile.major >= (4, 0) else "'99PERCENTILE'"),
    ]
    opts = [o for o in opts if o]
    text = "\n".join(lines) + "\n) WITH ID = %s\n" % dashed(tinfo["id"])
    text += "".join("%sAND %s = %s\n" % (ind, k, v) for k, v in opts)
    text = text.rstrip("\n") + ";\n"
    for iname, col in sorted(tinfo.get("indexes", {}).items()):
        text += "CREATE INDEX IF NOT EXISTS %s ON %s.%s (%s);\n" % (iname, ks, table, col)
    return text


def render_create_keyspace(ks, kinfo):
    repl = ", ".join("'%s': '%s'" % (k, v) for k, v in kinfo["replication"].items())
    return "CREATE KEYSPACE %s WITH replication = {%s}  AND durable_writes = %s;" % (
        ks, repl, str(kinfo.get("durable_writes", True)).lower())


def replication_factor(kinfo):
    repl = kinfo.get("replication", {})
    cls = repl.get("class", "")
    if cls.endswith("LocalStrategy"):
        return 1
    if "replication_factor" in repl:
        return int(repl["replication_factor"])
    return sum(int(v) for k, v in repl.items() if k != "class" and str(v).isdigit()) or 1


def ensure_identifier(name):
    if not re.match(r"^\w{1,48}$", name):
        raise CqlError("InvalidRequest", "\"%s\" is not a valid name" % name)
    return name
