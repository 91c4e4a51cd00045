"""`sstableloader` double: LoaderOptions parsing, output and exit codes, and a stream that lands
in the receiving node's live table folders under new ids, the way received sstables do.

Model (see docs/emulator.md): the emulator only knows the node of this host (CASSANDRA_CONF), so
the "ring" is that node when one of the `-d` contact points reaches it; every sstable of the
folder is streamed to it (no token split)."""

import os
import sys
import time

from . import node as node_mod
from . import nt_data, sstable, util

USAGE = "usage: sstableloader [options] <dir_path>"
HEADER = ("Bulk load the sstables found in the directory <dir_path> to the configured cluster.The "
          "parent directories of <dir_path> are used as the target keyspace/table name. So for "
          "instance, to load an sstable named Standard1-g-1-Data.db into Keyspace1/Standard1, you "
          "will need to have the files Standard1-g-1-Data.db and Standard1-g-1-Index.db into a "
          "directory /path/to/Keyspace1/Standard1/.")

# (short, long, takes a value, first release with it)
OPTIONS = [
    ("v", "verbose", False, (2, 0)),
    ("h", "help", False, (2, 0)),
    (None, "no-progress", False, (2, 0)),
    ("i", "ignore", True, (2, 0)),
    ("d", "nodes", True, (2, 0)),
    ("p", "port", True, (2, 0)),
    ("sp", "storage-port", True, (3, 0)),
    ("ssp", "ssl-storage-port", True, (3, 0)),
    ("t", "throttle", True, (2, 0)),
    ("idct", "inter-dc-throttle", True, (3, 0)),
    ("e", "entire-sstable-throttle", True, (4, 1)),
    ("eidct", "entire-sstable-inter-dc-throttle", True, (4, 1)),
    ("u", "username", True, (2, 0)),
    ("pw", "password", True, (2, 0)),
    ("ap", "auth-provider", True, (2, 2)),
    ("cph", "connections-per-host", True, (2, 0)),
    ("ts", "truststore", True, (2, 0)),
    ("tspw", "truststore-password", True, (2, 0)),
    ("ks", "keystore", True, (2, 0)),
    ("kspw", "keystore-password", True, (2, 0)),
    ("prtcl", "ssl-protocol", True, (2, 0)),
    ("alg", "ssl-alg", True, (2, 0)),
    ("st", "store-type", True, (2, 0)),
    ("ciphers", "ssl-ciphers", True, (2, 0)),
    ("f", "conf-path", True, (2, 1)),
    ("k", "target-keyspace", True, (4, 0)),
]


