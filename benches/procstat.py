#!/usr/bin/env python3
"""Samples one process (the cbk controller) from /proc until it exits, for the benchmarks.

    procstat.py PID SSH_MARK [INTERVAL]

Every INTERVAL seconds (default 0.05) it reads the process's resident memory (VmRSS, and
VmHWM, the kernel's own peak), its open descriptors (/proc/PID/fd), its CPU time
(utime + stime) and its threads, and counts the `ssh` client processes whose command line
contains SSH_MARK (the cluster's ssh_config path: the controller's ssh masters are daemonized
and are not its children). On exit it prints one JSON object with the peaks and the last
CPU time seen. The load average is read at the start and the end.
"""
import json
import os
import sys
import time

pid, mark = int(sys.argv[1]), sys.argv[2]
interval = float(sys.argv[3]) if len(sys.argv) > 3 else 0.05
tick = os.sysconf("SC_CLK_TCK")


def status(p):
    out = {}
    with open(f"/proc/{p}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


def ssh_clients():
    n, cpu = 0, 0.0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/comm") as f:
                if f.read().strip() != "ssh":
                    continue
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if mark.encode() not in f.read():
                    continue
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            n += 1
            cpu += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            continue
    return n, cpu


peak = {"rss_kib": 0, "hwm_kib": 0, "fds": 0, "ssh": 0, "threads": 0}
ssh_cpu = {}
cpu = 0.0
load_start = os.getloadavg()[0]
samples = 0
while True:
    try:
        st = status(pid)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            break
        cpu = (int(fields[11]) + int(fields[12])) / tick
    except OSError:
        break
    n, _ = ssh_clients()
    samples += 1
    peak["rss_kib"] = max(peak["rss_kib"], int(st.get("VmRSS", [0])[0]))
    peak["hwm_kib"] = max(peak["hwm_kib"], int(st.get("VmHWM", [0])[0]))
    peak["threads"] = max(peak["threads"], int(st.get("Threads", [0])[0]))
    peak["fds"] = max(peak["fds"], fds)
    peak["ssh"] = max(peak["ssh"], n)
    time.sleep(interval)
peak.update(cpu_s=round(cpu, 2), samples=samples, load_start=round(load_start, 2),
            load_end=round(os.getloadavg()[0], 2))
print(json.dumps(peak))
