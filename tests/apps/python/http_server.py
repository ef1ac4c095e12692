#!/usr/bin/env python3
"""HTTP/1.1 test server (keep-alive, threads) for the tracer's integration tests.

Usage: http_server.py PORT [--bind ADDR] [--main-thread-leaves]
  ADDR: 127.0.0.1 by default, ::1 for IPv6.
  --main-thread-leaves: serve from another thread; the main thread ends
  (pthread_exit, the process lives on) once GET /leave-main-thread is asked.

Routes:
  GET  /hello            200 "hello"
  HEAD /hello            200, headers only
  GET  /leaf             200 "leaf" (the Go fan-out server's downstream)
  GET  /users/<n>        200 JSON {"id": n}
  GET  /status/<code>    that status, small body
  GET  /chunked?n=K      200, chunked, K chunks
  GET  /big?bytes=N      200, N-byte body with Content-Length
  POST /echo             reads the body (Content-Length), replies with its length
  GET  /<any>?status=<code>  that status, small body (the metrics tests' routes)
  GET  /leave-main-thread  200 "leaving" (with --main-thread-leaves)
Anything else: 404. Nothing is printed on stdout.
"""
import argparse
import ctypes
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The head and the body go out in two writes: with Nagle's algorithm
    # the body waits for the client's delayed ACK (40 ms a request).
    disable_nagle_algorithm = True
    server_version = "tracer-test-python/1"

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass

    def reply(self, status, body=b"", content_type="text/plain", head=False):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def do_HEAD(self):
        path = urlsplit(self.path).path
        if path == "/hello":
            self.reply(200, b"hello", head=True)
        else:
            self.reply(404, b"not found", head=True)

    def do_GET(self):
        url = urlsplit(self.path)
        path = url.path
        query = parse_qs(url.query)
        parts = path.strip("/").split("/")
        if "status" in query and query["status"][0].isdigit():
            code = int(query["status"][0])
            self.reply(code, ("status %d" % code).encode())
        elif path == "/hello":
            self.reply(200, b"hello")
        elif path == "/leave-main-thread" and LEAVE is not None:
            self.reply(200, b"leaving")
            LEAVE.set()
        elif path == "/leaf":
            # What the Go fan-out server calls downstream.
            self.reply(200, b"leaf")
        elif len(parts) == 2 and parts[0] == "users":
            body = json.dumps({"id": parts[1], "name": "user " + parts[1]}).encode()
            self.reply(200, body, "application/json")
        elif len(parts) == 2 and parts[0] == "status" and parts[1].isdigit():
            code = int(parts[1])
            self.reply(code, ("status %d" % code).encode())
        elif path == "/chunked":
            n = int(query.get("n", ["10"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(n):
                chunk = ("chunk %d\n" % i).encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/big":
            n = int(query.get("bytes", ["1048576"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            block = b"x" * 65536
            left = n
            while left > 0:
                step = min(left, len(block))
                self.wfile.write(block[:step])
                left -= step
        else:
            self.reply(404, b"not found")

    def do_POST(self):
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length", "0"))
        left = length
        while left > 0:
            data = self.rfile.read(min(left, 65536))
            if not data:
                break
            left -= len(data)
        if path == "/echo":
            self.reply(200, str(length).encode())
        else:
            self.reply(404, b"not found")


# Set by GET /leave-main-thread when the main thread is to end.
LEAVE = None


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Server6(Server):
    address_family = socket.AF_INET6


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--main-thread-leaves", action="store_true")
    args = parser.parse_args()
    cls = Server6 if ":" in args.bind else Server
    httpd = cls((args.bind, args.port), Handler)
    print("listening on %s port %d" % (args.bind, args.port), file=sys.stderr)
    if args.main_thread_leaves:
        global LEAVE
        LEAVE = threading.Event()
        # Not a daemon: the process lives on after the main thread.
        threading.Thread(target=httpd.serve_forever).start()
        LEAVE.wait()
        print("main thread leaving", file=sys.stderr)
        # The thread alone ends: the kernel keeps the process, whose
        # leader is a zombie from now on, for as long as others run.
        ctypes.CDLL(None).pthread_exit(None)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
