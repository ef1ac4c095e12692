"""An HTTP/2 gRPC client that writes its frames cut at chosen places, to
test how the tracer follows frames across writes. No gRPC library: frames
by hand, headers with the `hpack` package.

    h2_split_client.py HOST:PORT N [block|header|partial|continuation|burst]

Sends N unary calls to /demo.Echo/Say, one at a time on one connection:
even calls in one write (HEADERS and DATA together), odd calls with their
HEADERS frame cut in two writes: in the middle of its header block
(`block`, the default), or inside its 9-byte frame header (`header`); or
(`partial`) odd calls carry a 40 KiB message in three DATA frames, written
at once on a socket with a small send buffer, so the kernel takes the
write in part and the rest follows from inside a frame; or
(`continuation`) odd calls send their header block as a HEADERS frame and
a CONTINUATION frame, in one write; or (`burst`) every call, each with a
1 KiB message, goes out in the very write that carries the connection
preface, so the server reads the preface with more than 8 KiB of frames. Waits for each call's trailers and
prints "RESULT ok=<n> failed=<n>" (ok: grpc-status 0 and the echoed body).
"""
import socket
import sys
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 4, 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4


def frame(kind, flags, stream, payload):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def send_in_part(sock, data):
    """One send of everything, which the kernel takes in part; then the rest."""
    sock.setblocking(False)
    sent = 0
    while sent < len(data):
        try:
            sent += sock.send(data[sent:])
        except BlockingIOError:
            time.sleep(0.005)
    sock.setblocking(True)


class Reader:
    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def frame(self):
        while True:
            if len(self.buf) >= 9:
                n = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) >= 9 + n:
                    h, self.buf = self.buf[: 9 + n], self.buf[9 + n :]
                    return h[3], h[4], int.from_bytes(h[5:9], "big") & 0x7FFFFFFF, h[9:]
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.buf += data


def request(encoder, authority, stream, body):
    """The header block, the HEADERS frame and the DATA frames (each at most
    the default maximum frame size, the last ending the stream) of a unary
    call."""
    block = encoder.encode(
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/demo.Echo/Say"),
            (":authority", authority),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
    )
    message = b"\0" + len(body).to_bytes(4, "big") + body
    chunks = [message[at : at + 16384] for at in range(0, len(message), 16384)]
    data = b"".join(
        frame(DATA, END_STREAM if k == len(chunks) - 1 else 0, stream, c)
        for k, c in enumerate(chunks)
    )
    return block, frame(HEADERS, END_HEADERS, stream, block), data


def answers(sock, reader, decoder, streams):
    """Reads until every stream in `streams` has ended, answering SETTINGS
    and PING and giving the server's flow control back: stream -> (grpc
    status, the message with its 5-byte prefix taken off)."""
    echoed = {stream: b"" for stream in streams}
    status = {}
    while len(status) < len(streams):
        kind, flags, sid, payload = reader.frame()
        if kind == SETTINGS and not flags & ACK:
            sock.sendall(frame(SETTINGS, ACK, 0, b""))
        elif kind == PING and not flags & ACK:
            sock.sendall(frame(PING, ACK, 0, payload))
        elif kind == GOAWAY:
            raise ConnectionError(f"GOAWAY {payload.hex()}")
        elif kind == DATA and sid in echoed:
            # One gRPC message, maybe over several frames.
            echoed[sid] += payload
            if payload:
                sock.sendall(frame(WINDOW_UPDATE, 0, 0, len(payload).to_bytes(4, "big")))
        elif kind == HEADERS:
            fields = dict(decoder.decode(payload))
            if flags & END_STREAM and sid in echoed:
                status[sid] = fields.get("grpc-status", "?")
    return {s: (status[s], echoed[s][5:]) for s in streams}


def burst(sock, reader, encoder, decoder, authority, n):
    """Every call in the write that carries the preface; then the answers."""
    bodies = {2 * i + 1: f"n{i}".encode() + b"x" * 1024 for i in range(n)}
    data = PREFACE + frame(SETTINGS, 0, 0, b"")
    for stream, body in bodies.items():
        _, headers, frames = request(encoder, authority, stream, body)
        data += headers + frames
    sock.sendall(data)
    got = answers(sock, reader, decoder, list(bodies))
    ok = sum(1 for s, body in bodies.items() if got[s][0] == "0" and got[s][1].endswith(body))
    print(f"RESULT ok={ok} failed={n - ok}", flush=True)
    sock.close()


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    n = int(sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else "block"
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if mode == "partial":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    reader, encoder, decoder = Reader(sock), hpack.Encoder(), hpack.Decoder()
    if mode == "burst":
        burst(sock, reader, encoder, decoder, sys.argv[1], n)
        return
    sock.sendall(PREFACE + frame(SETTINGS, 0, 0, b""))
    ok = failed = 0
    for i in range(n):
        stream = 2 * i + 1
        body = f"n{i}".encode()
        if mode == "partial" and i % 2 == 1:
            body += b"x" * (40 * 1024 - len(body))
        block, headers, data = request(encoder, sys.argv[1], stream, body)
        if i % 2 == 0:
            sock.sendall(headers + data)
        elif mode == "partial":
            send_in_part(sock, headers + data)
        elif mode == "continuation":
            half = len(block) // 2
            sock.sendall(
                frame(HEADERS, 0, stream, block[:half])
                + frame(CONTINUATION, END_HEADERS, stream, block[half:])
                + data
            )
        else:
            cut = 9 + len(block) // 2 if mode == "block" else 4
            sock.sendall(headers[:cut])
            time.sleep(0.02)
            sock.sendall(headers[cut:] + data)
        status, echoed = answers(sock, reader, decoder, [stream])[stream]
        if status == "0" and echoed.endswith(body):
            ok += 1
        else:
            failed += 1
            print(f"ERROR call {i}: grpc-status {status}, {len(echoed)} bytes back", file=sys.stderr)
    print(f"RESULT ok={ok} failed={failed}", flush=True)
    sock.close()


if __name__ == "__main__":
    main()
