"""A loopback proxy that checks, byte by byte, the HTTP/2 a traced client
sent through it: every frame length holds, every header block of the
connection decodes with one HPACK decoder (so both ends' dynamic tables
stayed in sync), and each request carries exactly one `traceparent`, the
last field of its block (an added literal never indexed, as the tracer
writes it). Needs the `hpack` package.

    h2_injection_check.py LISTEN_PORT TARGET_PORT

LISTEN_PORT 0 picks a free port. Prints "ready <port>", forwards one connection, and when it closes prints one
"TRACEPARENT <value>" line per request and a summary line
"CHECKED requests=<n> injected=<n> last=<n> responses=<n> errors=<n>",
then an "ERROR ..." line per problem found.
"""
import socket
import sys
import threading

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20


def frames(stream, errors, skip_preface):
    """(type, flags, stream id, payload) of each frame of a byte stream."""
    at = 0
    if skip_preface:
        if not stream.startswith(PREFACE):
            errors.append("no connection preface")
            return
        at = len(PREFACE)
    while at + 9 <= len(stream):
        length = int.from_bytes(stream[at : at + 3], "big")
        kind, flags = stream[at + 3], stream[at + 4]
        sid = int.from_bytes(stream[at + 5 : at + 9], "big") & 0x7FFFFFFF
        if kind > CONTINUATION:
            errors.append(f"frame of unknown type {kind} at {at}: lengths out of step")
            return
        if at + 9 + length > len(stream):
            errors.append(f"frame at {at} runs past the stream ({length} bytes)")
            return
        yield kind, flags, sid, stream[at + 9 : at + 9 + length]
        at += 9 + length
    if at != len(stream):
        errors.append(f"{len(stream) - at} bytes after the last whole frame")


def blocks(stream, errors, skip_preface):
    """(stream id, header block) of each HEADERS frame and its CONTINUATIONs."""
    pending = None
    for kind, flags, sid, payload in frames(stream, errors, skip_preface):
        if kind == HEADERS:
            if flags & PADDED:
                pad = payload[0]
                payload = payload[1 : len(payload) - pad]
            if flags & PRIORITY_FLAG:
                payload = payload[5:]
            pending = (sid, bytearray(payload))
        elif kind == CONTINUATION and pending is not None:
            pending[1].extend(payload)
        else:
            if pending is not None:
                errors.append(f"HEADERS of stream {pending[0]} not ended before a frame of type {kind}")
                pending = None
            continue
        if flags & END_HEADERS:
            yield pending[0], bytes(pending[1])
            pending = None


def check(c2s, s2c):
    errors = []
    requests = injected = last = responses = 0
    decoder = hpack.Decoder()
    for sid, block in blocks(c2s, errors, True):
        try:
            fields = decoder.decode(block, raw=True)
        except Exception as e:  # noqa: BLE001 - any decoding failure is the finding
            errors.append(f"request block of stream {sid} does not decode: {e!r}")
            break
        names = [n.lower() for n, _ in fields]
        if b":method" not in names:
            continue  # trailers of a client stream
        requests += 1
        values = [v for n, v in fields if n.lower() == b"traceparent"]
        if len(values) == 1:
            injected += 1
            print(f"TRACEPARENT {values[0].decode()}")
        elif len(values) > 1:
            errors.append(f"stream {sid} carries {len(values)} traceparent fields")
        if names and names[-1] == b"traceparent":
            last += 1
    decoder = hpack.Decoder()
    for sid, block in blocks(s2c, errors, False):
        try:
            decoder.decode(block, raw=True)
            responses += 1
        except Exception as e:  # noqa: BLE001
            errors.append(f"response block of stream {sid} does not decode: {e!r}")
            break
    print(
        f"CHECKED requests={requests} injected={injected} last={last} "
        f"responses={responses} errors={len(errors)}"
    )
    for e in errors:
        print(f"ERROR {e}")


def main():
    listen_port, target_port = int(sys.argv[1]), int(sys.argv[2])
    seen = {"c2s": bytearray(), "s2c": bytearray()}

    def pump(src, dst, name):
        while True:
            data = src.recv(65536)
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            seen[name].extend(data)
            try:
                dst.sendall(data)
            except OSError:
                return  # the other side is gone: what it sent is checked

    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", listen_port))
    srv.listen(1)
    print(f"ready {srv.getsockname()[1]}", flush=True)
    client, _ = srv.accept()
    upstream = socket.create_connection(("127.0.0.1", target_port))
    threads = [
        threading.Thread(target=pump, args=(client, upstream, "c2s")),
        threading.Thread(target=pump, args=(upstream, client, "s2c")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(bytes(seen["c2s"]), bytes(seen["s2c"]))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
