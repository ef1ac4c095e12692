#!/usr/bin/env python3
"""The middle service of the A -> B -> C chain, instrumented with the official
OpenTelemetry Python SDK (needs the packages `cargo xtask setup` installs into
target/tools/python, on PYTHONPATH).

Usage: chain_sdk_service.py PORT --downstream BASE_URL --otlp-endpoint URL
                            [--log FILE] [--name NAME]

A threading wsgiref server wrapped in the WSGI instrumentation's middleware
(a SERVER span per request, parent taken from the incoming `traceparent`);
every GET calls BASE_URL + the same path with urllib, which the urllib
instrumentation wraps (a CLIENT span, and a `traceparent` header it adds).
Spans go to URL (OTLP HTTP/protobuf) with service.name from
OTEL_SERVICE_NAME (the test sets `sdk-b`), in small batches.

--log FILE: one line per request, like chain_service.py (NAME, PATH,
`traceparent=VALUE`...), then `sdk_trace_id=HEX` and `sdk_span_id=HEX`: the
ids of the SDK's own server span.
"""
import argparse
import sys
import threading
import urllib.error
import urllib.request
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.urllib import URLLibInstrumentor
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 256


class Handler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass


def make_app(opts):
    lock = threading.Lock()

    def record(environ):
        if not opts.log:
            return
        ctx = trace.get_current_span().get_span_context()
        raw = environ.get("HTTP_TRACEPARENT")
        fields = [opts.name, environ.get("PATH_INFO", "")]
        # wsgiref joins repeated headers with ","
        fields += ["traceparent=" + v for v in (raw.split(",") if raw else [])]
        fields += [
            "sdk_trace_id=" + format(ctx.trace_id, "032x"),
            "sdk_span_id=" + format(ctx.span_id, "016x"),
        ]
        with lock:
            with open(opts.log, "a", encoding="utf-8") as f:
                f.write("\t".join(fields) + "\n")

    def app(environ, start_response):
        record(environ)
        path = environ.get("PATH_INFO", "/")
        status = "200 OK"
        try:
            with urllib.request.urlopen(opts.downstream + path, timeout=30) as r:
                r.read()
                if r.status != 200:
                    status = "502 Bad Gateway"
        except (urllib.error.URLError, OSError) as e:
            sys.stderr.write("%s: downstream call failed: %s\n" % (opts.name, e))
            status = "502 Bad Gateway"
        body = ("%s %s\n" % (opts.name, path)).encode()
        start_response(
            status,
            [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return app


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--downstream", required=True)
    parser.add_argument("--otlp-endpoint", required=True)
    parser.add_argument("--log", default="")
    parser.add_argument("--name", default="sdk-b")
    opts = parser.parse_args()

    provider = TracerProvider(resource=Resource.create())
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=opts.otlp_endpoint),
            schedule_delay_millis=100,
        )
    )
    trace.set_tracer_provider(provider)
    URLLibInstrumentor().instrument()

    server = Server(("127.0.0.1", opts.port), Handler)
    server.set_app(OpenTelemetryMiddleware(make_app(opts)))
    sys.stderr.write("READY\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
