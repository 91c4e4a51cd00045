"""cassandra.yaml: write the file like a package install would, read back the keys we model."""

import os

from . import util


def conf_dir():
    return os.environ.get("CASSANDRA_CONF", "/etc/cassandra")


def yaml_path():
    return os.path.join(conf_dir(), "cassandra.yaml")


def _scalar(text):
    t = text.strip()
    if " #" in t:
        t = t.split(" #", 1)[0].strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return t[1:-1]
    low = t.lower()
    if low == "true":
        return True
    if low == "false":
        return False
    if low in ("null", "~", ""):
        return None
    try:
        return int(t)
    except ValueError:
        return t


def parse_yaml(text):
    """A small YAML subset: top-level scalars, `- item` lists and one level of nested maps.

    That is all cassandra.yaml uses for the keys we model (the rest is kept but ignored)."""
    out = {}
    key = None
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        line = raw.strip()
        if indent == 0:
            if ":" not in line:
                continue
            k, v = line.split(":", 1)
            key = k.strip()
            val = _scalar(v) if v.strip() else None
            out[key] = val
            continue
        if key is None:
            continue
        if line.startswith("- "):
            if not isinstance(out.get(key), list):
                out[key] = []
            out[key].append(_scalar(line[2:]))
        elif ":" in line:
            if not isinstance(out.get(key), dict):
                out[key] = {}
            k, v = line.split(":", 1)
            out[key][k.strip()] = _scalar(v)
    return out


def load():
    with open(yaml_path(), encoding="utf-8") as f:
        return parse_yaml(f.read())


def storage_dirs(conf, storagedir="/var/lib/cassandra"):
    """The directories Cassandra uses, with the storagedir defaults for missing keys."""
    data = conf.get("data_file_directories") or [os.path.join(storagedir, "data")]
    return {
        "data": [str(d) for d in data],
        "commitlog": str(conf.get("commitlog_directory") or os.path.join(storagedir, "commitlog")),
        "saved_caches": str(
            conf.get("saved_caches_directory") or os.path.join(storagedir, "saved_caches")
        ),
        "hints": str(conf.get("hints_directory") or os.path.join(storagedir, "hints")),
    }


def render(settings):
    """Render a cassandra.yaml with the real key names (package-install style)."""
    lines = [
        "# Cassandra storage config YAML (written by the cbk test emulator)",
        "cluster_name: '%s'" % settings["cluster_name"],
        "num_tokens: %d" % settings["num_tokens"],
        "",
        "# Directories where Cassandra should store data on disk.",
        "data_file_directories:",
    ]
    lines += ["    - %s" % d for d in settings["data_file_directories"]]
    lines += [
        "",
        "commitlog_directory: %s" % settings["commitlog_directory"],
        "saved_caches_directory: %s" % settings["saved_caches_directory"],
        "hints_directory: %s" % settings["hints_directory"],
        "",
        "incremental_backups: %s" % str(settings["incremental_backups"]).lower(),
        "snapshot_before_compaction: false",
        "auto_snapshot: %s" % str(settings.get("auto_snapshot", True)).lower(),
        "disk_failure_policy: stop",
        "listen_address: %s" % settings["listen_address"],
        "rpc_address: %s" % settings["listen_address"],
        "native_transport_port: 9042",
        "endpoint_snitch: GossipingPropertyFileSnitch",
        "seed_provider:",
        "    - class_name: org.apache.cassandra.locator.SimpleSeedProvider",
    ]
    if settings.get("uuid_ids") is not None:
        lines.append(
            "uuid_sstable_identifiers_enabled: %s" % str(settings["uuid_ids"]).lower()
        )
    if settings.get("storage_compatibility_mode"):
        lines.append("storage_compatibility_mode: %s" % settings["storage_compatibility_mode"])
    if settings.get("sstable_format"):
        lines += ["sstable:", "    selected_format: %s" % settings["sstable_format"]]
    return "\n".join(lines) + "\n"


def write(settings):
    util.makedirs(conf_dir())
    util.write_file(yaml_path(), render(settings))
