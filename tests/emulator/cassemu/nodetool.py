"""`nodetool` double: options, output strings, padding, units and exit codes per version."""

import sys

from . import node as node_mod
from . import nt_cluster, nt_data, nt_snapshots, startup, util

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


COMMANDS = {
    "version": (nt_cluster.c_version, {}, {}),
    "statusbackup": (nt_data.c_statusbackup, {}, {}),
    "enablebackup": (nt_data.c_enablebackup, {}, {}),
    "disablebackup": (nt_data.c_disablebackup, {}, {}),
    "flush": (nt_data.c_flush, {}, {}),
    "drain": (nt_data.c_drain, {}, {}),
    "snapshot": (nt_snapshots.c_snapshot, {"-t": "tag", "--tag": "tag", "-cf": "table", "--column-family": "table",
                              "--table": "table", "-kt": "ktlist", "--kt-list": "ktlist", "-kc": "ktlist",
                              "--kc.list": "ktlist", "--ttl": "ttl"},
                 {"-sf": "skip_flush", "--skip-flush": "skip_flush"}),
    "listsnapshots": (nt_snapshots.c_listsnapshots, {}, {"-nt": "no_ttl", "--no-ttl": "no_ttl", "-e": "ephemeral",
                                            "--ephemeral": "ephemeral"}),
    "clearsnapshot": (nt_snapshots.c_clearsnapshot, {"-t": "tag", "--tag": "tag", "--older-than": "older_than",
                                        "--older-than-timestamp": "older_than_timestamp"}, {"--all": "all"}),
    "info": (nt_cluster.c_info, {}, {"-T": "tokens", "--tokens": "tokens"}),
    "status": (nt_cluster.c_status, {}, {"-r": "resolve_ip", "--resolve-ip": "resolve_ip"}),
    "describecluster": (nt_cluster.c_describecluster, {}, {}),
    "ring": (nt_cluster.c_ring, {}, {"-r": "resolve_ip"}),
    "getendpoints": (nt_cluster.c_getendpoints, {}, {}),
    "repair": (nt_cluster.c_repair, {"-st": "st", "-et": "et", "-j": "jobs", "-dc": "dc", "-hosts": "hosts"},
               {"-full": "full", "--full": "full", "-pr": "pr", "--partitioner-range": "pr", "-seq": "seq",
                "--sequential": "seq", "-dcpar": "dcpar", "-local": "local", "-os": "os", "-iuk": "iuk",
                "-inc": "inc"}),
    "refresh": (nt_data.c_refresh, {}, {}),
    "rebuild_index": (nt_data.c_rebuild_index, {}, {}),
    "import": (nt_data.c_import, {}, {"-l": "keep_level", "--keep-level": "keep_level", "-r": "keep_repaired",
                              "--keep-repaired": "keep_repaired", "-v": "no_verify", "--no-verify": "no_verify",
                              "-t": "no_tokens", "--no-tokens": "no_tokens", "-c": "no_invalidate",
                              "--no-invalidate-caches": "no_invalidate", "-q": "quick", "--quick": "quick",
                              "-e": "extended", "--extended-verify": "extended", "-p": "copy_data",
                              "--copy-data": "copy_data"}),
    "datapaths": (nt_data.c_datapaths, {"-F": "format", "--format": "format"}, {}),
}


def available(profile, name):
    if name == "import" and not profile.import_cmd:
        return False
    if name == "datapaths" and not profile.datapaths:
        return False
    return True


def options_for(profile, cmd):
    """(handler, options, flags) of a command as this release's nodetool knows them."""
    fn, opts, flags = COMMANDS[cmd]
    opts, flags = dict(opts), dict(flags)
    if profile is None:
        return fn, opts, flags
    drop = set()
    if cmd == "snapshot":
        drop |= set() if profile.skip_flush else {"-sf", "--skip-flush"}
        drop |= set() if profile.ttl else {"--ttl"}
    if cmd == "clearsnapshot":
        drop |= set() if profile.clearsnapshot_needs_tag else {"--all"}
        drop |= set() if profile.major >= (5, 0) else {"--older-than", "--older-than-timestamp"}
    if cmd == "listsnapshots":
        drop |= set() if profile.ttl else {"-nt", "--no-ttl"}
        drop |= set() if profile.major >= (5, 0) else {"-e", "--ephemeral"}
    return (fn, {k: v for k, v in opts.items() if k not in drop},
            {k: v for k, v in flags.items() if k not in drop})


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
        if a in GLOBAL_FLAGS or a.split("=", 1)[0] in GLOBAL_OPTS:
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
            if cmd not in COMMANDS or (n0 and not available(n0.profile, cmd)):
                raise util.UsageError("Found unexpected parameters: [%s]" % cmd)
            fn, opts, flags = options_for(n0.profile if n0 else None, cmd)
            vals, pos = parse_args(rest, opts, flags)
            if n0 is None:
                raise util.ConnectError("Failed to connect to '%s:%s' - ConnectException: 'Connection refused'."
                                        % (vals.get("host", "127.0.0.1"), vals.get("port", "7199")))
            n = connect(vals)
            if n.profile.ttl:
                startup.drop_ephemeral_and_expired(n, ephemeral=False)  # the periodic TTL cleaner
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
