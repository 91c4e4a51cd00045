"""Runs several cassandra-emu commands in one Python process on a test host, so setting up a
node costs one interpreter start-up instead of one per command (the controller benchmark sets
up hundreds of hosts). Sent over ssh as the script on standard input:

    ssh -F ssh_config node1 python3 - 'init --force --version 4.1' 'start' 'flush ks' < emu_batch.py

Each argument is one command line of cassandra-emu (split like a shell would); the first that
fails stops the batch with its exit code. The emulator is found through the host's PATH.
"""
import os
import shlex
import shutil
import sys

emu_bin = shutil.which("cassandra-emu")
if emu_bin is None:
    sys.exit("emu_batch: cassandra-emu is not on PATH")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(emu_bin)), ".."))
from cassemu import emu  # noqa: E402

for command in sys.argv[1:]:
    rc = emu.main(shlex.split(command))
    if rc:
        print("emu_batch: `cassandra-emu %s` exited with %d" % (command, rc), file=sys.stderr)
        sys.exit(rc)
