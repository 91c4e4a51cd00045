"""Version profiles: everything that differs between the emulated Cassandra releases."""

import os

# Where the real fixture sstables are: env CASSEMU_FIXTURES, else the repository's
# tests/fixtures/cassandra next to this emulator. A relative CASSEMU_FIXTURES is taken relative
# to the directory the tool was started in and made absolute here, so the node's background
# process (which runs elsewhere) inherits a path that still works.
_DEFAULT_FIXTURES = os.path.normpath(
    os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "cassandra")
)
if os.environ.get("CASSEMU_FIXTURES"):
    os.environ["CASSEMU_FIXTURES"] = os.path.abspath(os.environ["CASSEMU_FIXTURES"])
FIXTURES = os.environ.get("CASSEMU_FIXTURES", _DEFAULT_FIXTURES)

# Real fixture sstables per sstable version (tests/fixtures/cassandra, copied from apache/cassandra).
FIXTURE_SSTABLES = {
    "ka": ["ka/legacy_tables/legacy_ka_simple"],
    "la": ["la/legacy_tables/legacy_la_simple"],
    "mc": ["mc/legacy_tables/legacy_mc_simple"],
    "me": ["me/legacy_tables/legacy_me_simple"],
    "na": ["na/legacy_tables/legacy_na_simple"],
    "nb": ["nb/legacy_tables/legacy_nb_simple", "nb/legacy_tables/legacy_nb_clust"],
    "oa": ["oa/legacy_tables/legacy_oa_simple"],
    "da": ["da/legacy_tables/legacy_da_simple", "da/legacy_tables/legacy_da_clust"],
}


class Profile:
    """What one Cassandra release looks like from outside (files, nodetool, yaml)."""

    def __init__(self, name, release, sst_version, **kw):
        self.name = name
        self.release = release
        self.sst_version = sst_version
        self.major = tuple(int(x) for x in name.split("."))
        # Digest: Adler-32 before 3.0 (Digest.adler32 for la/lb), CRC32 after.
        self.digest_component = "Digest.adler32" if self.major < (3, 0) else "Digest.crc32"
        self.binary_units = self.major >= (3, 11)  # KiB/MiB since 3.6
        self.schema_cql = self.major >= (3, 0)  # 3.0.9+ (our 3.0 profile is 3.0.17)
        self.schema_indent = "\t" if self.major < (4, 0) else "    "
        self.has_system_schema = self.major >= (3, 0)
        self.skip_flush = self.major >= (3, 11)  # added in 3.4
        self.snapshot_options_in_output = self.major >= (3, 11)
        self.positional_kt = self.major >= (3, 11)
        self.ttl = self.major >= (4, 1)
        self.import_cmd = self.major >= (4, 0)
        self.refresh_deprecated = self.major >= (4, 0)
        self.datapaths = self.major >= (4, 1)
        self.clearsnapshot_needs_tag = self.major >= (4, 0)
        self.local_system_first_dir = self.major >= (4, 0)
        self.list_dropped_snapshots = self.major >= (4, 1)
        self.list_hides_local_system = self.major < (4, 0)
        self.manifest_style = (
            "jackson-pretty"
            if self.major >= (5, 0)
            else ("jackson" if self.major >= (4, 1) else "json-simple")
        )
        self.ephemeral_in_manifest = self.major >= (5, 0)
        self.uuid_ids_supported = self.major >= (4, 1)
        self.drain_on_stop = self.major >= (3, 0)
        self.commitlog_version = {2: 5, 3: 6, 4: 7, 5: 7}[self.major[0]]
        self.print_port = self.major >= (4, 0)
        self.default_tokens = 16 if self.major >= (4, 0) else 256
        self.__dict__.update(kw)

    def readable(self, version, fmt):
        """Can this release load sstables of `version`/`fmt` (checkSSTablesFormat)?"""
        if fmt == "bti":
            return self.major >= (5, 0) and version[0] == "d"
        if fmt not in ("big", None):
            return False
        if version[0] > self.sst_version_big[0]:
            return False
        earliest = "ma" if self.major >= (4, 0) else ("jb" if self.major >= (3, 0) else "ja")
        return version >= earliest

    @property
    def sst_version_big(self):
        return "oa" if self.major >= (5, 0) else self.sst_version


PROFILES = {
    "2.2": Profile("2.2", "2.2.6", "la"),
    "3.0": Profile("3.0", "3.0.17", "mc"),
    "3.11": Profile("3.11", "3.11.16", "me"),
    "4.0": Profile("4.0", "4.0.11", "nb"),
    "4.1": Profile("4.1", "4.1.3", "nb"),
    "5.0": Profile("5.0", "5.0.2", "nb"),
}


def get(name):
    return PROFILES[name]


def write_version(profile, yaml_conf):
    """(sstable version, format) this node writes, from the profile and cassandra.yaml (5.0)."""
    if profile.major >= (5, 0):
        mode = str(yaml_conf.get("storage_compatibility_mode", "CASSANDRA_4"))
        sel = yaml_conf.get("sstable", {})
        fmt = sel.get("selected_format", "big") if isinstance(sel, dict) else "big"
        if mode == "NONE":
            return ("da", "bti") if fmt == "bti" else ("oa", "big")
        return "nb", "big"
    return profile.sst_version, "big"
