"""`cqlsh` double: -e / -f with the supported statements, cqlsh-style tables and errors."""

import argparse
import sys

from . import cql, schema, util
from . import node as node_mod

ERROR_CODES = {
    "InvalidRequest": "code=2200 [Invalid query]",
    "SyntaxException": "code=2000 [Syntax error in CQL query]",
    "Unauthorized": "code=2100 [Unauthorized]",
    "ConfigurationException": "code=2300 [Query invalid because of configuration issue]",
}


def format_rows(cols, rows):
    """cqlsh table output: header left-aligned, values right-aligned, `(N rows)`."""
    widths = [len(c) for c in cols]
    for r in rows:
        for i, v in enumerate(r):
            widths[i] = max(widths[i], len(v))
    out = ["", " " + " | ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip(),
           "-" + "-+-".join("-" * w for w in widths) + "-"]
    for r in rows:
        out.append(" " + " | ".join(v.rjust(w) for v, w in zip(r, widths)))
    out += ["", "(%d rows)" % len(rows), ""]
    return "\n".join(out) + "\n"


def format_error(source, line, e):
    if e.kind == "AlreadyExists":
        return "%s:%d:AlreadyExists: %s" % (source, line, e)
    code = ERROR_CODES.get(e.kind, "code=2200 [Invalid query]")
    return '%s:%d:%s: Error from server: %s message="%s"' % (source, line, e.kind, code, e)


def describe(n, rest):
    words = rest.replace(";", "").split()
    if not words:
        raise schema.CqlError("SyntaxException", "line 1:8 no viable alternative at input '<EOF>'")
    what = words[0].lower()
    if what == "keyspaces":
        return "\n" + "  ".join(n.keyspaces) + "\n\n"
    if what in ("table", "columnfamily") and len(words) > 1:
        ks, t = schema._qualified(words[1], None)
        tinfo = cql._user_table(n, ks, t)
        return "\n" + schema.render_schema_cql(n.profile, ks, t, tinfo).replace("IF NOT EXISTS ", "") + "\n"
    if what == "keyspace" and len(words) > 1:
        ks = words[1]
        if ks not in n.keyspaces:
            raise schema.CqlError("InvalidRequest", "'%s' not found in keyspaces" % ks)
        out = "\n" + schema.render_create_keyspace(ks, n.keyspaces[ks]) + "\n"
        for t, tinfo in n.keyspaces[ks]["tables"].items():
            out += "\n" + schema.render_schema_cql(n.profile, ks, t, tinfo).replace("IF NOT EXISTS ", "")
        return out + "\n"
    raise schema.CqlError("SyntaxException", "unsupported DESCRIBE %s" % what)


def run(argv):
    p = argparse.ArgumentParser(prog="cqlsh", add_help=False)
    p.add_argument("host", nargs="?", default="127.0.0.1")
    p.add_argument("port", nargs="?", default="9042")
    p.add_argument("-e", "--execute")
    p.add_argument("-f", "--file")
    p.add_argument("-u", "--username")
    p.add_argument("-p", "--password")
    p.add_argument("-k", "--keyspace")
    p.add_argument("--request-timeout")
    p.add_argument("--connect-timeout")
    p.add_argument("--ssl", action="store_true")
    p.add_argument("--no-color", action="store_true")
    a = p.parse_args(argv)
    out, err = [], []
    with node_mod.lock():
        try:
            n = node_mod.Node.load()
        except util.EmuError:
            n = None
        if (n is None or not n.running or not n.state.get("native_transport", True)
                or not node_mod.answers_on(n, a.host) or str(a.port) != "9042"):
            err.append("Connection error: ('Unable to connect to any servers', {'%s:%s': "
                       "ConnectionRefusedError(111, \"Tried connecting to [('%s', %s)]. Last error: "
                       "Connection refused\")})\n" % (a.host, a.port, a.host, a.port))
            return 1, "", "".join(err)
        if a.execute is not None:
            text, source = a.execute, "<stdin>"
        elif a.file:
            try:
                with open(a.file, encoding="utf-8") as f:
                    text = f.read()
            except OSError as e:
                return 1, "", "Could not open '%s': %s\n" % (a.file, e.strerror)
            source = a.file
        else:
            text, source = sys.stdin.read(), "<stdin>"
        rc = 0
        ks = a.keyspace
        try:
            for stmt, line in _statements_with_lines(text):
                try:
                    st = schema.parse(stmt, ks)
                    if st["op"] == "use":
                        if st["ks"] not in n.keyspaces:
                            raise schema.CqlError("InvalidRequest", "Keyspace '%s' does not exist" % st["ks"])
                        ks = st["ks"]
                        continue
                    if st["op"] == "describe":
                        out.append(describe(n, st["rest"]))
                        continue
                    res = cql.execute(n, st)
                    if res is not None:
                        out.append(format_rows(*res))
                except schema.CqlError as e:
                    err.append(format_error(source, line, e) + "\n")
                    rc = 2
                except util.EmuError as e:
                    err.append('%s:%d:ServerError: %s\n' % (source, line, e))
                    rc = 2
        finally:
            n.save()
    return rc, "".join(out), "".join(err)


def _statements_with_lines(text):
    """Statements with the 1-based line where each starts."""
    pos = 0
    for stmt in schema.split_statements(text):
        first = stmt.split("\n", 1)[0]
        idx = text.find(first, pos)
        line = text.count("\n", 0, idx) + 1 if idx >= 0 else 1
        if idx >= 0:
            pos = idx + len(first)
        yield stmt, line


def main(argv=None):
    rc, out, err = run(sys.argv[1:] if argv is None else argv)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return rc
