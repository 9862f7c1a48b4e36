"""`lazycelery record --otel` on a real `celery worker -E` (Redis), exporting over OTLP/HTTP to a
real receiver on 127.0.0.1 that decodes each ExportTraceServiceRequest with opentelemetry-proto:
a chain is one trace with the right parents, a failure is an ERROR span; with the traceparent
companion in the worker, a task sent inside a producer's span joins the producer's trace."""

from __future__ import annotations

import contextlib
import gzip
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.proto")
pytest.importorskip("opentelemetry.sdk")

from conftest import ROOT, WorkerProcess, wait_for

pytestmark = pytest.mark.integration
Factory = Callable[..., WorkerProcess]
PLUGIN = ROOT / "plugins" / "lazycelery-traceparent"
INTEGRATION = ROOT / "integration"


class Receiver:
    """A minimal OTLP/HTTP traces endpoint: POST /v1/traces, protobuf body."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        self.pb = trace_service_pb2
        self.spans: list[dict[str, Any]] = []
        self.requests = 0
        self.lock = threading.Lock()
        self.protocol = "http/protobuf"
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces" or "protobuf" not in self.headers.get("Content-Type", ""):
                    self.send_response(404)
                    self.end_headers()
                    return
                receiver.add(body)
                reply = receiver.pb.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, body: bytes) -> None:
        request = self.pb.ExportTraceServiceRequest()
        request.ParseFromString(body)
        found = []
        for resource_spans in request.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append({
                        "name": span.name, "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(), "parent": span.parent_span_id.hex(),
                        "status": span.status.code, "start": span.start_time_unix_nano,
                        "end": span.end_time_unix_nano, "resource": resource,
                        "events": [e.name for e in span.events],
                        "attributes": {kv.key: _value(kv.value) for kv in span.attributes},
                    })
        with self.lock:
            self.requests += 1
            self.spans.extend(found)

    def task(self, task_id: str) -> dict[str, Any] | None:
        with self.lock:
            return next((s for s in self.spans if s["attributes"].get("celery.task_id") == task_id
                         and s["attributes"].get("celery.state") != "RETRY"), None)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class GrpcReceiver(Receiver):
    """The same, as an OTLP/gRPC TraceService on 127.0.0.1 (grpcio)."""

    def __init__(self) -> None:
        from concurrent import futures

        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

        self.pb = trace_service_pb2
        self.protocol = "grpc"
        self.spans = []
        self.requests = 0
        self.lock = threading.Lock()
        receiver = self

        class Service(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                receiver.add(request.SerializeToString())
                return trace_service_pb2.ExportTraceServiceResponse()

        self.grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), self.grpc_server)
        self.port = self.grpc_server.add_insecure_port("127.0.0.1:0")
        self.grpc_server.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.grpc_server.stop(grace=None)


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@pytest.fixture(params=["http/protobuf"])
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    r = GrpcReceiver() if request.param == "grpc" else Receiver()
    r.protocol = request.param
    try:
        yield r
    finally:
        r.close()


class Record:
    """``lazycelery record --otel`` as a subprocess, stderr into a file."""

    def __init__(self, broker: str, tmp_path: Path, endpoint: str,
                 protocol: str = "http/protobuf") -> None:
        env = dict(os.environ)
        env.pop("LAZYCELERY_STORE", None)
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_SERVICE_NAME="lc-test-workers",
                   OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
                   LAZYCELERY_CONFIG=str(tmp_path / "none.toml"))
        (tmp_path / "none.toml").write_text("")
        self.err = tmp_path / "record.stderr"
        with self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lazycelery", "record", "--broker", broker, "--store",
                 f"sqlite:///{tmp_path / 'h.sqlite3'}", "--status-every", "0", "--no-backfill",
                 "--otel"],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=err, start_new_session=True)

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


@contextlib.contextmanager
def recording(broker: str, tmp_path: Path, receiver: Receiver) -> Iterator[Record]:
    record = Record(broker, tmp_path, receiver.url, receiver.protocol)
    try:
        yield record
    finally:
        record.stop()


def _until_exported(app: Any, receiver: Receiver, record: Record) -> None:
    """Redis PUB/SUB keeps nothing for a subscriber not yet there: send probes until one's
    span arrives."""
    sent: list[str] = []

    def arrived() -> bool:
        assert record.proc.poll() is None, record.stderr()
        sent.append(str(app.send_task("workerapp.add", args=(0, 0)).id))
        return any(receiver.task(t) for t in sent)

    wait_for(arrived, timeout=60, interval=1.0, what="a probe span at the receiver")


@pytest.mark.parametrize("receiver", ["http/protobuf", "grpc"], indirect=True)
def test_record_otel_exports_a_chain_as_one_trace(
        redis_url: str, celery_worker_factory: Factory, tmp_path: Path, receiver: Receiver) -> None:
    from celery import chain

    worker = celery_worker_factory(redis_url, backend=redis_url)
    app = worker.app()
    with recording(redis_url, tmp_path, receiver) as record:
        _until_exported(app, receiver, record)
        add = app.signature("workerapp.add")
        result = chain(add.clone(args=(1, 1)), add.clone(args=(2,)), add.clone(args=(3,))).apply_async()
        failed = str(app.send_task("workerapp.always_fail", args=("x",)).id)
        assert result.get(timeout=30) == 7
        ids = [result.parent.parent.id, result.parent.id, result.id]
        wait_for(lambda: all(receiver.task(t) for t in [*ids, failed]), timeout=60,
                 what="the chain's and the failure's spans")
        code = record.stop()
    assert code == 0, record.stderr()
    spans = [receiver.task(t) for t in ids]
    root = ids[0].replace("-", "")
    assert {s["trace_id"] for s in spans} == {root}  # the trace id is the root task id
    assert spans[0]["parent"] == ""
    assert spans[1]["parent"] == ids[0].replace("-", "")[16:]
    assert spans[2]["parent"] == ids[1].replace("-", "")[16:]
    assert all(s["name"] == "workerapp.add" and s["status"] == 0 for s in spans)
    assert all(s["start"] <= s["end"] for s in spans)
    assert spans[1]["attributes"]["celery.worker"] == worker.hostname
    assert spans[1]["resource"]["service.name"] == "lc-test-workers"
    bad = receiver.task(failed)
    assert bad is not None and bad["status"] == 2  # STATUS_CODE_ERROR
    assert bad["attributes"]["exception.type"] == "ValueError"
    assert "exception" in bad["events"]
    err = record.stderr()
    assert "exporting task spans to http://127.0.0.1" in err
    assert "spans exported to" in err and "0 lost" in err, err
    assert "Traceback" not in err


def test_traceparent_companion_joins_the_producer_trace(
        redis_url: str, celery_worker_factory: Factory, tmp_path: Path, receiver: Receiver) -> None:
    from celery import chain
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    sys.path.insert(0, str(PLUGIN))
    import lazycelery_traceparent

    path = os.pathsep.join([str(INTEGRATION), str(PLUGIN), os.environ.get("PYTHONPATH", "")])
    worker = celery_worker_factory(redis_url, extra_args=("-I", "lazycelery_traceparent.worker"),
                                   env={"PYTHONPATH": path})
    app = worker.app()
    provider = TracerProvider(resource=Resource.create({"service.name": "web"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{receiver.url}/v1/traces")))
    tracer = provider.get_tracer("producer")
    lazycelery_traceparent.install()
    try:
        with recording(redis_url, tmp_path, receiver) as record:
            _until_exported(app, receiver, record)
            with tracer.start_as_current_span("POST /checkout") as request_span:
                single = str(app.send_task("workerapp.add", args=(4, 4)).id)
                add = app.signature("workerapp.add")
                steps = chain(add.clone(args=(1, 1)), add.clone(args=(2,))).apply_async()
            outside = str(app.send_task("workerapp.add", args=(5, 5)).id)
            ids = [single, steps.parent.id, steps.id, outside]
            wait_for(lambda: all(receiver.task(t) for t in ids), timeout=60,
                     what="the spans of the tasks sent in and outside the request")
            record.stop()
    finally:
        lazycelery_traceparent.uninstall()
        provider.shutdown()
    context = request_span.get_span_context()
    trace_hex, span_hex = f"{context.trace_id:032x}", f"{context.span_id:016x}"
    assert any(s["span_id"] == span_hex and s["name"] == "POST /checkout" for s in receiver.spans)
    task, first, second, other = (receiver.task(t) for t in ids)
    assert task is not None and first is not None and second is not None and other is not None
    assert task["trace_id"] == trace_hex and task["parent"] == span_hex
    assert first["trace_id"] == trace_hex and first["parent"] == span_hex
    assert second["trace_id"] == trace_hex  # the chain's next step follows its root
    assert second["parent"] == steps.parent.id.replace("-", "")[16:]
    # a task sent outside any span keeps its own trace (its id)
    assert other["trace_id"] == outside.replace("-", "") and other["parent"] == ""
    assert "Traceback" not in worker.output()


def test_collector_down_costs_spans_not_events(
        redis_url: str, celery_worker_factory: Factory, tmp_path: Path) -> None:
    """Nothing listens on the endpoint: the store still gets every event, the spans are counted
    as not delivered with the reason, in one line each, and the recorder stops in time."""
    from conftest import free_port
    from lazycelery.store import open_store

    worker = celery_worker_factory(redis_url)
    app = worker.app()
    record = Record(redis_url, tmp_path, f"http://127.0.0.1:{free_port()}")
    try:
        sent: list[str] = []

        def some_recorded() -> bool:
            assert record.proc.poll() is None, record.stderr()
            sent.extend(str(app.send_task("workerapp.add", args=(i, i)).id) for i in range(5))
            return "not delivered to" in record.stderr()

        wait_for(some_recorded, timeout=90, interval=2.0, what="the not-delivered report")
        code = record.stop()
    finally:
        record.stop()
    assert code == 0
    err = record.stderr()
    assert "Connection refused" in err, err
    summary = next(line for line in err.splitlines() if "spans exported to" in line)
    assert "0 spans exported" in summary and "0 lost (queue full)" in summary
    store = open_store(f"sqlite:///{tmp_path / 'h.sqlite3'}", writer=False)
    try:
        found = store.fetch_tasks(sent)
    finally:
        store.close()
    assert sum(1 for rec, _ in found.values() if rec.state == "SUCCESS") >= 5
    assert "Traceback" not in err


def test_tail_otel_exports_while_it_prints(
        redis_url: str, celery_worker_factory: Factory, receiver: Receiver,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from test_tail_helpers import TailProcess, assert_no_traceback, probe, send_until

    worker = celery_worker_factory(redis_url)
    app = worker.app()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("LAZYCELERY_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("")
    tail = TailProcess(redis_url, "--json", "--otel")
    try:
        send_until(tail, probe(app))
        failed = str(app.send_task("workerapp.always_fail", args=("t",)).id)
        tail.wait_doc(lambda d: d["type"] == "task-failed" and d["uuid"] == failed,
                      what="the failure printed")
        wait_for(lambda: receiver.task(failed), timeout=60, what="the failure's span")
        assert tail.interrupt() == 0
    finally:
        tail.close()
    span = receiver.task(failed)
    assert span is not None and span["status"] == 2
    err = "\n".join(tail.errors)
    assert "spans exported to" in err and "0 lost" in err, err
    assert_no_traceback(err)


def test_serve_otel_exports_while_it_serves(
        redis_url: str, celery_worker_factory: Factory, tmp_path: Path, receiver: Receiver) -> None:
    """`lazycelery serve --otel`: the API answers and the spans reach the receiver while it
    runs; SIGTERM flushes and reports them in one line."""
    import httpx
    from test_serve_helpers import Server, worker_env

    from conftest import free_port

    worker = celery_worker_factory(redis_url)
    app = worker.app()
    config = tmp_path / "none.toml"
    config.write_text("")
    env = worker_env(redis_url, worker.queue, None, config)
    env.update(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_SERVICE_NAME="lc-serve")
    port = free_port()
    server = Server([sys.executable, "-m", "lazycelery", "serve", "--broker", redis_url,
                     "--port", str(port), "--otel"], env, port, tmp_path / "serve.log")
    try:
        wait_for(server.healthy, timeout=60, interval=0.2, what="serve to answer")
        sent: list[str] = []

        def arrived() -> bool:
            assert server.proc.poll() is None, server.output()
            sent.append(str(app.send_task("workerapp.add", args=(0, 0)).id))
            return any(receiver.task(t) for t in sent)

        wait_for(arrived, timeout=60, interval=1.0, what="a probe span at the receiver")
        failed = str(app.send_task("workerapp.always_fail", args=("s",)).id)
        wait_for(lambda: receiver.task(failed), timeout=60, what="the failure's span")
        assert server.proc.poll() is None  # exported while serve runs
        info = httpx.get(f"{server.url}/api/task/info/{failed}", timeout=10).json()
        assert info["state"] == "FAILURE"
        assert server.stop() == 0
    finally:
        server.stop()
    span = receiver.task(failed)
    assert span is not None and span["status"] == 2
    assert span["resource"]["service.name"] == "lc-serve"
    out = server.output()
    assert "exporting task spans to http://127.0.0.1" in out
    assert "spans exported to" in out and "0 lost" in out, out
    assert "Traceback" not in out


def test_dashboard_otel_exports_while_it_draws(
        redis_url: str, celery_worker_factory: Factory, tmp_path: Path, receiver: Receiver) -> None:
    """`lazycelery --otel` in a pseudo-terminal: the spans reach the receiver while the
    dashboard runs; on `q` the summary line is printed once the screen is gone."""
    pexpect = pytest.importorskip("pexpect")
    pytest.importorskip("pyte")
    from test_dashboard_pty import Terminal

    worker = celery_worker_factory(redis_url)
    app = worker.app()
    env = dict(os.environ, TERM="xterm-256color", LANG="C.UTF-8", LC_ALL="C.UTF-8",
               LAZYCELERY_CONFIG=os.devnull, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
               OTEL_SERVICE_NAME="lc-dashboard")
    env.pop("NO_COLOR", None)
    env.pop("LAZYCELERY_STORE", None)
    term = Terminal(sys.executable, ["-m", "lazycelery", "--broker", redis_url, "--otel"], env)
    try:
        short_host = worker.hostname.split("@")[0]
        term.wait_for(lambda s: "connected" in s and short_host in s, 60, "the worker")
        sent: list[str] = []

        def arrived() -> bool:
            term.pump(0.1)
            assert term.child.isalive(), term.text
            sent.append(str(app.send_task("workerapp.add", args=(0, 0)).id))
            return any(receiver.task(t) for t in sent)

        wait_for(arrived, timeout=60, interval=1.0, what="a span from the dashboard")
        failed = str(app.send_task("workerapp.always_fail", args=("d",)).id)
        wait_for(lambda: (term.pump(0.1), receiver.task(failed))[1], timeout=60,
                 what="the failure's span")
        assert term.child.isalive()  # exported while the dashboard runs
        term.press("q")
        term.child.expect(pexpect.EOF, timeout=30)
        term.child.close()
        assert term.child.exitstatus == 0
    finally:
        if term.child.isalive():
            term.child.terminate(force=True)
    span = receiver.task(failed)
    assert span is not None and span["status"] == 2
    assert span["resource"]["service.name"] == "lc-dashboard"
    out = bytes(term.raw).decode(errors="replace") + term.child.before.decode(errors="replace")
    assert "spans exported to" in out and "0 lost" in out, out[-2000:]
    assert "Traceback" not in out
