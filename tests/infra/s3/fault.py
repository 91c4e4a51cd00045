"""mitmproxy addon: an S3 fault injector for tests (run as `mitmdump --mode reverse:URL -s fault.py`).

Per request, with seeded randomness: answer 503 SlowDown (P503), 500 InternalError (P500),
kill the connection without a response (PKILL), or stall for STALL_MS before forwarding (PSTALL).
Counts of what it did are rewritten to $FAULT_COUNTS (JSON) after every request, so tests can
assert that faults really happened.

Targeted faults: $FAULT_RULES names a JSON file (re-read whenever it changes) holding a list of
rules `{"match": REGEX, "action": "500" | "503" | "403" | "404" | "400" | "kill" | "stall:MS"}`. The first rule
whose regex matches `METHOD PATH?QUERY` decides, before the random faults (`stall:MS` waits MS
milliseconds, then forwards: a slow link); a test switches the store off and on by rewriting
the file.

Request log: with $REQUEST_LOG set, one JSON line per request is appended when it ends:
`{"method", "path", "query", "status" (null when the client got no response: then the server
may or may not have acted on it), "fault" (what was injected or null), "error" (why the flow
failed, or null), "t0" (request started, Unix seconds), "t1" (ended)}`.
"""
import asyncio
import json
import os
import random
import re
import time

from mitmproxy import http

P503 = float(os.environ.get("P503", "0"))
P500 = float(os.environ.get("P500", "0"))
PKILL = float(os.environ.get("PKILL", "0"))
PSTALL = float(os.environ.get("PSTALL", "0"))
STALL_MS = int(os.environ.get("STALL_MS", "0"))
COUNTS = os.environ.get("FAULT_COUNTS")
RULES = os.environ.get("FAULT_RULES")
LOG = os.environ.get("REQUEST_LOG")
ERR = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{c}</Code><Message>{m}</Message>'
       '<RequestId>FAULT</RequestId></Error>')
ERRORS = {
    "500": ("InternalError", "We encountered an internal error. Please try again."),
    "503": ("SlowDown", "Please reduce your request rate."),
    "403": ("AccessDenied", "Access Denied"),
    "404": ("NoSuchBucket", "The specified bucket does not exist"),
    "400": ("InvalidArgument", "Invalid argument."),
}


class Fault:
    def __init__(self):
        self.rnd = random.Random(int(os.environ.get("SEED", "1")))
        self.counts = {"requests": 0, "503": 0, "500": 0, "killed": 0, "stalled": 0, "ruled": 0}
        self.rules = []
        self.rules_stamp = None

    def save(self):
        if not COUNTS:
            return
        tmp = COUNTS + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.counts, f)
        os.replace(tmp, COUNTS)

    def current_rules(self):
        if not RULES:
            return []
        try:
            st = os.stat(RULES)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            self.rules, self.rules_stamp = [], None
            return self.rules
        if stamp != self.rules_stamp:
            with open(RULES) as f:
                self.rules = [(re.compile(r["match"]), r["action"]) for r in json.load(f)]
            self.rules_stamp = stamp
        return self.rules

    def log(self, flow: http.HTTPFlow, status, fault, error=None):
        if not LOG or flow.metadata.get("cbk_logged"):
            return
        flow.metadata["cbk_logged"] = True
        path, _, query = flow.request.path.partition("?")
        line = json.dumps({"method": flow.request.method, "path": path, "query": query,
                           "status": status, "fault": fault, "error": error,
                           "t0": flow.request.timestamp_start, "t1": time.time()})
        with open(LOG, "a") as f:
            f.write(line + "\n")

    def respond(self, flow: http.HTTPFlow, code: str):
        c, m = ERRORS[code]
        flow.response = http.Response.make(int(code), ERR.format(c=c, m=m),
                                           {"Content-Type": "application/xml"})
        self.log(flow, int(code), code)

    async def request(self, flow: http.HTTPFlow):
        self.counts["requests"] += 1
        r = self.rnd.random()
        target = f"{flow.request.method} {flow.request.path}"
        rule = next((a for rx, a in self.current_rules() if rx.search(target)), None)
        if rule is not None and rule.startswith("stall:"):
            self.counts["stalled"] += 1
            await asyncio.sleep(int(rule.split(":", 1)[1]) / 1000)
        elif rule is not None:
            self.counts["ruled"] += 1
            if rule == "kill":
                self.log(flow, None, "kill")
                flow.kill()
            else:
                self.respond(flow, rule)
        elif r < P503:
            self.counts["503"] += 1
            self.respond(flow, "503")
        elif r < P503 + P500:
            self.counts["500"] += 1
            self.respond(flow, "500")
        elif r < P503 + P500 + PKILL:
            self.counts["killed"] += 1
            self.log(flow, None, "kill")
            flow.kill()
        elif r < P503 + P500 + PKILL + PSTALL:
            self.counts["stalled"] += 1
            await asyncio.sleep(STALL_MS / 1000)
        self.save()

    def response(self, flow: http.HTTPFlow):
        self.log(flow, flow.response.status_code, None)

    def error(self, flow: http.HTTPFlow):
        self.log(flow, None, None, str(flow.error))


addons = [Fault()]
