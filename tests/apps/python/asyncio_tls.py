#!/usr/bin/env python3
"""HTTPS over asyncio for the tracer's TLS tests. asyncio's TLS is
`ssl.SSLObject` over memory BIOs: OpenSSL never touches the socket, the
event loop moves the ciphertext with its own syscalls.

  asyncio_tls.py server PORT --cert FILE --key FILE
      HTTP/1.1 on 127.0.0.1:PORT over TLS, keep-alive: GET <path> → 200,
      body "ok <path>". Prints "LISTENING <port>".
  asyncio_tls.py client HOST PORT --cafile CA [--concurrent N] [--wait]
      N connections at once, each GET /req/<i> (i = 0..N-1), verified
      against CA; prints "RESULT ok=<n> failed=<n>".
      --wait: print "WAITING" and wait for a line on stdin first.
"""
import argparse
import asyncio
import ssl
import sys


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def read_head(reader):
    """The head's lines (request or status line first), or None at EOF."""
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            return None
        line = line.decode("latin-1").rstrip("\r\n")
        if not line:
            return lines
        lines.append(line)


def content_length(lines):
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return int(value.strip())
    return 0


async def serve_connection(reader, writer):
    try:
        while True:
            head = await read_head(reader)
            if not head:
                break
            await reader.readexactly(content_length(head))
            path = head[0].split()[1]
            body = ("ok %s" % path).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def server(port, cert, key):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    srv = await asyncio.start_server(serve_connection, "127.0.0.1", port, ssl=context)
    out("LISTENING %d" % srv.sockets[0].getsockname()[1])
    async with srv:
        await srv.serve_forever()


async def one(host, port, context, i):
    reader, writer = await asyncio.open_connection(host, port, ssl=context)
    try:
        path = "/req/%d" % i
        writer.write(
            ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: tracer-test-asyncio/1\r\n\r\n"
             % (path, host, port)).encode()
        )
        await writer.drain()
        head = await read_head(reader)
        body = await reader.readexactly(content_length(head))
        return head[0].split()[1] == "200" and body == ("ok %s" % path).encode()
    finally:
        writer.close()
        await writer.wait_closed()


async def client(host, port, cafile, concurrent):
    context = ssl.create_default_context(cafile=cafile)
    results = await asyncio.gather(
        *(one(host, port, context, i) for i in range(concurrent)), return_exceptions=True
    )
    for r in results:
        if isinstance(r, BaseException):
            print("ERROR %r" % (r,), file=sys.stderr, flush=True)
    ok = sum(1 for r in results if r is True)
    out("RESULT ok=%d failed=%d" % (ok, len(results) - ok))


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="role", required=True)
    s = sub.add_parser("server")
    s.add_argument("port", type=int)
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    c = sub.add_parser("client")
    c.add_argument("host")
    c.add_argument("port", type=int)
    c.add_argument("--cafile", required=True)
    c.add_argument("--concurrent", type=int, default=20)
    c.add_argument("--wait", action="store_true")
    args = parser.parse_args()
    if args.role == "server":
        asyncio.run(server(args.port, args.cert, args.key))
    else:
        if args.wait:
            out("WAITING")
            if not sys.stdin.readline():
                raise SystemExit("stdin closed while waiting")
        asyncio.run(client(args.host, args.port, args.cafile, args.concurrent))


if __name__ == "__main__":
    main()
