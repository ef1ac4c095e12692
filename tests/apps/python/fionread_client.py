"""How many bytes FIONREAD says are waiting on a client socket: a server
thread sends 100,000 bytes on a fresh connection, then the client asks.
The tracer puts traced client sockets into a SockHash; the answer must stay
right there (nginx sizes its reads with it).

Prints "PORT <port>", waits for a line on stdin, connects, and prints
"FIONREAD <bytes>".
"""
import fcntl
import socket
import struct
import sys
import termios
import threading
import time

SIZE = 100_000

srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)


def serve():
    conn, _ = srv.accept()
    conn.recv(100)
    conn.sendall(b"x" * SIZE)
    time.sleep(5)


threading.Thread(target=serve, daemon=True).start()
print(f"PORT {srv.getsockname()[1]}", flush=True)
sys.stdin.readline()
client = socket.create_connection(srv.getsockname())
client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
# Everything sent has arrived well before this.
deadline = time.time() + 5
waiting = 0
while time.time() < deadline:
    waiting = struct.unpack("i", fcntl.ioctl(client, termios.FIONREAD, b"\0\0\0\0"))[0]
    if waiting == SIZE:
        break
    time.sleep(0.05)
print(f"FIONREAD {waiting}", flush=True)