class Exit(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


class Out:
    def __init__(self):
        self.out, self.err = [], []

    def p(self, s=""):
        self.out.append(s + "\n")

    def e(self, s=""):
        self.err.append(s + "\n")

    def usage(self, options):
        self.p(USAGE)
        self.p(HEADER)
        for short, long_, value, _since in options:
            flag = ("-%s," % short if short else "   ") + "--" + long_
            self.p(" %s%s" % (flag, " <arg>" if value else ""))

    def fail(self, msg, options):
        """LoaderOptions.errorMsg: message on stderr, usage on stdout, exit 1."""
        self.e(msg)
        self.usage(options)
        raise Exit(1)


def options_for(major):
    return [o for o in OPTIONS if major >= o[3]]


def parse(argv, options, o):
    """commons-cli GnuParser: `-x v`, `--long v`, `--long=v`; the rest are arguments."""
    by_name = {}
    for opt in options:
        if opt[0]:
            by_name["-" + opt[0]] = opt
        by_name["--" + opt[1]] = opt
    vals, args = {}, []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            args += argv[i + 1:]
            break
        name, inline = (a.split("=", 1) + [None])[:2] if a.startswith("--") else (a, None)
        if a.startswith("-") and len(a) > 1:
            opt = by_name.get(name)
            if opt is None:
                o.fail("Unrecognized option: %s" % a, options)
            if opt[2]:
                if inline is None:
                    if i + 1 >= len(argv):
                        o.fail("Missing argument for option: %s" % (opt[0] or opt[1]), options)
                    inline = argv[i + 1]
                    i += 1
                vals[opt[1]] = inline
            else:
                vals[opt[1]] = True
        else:
            args.append(a)
        i += 1
    return vals, args


def pretty_memory(size):
    """FBUtilities.prettyPrintMemory."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return "%.3f%s" % (size / scale, unit)
    return "%dbytes" % size


def contact_points(vals, native_port, o, options):
    points = []
    for item in vals["nodes"].split(","):
        item = item.strip()
        host, port = item, native_port
        if item.count(":") == 1:
            host, p = item.split(":")
            port = p
        if not host:
            o.fail("Unknown host: %s" % item, options)
        points.append((host, str(port)))
    return points


def index_component(desc):
    return "Partitions.db" if desc.fmt == "bti" else "Index.db"


def run(argv):
    o = Out()
    try:
        return _run(argv, o)
    except Exit as e:
        return e.code, "".join(o.out), "".join(o.err)


def _run(argv, o):
    try:
        probe = node_mod.Node.load()
    except util.EmuError:
        probe = None
    major = probe.profile.major if probe else (5, 0)
    options = options_for(major)
    vals, args = parse(argv, options, o)
    if vals.get("help"):
        o.usage(options)
        raise Exit(0)
    if not args:
        o.e("Missing sstable directory argument")
        o.usage(options)
        raise Exit(1)
    if len(args) > 1:
        o.e("Too many arguments")
        o.usage(options)
        raise Exit(1)
    directory = args[0]
    if not os.path.exists(directory):
        o.fail("Unknown directory: %s" % directory, options)
    if not os.path.isdir(directory):
        o.fail("%s is not a directory" % directory, options)
    if vals.get("conf-path") and not os.path.exists(vals["conf-path"]):
        o.fail("Config file not found", options)
    native_port = vals.get("port", "9042")
    storage_port = vals.get("storage-port", "7000")
    for opt in ("port", "storage-port", "connections-per-host", "throttle"):
        if opt in vals and not str(vals[opt]).isdigit():
            o.fail('For input string: "%s"' % vals[opt], options)
    if "nodes" not in vals:
        o.e("Initial hosts must be specified (-d)")
        o.usage(options)
        raise Exit(1)
    points = contact_points(vals, native_port, o, options)
    if "target-keyspace" in vals and not vals["target-keyspace"].strip():
        o.fail("Empty keyspace is not supported.", options)
    if ("username" in vals) != ("password" in vals):
        o.fail("Username and password must both be provided", options)
    path = os.path.abspath(directory)
    keyspace = vals.get("target-keyspace") or os.path.basename(os.path.dirname(path.rstrip("/")))
    with node_mod.lock():
        try:
            n = node_mod.Node.load()
        except util.EmuError:
            n = None
        reached = n is not None and n.running and n.state.get("native_transport", True) and any(
            node_mod.answers_on(n, h) and p == "9042" for h, p in points)
        if not reached:
            tried = ", ".join("/%s:%s" % (h, p) for h, p in points)
            cause = ", ".join("/%s:%s (com.datastax.driver.core.exceptions.TransportException: "
                              "[/%s:%s] Cannot connect)" % (h, p, h, p) for h, p in points)
            o.e("Unable to initialise org.apache.cassandra.utils.NativeSSTableLoaderClient")
            o.e("com.datastax.driver.core.exceptions.NoHostAvailableException: All host(s) tried for "
                "query failed (tried: %s)" % cause)
            o.e("java.lang.RuntimeException: Unable to initialise "
                "org.apache.cassandra.utils.NativeSSTableLoaderClient")
            o.e("\tat org.apache.cassandra.utils.NativeSSTableLoaderClient.init(NativeSSTableLoaderClient.java:0)")
            o.e("Caused by: com.datastax.driver.core.exceptions.NoHostAvailableException: All host(s) "
                "tried for query failed (tried: %s)" % tried)
            raise Exit(1)
        try:
            return stream(n, o, vals, path, keyspace, storage_port)
        finally:
            n.save()


def stream(n, o, vals, path, keyspace, storage_port):
    o.p("Established connection to initial hosts")
    o.p("Opening sstables and calculating sections to stream")
    started = time.monotonic()
    # The table name comes from the folder name, with or without its `-<id>`.
    table = os.path.basename(path.rstrip("/")).split("-")[0]
    tinfo = n.keyspaces.get(keyspace, {}).get("tables", {}).get(table)
    picked = []
    for d in sstable.list_sstables(path):
        name = os.path.basename(d.path("Data.db"))
        if not os.path.exists(d.path("Data.db")):
            continue
        if not os.path.exists(d.path(index_component(d))):
            o.p("Skipping file %s because index is missing" % name)
            continue
        if tinfo is None:
            o.p("Skipping file %s: table %s.%s doesn't exist" % (name, keyspace, table))
            continue
        if not n.profile.readable(d.ver, d.fmt) or (d.is_uuid and not n.profile.uuid_ids_supported):
            o.p("Skipping file %s, error opening it: Unsupported sstable version %s-%s" % (name, d.ver, d.fmt))
            continue
        picked.append(d)
    peer = "/%s:%s" % (n.address, storage_port) if n.profile.major >= (4, 0) else "/%s" % n.address
    size = sum(sstable.data_size(d) for d in picked)
    if picked:
        o.p("Streaming relevant part of %s to [%s]" % ("".join(d.path("Data.db") + " " for d in picked), peer))
        try:
            added = nt_data.receive(n, keyspace, table, picked, copy=True, repaired_at=0)
        except (OSError, util.EmuError) as e:
            o.e("Streaming to the following hosts failed:")
            o.e("[%s]" % peer)
            o.e("java.util.concurrent.ExecutionException: org.apache.cassandra.streaming.StreamException: "
                "Stream failed")
            o.e("Caused by: %s" % e)
            raise Exit(1)
        nt_data.rebuild_indexes(n, keyspace, table, added)
    if not vals.get("no-progress"):
        elapsed = max(time.monotonic() - started, 0.001)
        rate = pretty_memory(int(size / elapsed)) + "/s"
        if picked:
            o.p("progress: [%s]0:%d/%d 100%% total: 100%% %s (avg: %s)" % (peer, len(picked), len(picked), rate, rate))
        o.p()
        o.p("Summary statistics: ")
        o.p("   %-24s: %-10d" % ("Connections per host", int(vals.get("connections-per-host", 1))))
        o.p("   %-24s: %-10d" % ("Total files transferred", len(picked)))
        o.p("   %-24s: %-10s" % ("Total bytes transferred", pretty_memory(size)))
        o.p("   %-24s: %-10s" % ("Total duration", "%d ms" % int(elapsed * 1000)))
        o.p("   %-24s: %-10s" % ("Average transfer rate", rate))
        o.p("   %-24s: %-10s" % ("Peak transfer rate", rate))
    return 0, "".join(o.out), "".join(o.err)


def main(argv=None):
    rc, out, err = run(sys.argv[1:] if argv is None else argv)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return rc
