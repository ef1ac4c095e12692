#!/usr/bin/env python3
"""HTTPS client with Python's blocking `ssl` (OpenSSL's socket BIO: every
SSL_read and SSL_write makes its syscall on the connection's fd) for the
tracer's TLS tests.

  tls_client.py URL --cafile CA [--count N] [--wait]
      N GETs of URL with urllib, each on a new connection, verified against
      CA; prints "STATUS <code>" per request.
      --wait: print "WAITING" and wait for a line on stdin first.
"""
import argparse
import ssl
import sys
import urllib.request


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--cafile", required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--wait", action="store_true")
    args = parser.parse_args()
    context = ssl.create_default_context(cafile=args.cafile)
    if args.wait:
        out("WAITING")
        if not sys.stdin.readline():
            raise SystemExit("stdin closed while waiting")
    for _ in range(args.count):
        with urllib.request.urlopen(args.url, timeout=30, context=context) as response:
            response.read()
            out("STATUS %d" % response.status)


if __name__ == "__main__":
    main()
