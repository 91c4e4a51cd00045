#!/usr/bin/env python3
"""Clones the flushed sstable nb-1 of bench.events COUNT times (generations 1000+), spread over
the node's data folders, for the benchmarks:

    clone_sstables.py DATA_ROOT COUNT SIZE_BYTES

With SIZE_BYTES > 0 every clone gets a Data.db of that many pseudo-random bytes (like
Cassandra's own LZ4-compressed data: incompressible) and a matching Digest.crc32; its other
components are hard links of nb-1's. With 0 every component is a hard link (many small
unchanged components). Data.db MiB blocks differ from each other (a
rotation of one random MiB each). New files get the owner of their folder (the emulated node's user).
"""
import glob, os, sys, zlib
root, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = sorted(glob.glob(f"{root}/data*/bench/events-*/nb-1-big-Data.db"))[0]
table = os.path.dirname(data)
dirs = sorted(glob.glob(f"{root}/data*/bench/events-*"))
comps = [f for f in os.listdir(table) if f.startswith("nb-1-big-")]
blob = os.urandom(1 << 20)
for i in range(count):
    gen = 1000 + i
    dest = dirs[i % len(dirs)]
    if size:
        crc = 0
        with open(f"{dest}/nb-{gen}-big-Data.db", "wb") as f:
            for j in range(size >> 20):
                # A rotation of one random MiB, different for every (sstable, MiB): no two
                # files or blocks are alike, so a deduplicating server (Garage) stores them all.
                r = (gen * 4099 + j * 17) % len(blob)
                chunk = blob[r:] + blob[:r]
                f.write(chunk); crc = zlib.crc32(chunk, crc)
        st = os.stat(dest)
        os.chown(f"{dest}/nb-{gen}-big-Data.db", st.st_uid, st.st_gid)
    for c in comps:
        name = c.replace("nb-1-big-", f"nb-{gen}-big-")
        if size and c.endswith("Data.db"):
            continue
        if size and c.endswith("Digest.crc32"):
            open(f"{dest}/{name}", "w").write(str(crc & 0xffffffff))
            st = os.stat(dest)
            os.chown(f"{dest}/{name}", st.st_uid, st.st_gid)
            continue
        os.link(f"{table}/{c}", f"{dest}/{name}")
