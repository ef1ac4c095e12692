#!/usr/bin/env python3
"""HTTP/1.1 test client for the tracer's integration tests.

  client.py urllib URL [--count N] [--wait]
      N requests with urllib (a new connection each); prints "STATUS <code>" per request.
      --wait: print "WAITING" and wait for a line on stdin before the first request.

  client.py raw HOST PORT [--count N] [--pipeline] [--pause-after K] PATH [PATH ...]
      One TCP connection; GETs of PATH... (repeated N times) with keep-alive.
      Prints "LOCAL_PORT <port>" once connected, then "STATUS <code>" per response.
      --pipeline: every request goes out in one sendall before any response is read.
      --pause-after K: after K exchanges print "PAUSED" and wait for a line on stdin
      before sending the rest on the same connection.
"""
import argparse
import socket
import sys
import urllib.error
import urllib.request


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def wait_for_go():
    out("WAITING")
    if not sys.stdin.readline():
        raise SystemExit("stdin closed while waiting")


def run_urllib(args):
    if args.wait:
        wait_for_go()
    for _ in range(args.count):
        try:
            with urllib.request.urlopen(args.url, timeout=30) as response:
                response.read()
                out("STATUS %d" % response.status)
        except urllib.error.HTTPError as e:
            e.read()
            out("STATUS %d" % e.code)


class Reader:
    """Reads HTTP/1.1 responses off a socket."""

    def __init__(self, sock):
        self.file = sock.makefile("rb")

    def line(self):
        data = self.file.readline(65537)
        if not data:
            raise EOFError("connection closed")
        return data

    def exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.file.read(n - len(data))
            if not chunk:
                raise EOFError("connection closed in a body")
            data += chunk
        return data

    def response(self, head_request=False):
        status_line = self.line().decode("latin-1")
        status = int(status_line.split()[1])
        headers = {}
        while True:
            line = self.line().decode("latin-1").rstrip("\r\n")
            if not line:
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if head_request or status in (204, 304) or 100 <= status < 200:
            return status
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self.line().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.line() not in (b"\r\n", b"\n"):
                        pass
                    break
                self.exact(size)
                self.line()
        else:
            self.exact(int(headers.get("content-length", "0")))
        return status


def request(host, port, path):
    host_header = "[%s]" % host if ":" in host else host
    return (
        "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: tracer-test-raw/1\r\n"
        "Accept: */*\r\n\r\n" % (path, host_header, port)
    ).encode()


def run_raw(args):
    paths = args.paths * args.count
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect((args.host, args.port))
    out("LOCAL_PORT %d" % sock.getsockname()[1])
    reader = Reader(sock)
    if args.pipeline:
        sock.sendall(b"".join(request(args.host, args.port, p) for p in paths))
        for _ in paths:
            out("STATUS %d" % reader.response())
    else:
        for i, path in enumerate(paths):
            if args.pause_after is not None and i == args.pause_after:
                out("PAUSED")
                if not sys.stdin.readline():
                    raise SystemExit("stdin closed while paused")
            sock.sendall(request(args.host, args.port, path))
            out("STATUS %d" % reader.response())
    sock.close()


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    u = sub.add_parser("urllib")
    u.add_argument("url")
    u.add_argument("--count", type=int, default=1)
    u.add_argument("--wait", action="store_true")
    r = sub.add_parser("raw")
    r.add_argument("host")
    r.add_argument("port", type=int)
    r.add_argument("paths", nargs="+")
    r.add_argument("--count", type=int, default=1)
    r.add_argument("--pipeline", action="store_true")
    r.add_argument("--pause-after", type=int)
    args = parser.parse_args()
    if args.mode == "urllib":
        run_urllib(args)
    else:
        run_raw(args)


if __name__ == "__main__":
    main()
