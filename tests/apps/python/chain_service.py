#!/usr/bin/env python3
"""One service of a chain A -> B -> C for the tracer's context tests.

Usage: chain_service.py PORT [--downstream BASE_URL] [--log FILE] [--name NAME]

A threading HTTP/1.1 server (one thread per connection, keep-alive). Every
GET answers 200; with --downstream, it first GETs BASE_URL + the same path
with urllib (a new connection per call) on the thread serving the request,
and answers 502 if that fails.

--log FILE: one line per request received, written before the answer, of
tab-separated fields: NAME, PATH, then `traceparent=VALUE` for each
traceparent header received (any case, in order; none if there was none),
so a test can tell exactly which context reached this service.
Nothing is printed on stdout.
"""
import argparse
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Server(ThreadingHTTPServer):
    # Many clients connect at once in the concurrency tests.
    request_queue_size = 256
    daemon_threads = True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tracer-test-chain/1"
    # Head and body are written separately: without TCP_NODELAY, Nagle and
    # delayed ACKs cost 40 ms per keep-alive exchange.
    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass

    def record(self):
        opts = self.server.opts
        if not opts.log:
            return
        fields = [opts.name, self.path]
        fields += ["traceparent=" + v for v in self.headers.get_all("traceparent") or []]
        line = "\t".join(fields) + "\n"
        with self.server.log_lock:
            with open(opts.log, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.record()
        opts = self.server.opts
        status = 200
        if opts.downstream:
            try:
                with urllib.request.urlopen(opts.downstream + self.path, timeout=30) as r:
                    r.read()
                    status = 200 if r.status == 200 else 502
            except (urllib.error.URLError, OSError) as e:
                sys.stderr.write("%s: downstream call failed: %s\n" % (opts.name, e))
                status = 502
        self.reply(status, ("%s %s\n" % (opts.name, self.path)).encode())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--downstream", default="")
    parser.add_argument("--log", default="")
    parser.add_argument("--name", default="chain")
    parser.add_argument("--bind", default="127.0.0.1")
    opts = parser.parse_args()
    server = Server((opts.bind, opts.port), Handler)
    server.opts = opts
    server.log_lock = threading.Lock()
    server.serve_forever()


if __name__ == "__main__":
    main()
