"""mitmproxy addon: an S3 fault injector for tests (run as `mitmdump --mode reverse:URL -s fault.py`).

Per request, with seeded randomness: answer 503 SlowDown (P503), 500 InternalError (P500),
kill the connection without a response (PKILL), or stall for STALL_MS before forwarding (PSTALL).
Counts of what it did are rewritten to $FAULT_COUNTS (JSON) after every request, so tests can
assert that faults really happened.
"""
import asyncio
import json
import os
import random

from mitmproxy import http

P503 = float(os.environ.get("P503", "0"))
P500 = float(os.environ.get("P500", "0"))
PKILL = float(os.environ.get("PKILL", "0"))
PSTALL = float(os.environ.get("PSTALL", "0"))
STALL_MS = int(os.environ.get("STALL_MS", "0"))
COUNTS = os.environ.get("FAULT_COUNTS")
ERR = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{c}</Code><Message>{m}</Message>'
       '<RequestId>FAULT</RequestId></Error>')


class Fault:
    def __init__(self):
        self.rnd = random.Random(int(os.environ.get("SEED", "1")))
        self.counts = {"requests": 0, "503": 0, "500": 0, "killed": 0, "stalled": 0}

    def save(self):
        if not COUNTS:
            return
        tmp = COUNTS + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.counts, f)
        os.replace(tmp, COUNTS)

    async def request(self, flow: http.HTTPFlow):
        self.counts["requests"] += 1
        r = self.rnd.random()
        if r < P503:
            self.counts["503"] += 1
            flow.response = http.Response.make(
                503, ERR.format(c="SlowDown", m="Please reduce your request rate."),
                {"Content-Type": "application/xml"})
        elif r < P503 + P500:
            self.counts["500"] += 1
            flow.response = http.Response.make(
                500, ERR.format(c="InternalError", m="We encountered an internal error. Please try again."),
                {"Content-Type": "application/xml"})
        elif r < P503 + P500 + PKILL:
            self.counts["killed"] += 1
            flow.kill()
        elif r < P503 + P500 + PKILL + PSTALL:
            self.counts["stalled"] += 1
            await asyncio.sleep(STALL_MS / 1000)
        self.save()


addons = [Fault()]
