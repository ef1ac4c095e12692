#!/usr/bin/env python3
"""A raw TCP server that records exactly the bytes it receives, for the
tracer's byte-exact injection tests.

Usage: capture_server.py PORT DIR

Each connection's bytes are appended, as they arrive and before anything is
answered, to DIR/<peer port>.recv. A connection whose first bytes start with
an HTTP method is HTTP/1: each complete request (head, then a Content-Length
body) gets `HTTP/1.1 200 OK` with the 2-byte body "ok", pipelined requests
included. Any other connection gets every chunk echoed back until the client
closes. Nothing is printed on stdout.
"""
import os
import socket
import sys
import threading

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"PATCH ")


def content_length(head):
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def serve(conn, peer_port, directory):
    path = os.path.join(directory, "%d.recv" % peer_port)
    buf = b""
    mode = None
    with conn, open(path, "wb") as out:
        while True:
            data = conn.recv(1 << 16)
            if not data:
                return
            out.write(data)
            out.flush()
            buf += data
            if mode is None:
                if any(buf.startswith(m) for m in METHODS):
                    mode = "http"
                elif any(m.startswith(buf) for m in METHODS):
                    continue  # a method's first bytes: wait for more
                else:
                    mode = "raw"
                    data, buf = buf, b""
            if mode == "raw":
                conn.sendall(data)
                continue
            while True:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                total = end + 4 + content_length(buf[:end])
                if len(buf) < total:
                    break
                buf = buf[total:]
                conn.sendall(RESPONSE)


def main():
    port = int(sys.argv[1])
    directory = sys.argv[2]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    while True:
        conn, peer = listener.accept()
        threading.Thread(target=serve, args=(conn, peer[1], directory), daemon=True).start()


if __name__ == "__main__":
    main()
