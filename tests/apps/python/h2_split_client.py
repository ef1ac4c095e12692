"""An HTTP/2 gRPC client that writes its frames cut at chosen places, to
test how the tracer follows frames across writes. No gRPC library: frames
by hand, headers with the `hpack` package.

    h2_split_client.py HOST:PORT N [block|header]

Sends N unary calls to /demo.Echo/Say, one at a time on one connection:
even calls in one write (HEADERS and DATA together), odd calls with their
HEADERS frame cut in two writes: in the middle of its header block
(`block`, the default), or inside its 9-byte frame header (`header`). Waits for each call's trailers and
prints "RESULT ok=<n> failed=<n>" (ok: grpc-status 0 and the echoed body).
"""
import socket
import sys
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 4, 6, 7, 8
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4


def frame(kind, flags, stream, payload):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


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


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    n = int(sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else "block"
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(PREFACE + frame(SETTINGS, 0, 0, b""))
    reader, encoder, decoder = Reader(sock), hpack.Encoder(), hpack.Decoder()
    ok = failed = 0
    for i in range(n):
        stream = 2 * i + 1
        body = f"n{i}".encode()
        block = encoder.encode(
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/demo.Echo/Say"),
                (":authority", sys.argv[1]),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            ]
        )
        headers = frame(HEADERS, END_HEADERS, stream, block)
        data = frame(DATA, END_STREAM, stream, b"\0" + len(body).to_bytes(4, "big") + body)
        if i % 2 == 0:
            sock.sendall(headers + data)
        else:
            cut = 9 + len(block) // 2 if mode == "block" else 4
            sock.sendall(headers[:cut])
            time.sleep(0.02)
            sock.sendall(headers[cut:] + data)
        status, echoed = None, b""
        while status is None:
            kind, flags, sid, payload = reader.frame()
            if kind == SETTINGS and not flags & ACK:
                sock.sendall(frame(SETTINGS, ACK, 0, b""))
            elif kind == PING and not flags & ACK:
                sock.sendall(frame(PING, ACK, 0, payload))
            elif kind == GOAWAY:
                raise ConnectionError(f"GOAWAY {payload.hex()}")
            elif sid != stream:
                continue
            elif kind == DATA:
                echoed += payload[5:]
                if payload:
                    sock.sendall(frame(WINDOW_UPDATE, 0, 0, len(payload).to_bytes(4, "big")))
            elif kind == HEADERS:
                fields = dict(decoder.decode(payload))
                if flags & END_STREAM:
                    status = fields.get("grpc-status", "?")
        if status == "0" and echoed.endswith(body):
            ok += 1
        else:
            failed += 1
            print(f"ERROR call {i}: grpc-status {status} body {echoed!r}", file=sys.stderr)
    print(f"RESULT ok={ok} failed={failed}", flush=True)
    sock.close()


if __name__ == "__main__":
    main()
