#!/usr/bin/env python3
"""Concurrent HTTP/1.1 load for the tracer's context tests.

Usage: load_client.py BASE_URL --clients N --requests K
                      (--path-prefix P | --path P) [--keepalive] [--wait]

N threads start together (a barrier); each makes K GETs with http.client:
on one keep-alive connection with --keepalive, else a new connection per
request. Paths: --path-prefix P gives P<i> with i unique across all
requests (0 .. N*K-1); --path P is the same path for all.
--wait: print "WAITING" and wait for a line on stdin before starting.
Prints "RESULT ok=<count of 200> failed=<other>" at the end, and
"FAILED <path> <why>" for each failure; exits 1 if any failed.
"""
import argparse
import http.client
import sys
import threading
import urllib.parse


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--requests", type=int, default=1)
    parser.add_argument("--path-prefix", default="")
    parser.add_argument("--path", default="")
    parser.add_argument("--keepalive", action="store_true")
    parser.add_argument("--wait", action="store_true")
    opts = parser.parse_args()
    url = urllib.parse.urlsplit(opts.base_url)
    host, port = url.hostname, url.port

    if opts.wait:
        out("WAITING")
        if not sys.stdin.readline():
            raise SystemExit("stdin closed while waiting")

    lock = threading.Lock()
    results = {"ok": 0, "failed": 0}
    barrier = threading.Barrier(opts.clients)

    def path_of(i):
        return opts.path if opts.path else "%s%d" % (opts.path_prefix, i)

    def client(c):
        barrier.wait()
        conn = None
        for j in range(opts.requests):
            path = path_of(c * opts.requests + j)
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=60)
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
                why = "status %d" % response.status
            except (OSError, http.client.HTTPException) as e:
                ok, why = False, repr(e)
                conn = None
            if not opts.keepalive and conn is not None:
                conn.close()
                conn = None
            with lock:
                results["ok" if ok else "failed"] += 1
                if not ok:
                    out("FAILED %s %s" % (path, why))
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(opts.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out("RESULT ok=%d failed=%d" % (results["ok"], results["failed"]))
    sys.exit(1 if results["failed"] else 0)


if __name__ == "__main__":
    main()
