"""A gRPC service and client on grpcio (the C-core implementation), with no
tracing library and no generated code: messages are raw bytes.

  grpc_echo.py server [--downstream HOST:PORT] [--port PORT] [--cert FILE --key FILE]
      serves demo.Echo: unary Say (NOT_FOUND for b"missing"), server-streaming
      Count, client-streaming Collect, bidi Chat; with --downstream, Say makes
      one downstream Say call per request. Prints "LISTENING <port>".
      --cert/--key: over TLS (through whichever TLS library this grpcio was
      built with: PyPI's wheel links BoringSSL in, Debian's python3-grpcio
      uses the system's libssl).
  grpc_echo.py client HOST:PORT [--sequential N] [--concurrent N] [--big-kib K] [--ca FILE]
      calls Say N times (one in ten asks for b"missing"), with --big-kib one
      more with a K KiB message, then one Count, one
      Collect and one Chat; prints "RESULT ok=<n> failed=<n>" where NOT_FOUND
      for b"missing" counts as ok. --ca: over TLS, verified against that CA.
"""

import argparse
import sys
import threading
from concurrent import futures

import grpc

SERVICE = "demo.Echo"


def read(path):
    with open(path, "rb") as f:
        return f.read()


def make_server(downstream, port=0, cert=None, key=None):
    stub = None
    if downstream:
        stub = grpc.insecure_channel(downstream).unary_unary(f"/{SERVICE}/Say")

    def say(request, context):
        if request == b"missing":
            context.abort(grpc.StatusCode.NOT_FOUND, "no such greeting")
        if stub is not None:
            return stub(request, timeout=10)
        return b"hello " + request

    def count(request, context):
        for i in range(int(request or b"3")):
            yield str(i).encode()

    def collect(requests, context):
        return b",".join(requests)

    def chat(requests, context):
        for r in requests:
            yield b"echo " + r

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Say": grpc.unary_unary_rpc_method_handler(say),
            "Count": grpc.unary_stream_rpc_method_handler(count),
            "Collect": grpc.stream_unary_rpc_method_handler(collect),
            "Chat": grpc.stream_stream_rpc_method_handler(chat),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((handler,))
    if cert:
        credentials = grpc.ssl_server_credentials([(read(key), read(cert))])
        port = server.add_secure_port(f"127.0.0.1:{port}", credentials)
    else:
        port = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print(f"LISTENING {port}", flush=True)
    server.wait_for_termination()


def run_client(target, sequential, concurrent, big_kib=0, ca=None):
    if ca:
        credentials = grpc.ssl_channel_credentials(root_certificates=read(ca))
        channel = grpc.secure_channel(target, credentials)
    else:
        channel = grpc.insecure_channel(target)
    say = channel.unary_unary(f"/{SERVICE}/Say")
    ok = failed = 0
    lock = threading.Lock()

    def one(i):
        nonlocal ok, failed
        body = b"missing" if i % 10 == 9 else f"n{i}".encode()
        try:
            reply = say(body, timeout=10)
            good = reply.endswith(body)
        except grpc.RpcError as e:
            good = body == b"missing" and e.code() == grpc.StatusCode.NOT_FOUND
            if not good:
                print(f"ERROR {e.code()} {e.details()}", file=sys.stderr, flush=True)
        with lock:
            if good:
                ok += 1
            else:
                failed += 1

    for i in range(sequential):
        one(i)
    if big_kib:
        # One large message: C core sends it as one sendmsg of many iovecs.
        body = b"big" + b"x" * (big_kib * 1024)
        try:
            good = say(body, timeout=10).endswith(body)
        except grpc.RpcError as e:
            print(f"ERROR big {e.code()} {e.details()}", file=sys.stderr, flush=True)
            good = False
        ok, failed = ok + good, failed + (not good)
    if concurrent:
        with futures.ThreadPoolExecutor(max_workers=concurrent) as pool:
            list(pool.map(one, range(concurrent)))
    streamed = [
        list(channel.unary_stream(f"/{SERVICE}/Count")(b"3", timeout=10)) == [b"0", b"1", b"2"],
        channel.stream_unary(f"/{SERVICE}/Collect")(iter([b"a", b"b"]), timeout=10) == b"a,b",
        list(channel.stream_stream(f"/{SERVICE}/Chat")(iter([b"x", b"y"]), timeout=10))
        == [b"echo x", b"echo y"],
    ]
    ok += sum(streamed)
    failed += len(streamed) - sum(streamed)
    print(f"RESULT ok={ok} failed={failed}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="role", required=True)
    s = sub.add_parser("server")
    s.add_argument("--downstream")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--cert")
    s.add_argument("--key")
    c = sub.add_parser("client")
    c.add_argument("target")
    c.add_argument("--sequential", type=int, default=20)
    c.add_argument("--concurrent", type=int, default=0)
    c.add_argument("--big-kib", type=int, default=0)
    c.add_argument("--ca")
    args = parser.parse_args()
    if args.role == "server":
        make_server(args.downstream, args.port, args.cert, args.key)
    else:
        run_client(args.target, args.sequential, args.concurrent, args.big_kib, args.ca)


if __name__ == "__main__":
    main()
