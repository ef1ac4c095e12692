#!/usr/bin/env python3
"""HTTP/1.1 client that follows a request plan, for the metrics tests.

Usage: plan_client.py BASE_URL --plan PATH=COUNT [--plan ...]
                      [--spread SECONDS] [--connections N]

Each plan entry asks for COUNT GETs of PATH. In PATH, `{i}` becomes the
request's index within its entry (0 .. COUNT-1) and `{w}` a word made of
letters from that index (`ba`, `bb`, ...: never taken for an id), so one
entry can ask for many distinct paths. The requests of all entries are
shuffled (fixed seed), sent over N keep-alive connections in turn, and
spread evenly over SECONDS (0: as fast as possible).
Prints "RESULT <status>=<count> ..." at the end; exits 1 on a failed request
(no answer), not on an error status.
"""
import argparse
import http.client
import random
import sys
import time
import urllib.parse
from collections import Counter


def word(i):
    letters = ""
    i += 26  # at least two letters
    while i:
        i, r = divmod(i, 26)
        letters = chr(ord("a") + r) + letters
    return letters


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("--plan", action="append", default=[])
    parser.add_argument("--spread", type=float, default=0.0)
    parser.add_argument("--connections", type=int, default=1)
    opts = parser.parse_args()
    url = urllib.parse.urlsplit(opts.base_url)

    requests = []
    for entry in opts.plan:
        path, count = entry.rsplit("=", 1)
        for i in range(int(count)):
            requests.append(path.replace("{i}", str(i)).replace("{w}", word(i)))
    random.Random(7).shuffle(requests)

    conns = [http.client.HTTPConnection(url.hostname, url.port, timeout=30)
             for _ in range(max(1, opts.connections))]
    pause = opts.spread / len(requests) if requests and opts.spread > 0 else 0.0
    seen = Counter()
    for n, path in enumerate(requests):
        conn = conns[n % len(conns)]
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            seen[resp.status] += 1
        except Exception as e:  # noqa: BLE001 - report any failure
            sys.stdout.write("FAILED %s %r\n" % (path, e))
            sys.stdout.flush()
            return 1
        if pause:
            time.sleep(pause)
    for conn in conns:
        conn.close()
    sys.stdout.write("RESULT " + " ".join("%d=%d" % kv for kv in sorted(seen.items())) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
