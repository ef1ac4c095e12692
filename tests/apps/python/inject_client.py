#!/usr/bin/env python3
"""Raw-socket HTTP/1 clients for the tracer's byte-exact injection tests.

Usage: inject_client.py HOST PORT DIR [--wait] MODE [MODE ...]

Each MODE runs on a new TCP connection (TCP_NODELAY) to HOST:PORT (a
capture_server.py). For each it prints "CONN <mode> <local port>", writes
every byte it sent, in order, to DIR/<local port>.sent, reads the answers
(one 200 per HTTP request; the echo for non-HTTP bytes) and closes.
--wait: print "WAITING" and wait for a line on stdin before the first mode.

Modes:
  plain      GET /plain, the whole head in one send
  split      GET /split, head in three sends: the request line alone first
  bighead    GET /bighead with a head over 4 KiB (100 filler headers), one send
  longhead   GET /longhead with a head over 4 KiB in 22 headers, one send
  bigbody    POST /bigbody with a 1 MiB body, head and body in one send
  pipeline   GET /p1, GET /p2 and POST /p3 (5-byte body) in one send
  nonhttp    binary bytes that are not HTTP (a TLS-like record), echoed back
  own        GET /own carrying its own traceparent (first header)
"""
import socket
import sys
import time

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
OWN_TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
UA = b"User-Agent: tracer-test-inject/1\r\n"


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def host_line(host, port):
    return ("Host: %s:%d\r\n" % (host, port)).encode()


def plan(mode, host, port):
    """(list of sends, number of HTTP requests in them)"""
    hl = host_line(host, port)
    if mode == "plain":
        return [b"GET /plain HTTP/1.1\r\n" + hl + UA + b"\r\n"], 1
    if mode == "split":
        return [b"GET /split HTTP/1.1\r\n", hl, UA + b"Accept: */*\r\n\r\n"], 1
    if mode == "bighead":
        filler = b"".join(
            b"X-Filler-%03d: %s\r\n" % (i, b"f" * 40) for i in range(100)
        )
        return [b"GET /bighead HTTP/1.1\r\n" + hl + UA + filler + b"\r\n"], 1
    if mode == "longhead":
        filler = b"".join(b"X-Long-%02d: %s\r\n" % (i, b"l" * 230) for i in range(20))
        return [b"GET /longhead HTTP/1.1\r\n" + hl + UA + filler + b"\r\n"], 1
    if mode == "bigbody":
        body = bytes(range(256)) * 4096
        head = (
            b"POST /bigbody HTTP/1.1\r\n" + hl + UA
            + b"Content-Type: application/octet-stream\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(body)
        )
        return [head + body], 1
    if mode == "pipeline":
        reqs = (
            b"GET /p1 HTTP/1.1\r\n" + hl + UA + b"\r\n"
            + b"GET /p2 HTTP/1.1\r\n" + hl + UA + b"\r\n"
            + b"POST /p3 HTTP/1.1\r\n" + hl + UA + b"Content-Length: 5\r\n\r\nhello"
        )
        return [reqs], 3
    if mode == "nonhttp":
        record = bytes([0x16, 0x03, 0x01, 0x00, 0xC8]) + bytes((i * 7 + 3) % 256 for i in range(200))
        return [record, b"\r\nGET / HTTP/1.1\r\n\r\n not http either\r\n"], 0
    if mode == "own":
        return [
            b"GET /own HTTP/1.1\r\ntraceparent: " + OWN_TRACEPARENT.encode() + b"\r\n"
            + hl + UA + b"\r\n"
        ], 1
    raise SystemExit("unknown mode " + mode)


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise SystemExit("connection closed after %d of %d bytes" % (len(data), n))
        data += chunk
    return data


def run(mode, host, port, directory):
    sends, requests = plan(mode, host, port)
    sock = socket.create_connection((host, port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    local_port = sock.getsockname()[1]
    out("CONN %s %d" % (mode, local_port))
    sent = b""
    with open("%s/%d.sent" % (directory, local_port), "wb") as f:
        for i, data in enumerate(sends):
            if i:
                time.sleep(0.05)
            sock.sendall(data)
            sent += data
            f.write(data)
            f.flush()
    if requests:
        got = recv_exactly(sock, len(RESPONSE) * requests)
        if got != RESPONSE * requests:
            raise SystemExit("%s: unexpected answer %r" % (mode, got[:200]))
    else:
        got = recv_exactly(sock, len(sent))
        if got != sent:
            raise SystemExit("%s: echo differs" % mode)
    sock.close()


def main():
    args = sys.argv[1:]
    wait = "--wait" in args
    args = [a for a in args if a != "--wait"]
    host, port, directory, modes = args[0], int(args[1]), args[2], args[3:]
    if wait:
        out("WAITING")
        if not sys.stdin.readline():
            raise SystemExit("stdin closed while waiting")
    for mode in modes:
        run(mode, host, port, directory)
    out("DONE")


if __name__ == "__main__":
    main()
