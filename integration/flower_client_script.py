"""A Flower API client of the kind teams already run against Flower: written only from Flower's
API documentation (https://flower.readthedocs.io/en/latest/api.html), with the standard library,
knowing nothing of lazycelery. integration/test_serve_flower_client.py runs it unchanged against
Flower and against `lazycelery serve` on the same worker and compares what it prints.

    python flower_client_script.py BASE_URL WORKER QUEUE

Prints one line per check, free of ids and times, so two servers can be compared line by line;
exits non-zero on the first answer a Flower client could not use.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class Client:
    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def call(self, method: str, path: str, *, query: dict[str, Any] | None = None,
             body: Any = None, form: dict[str, Any] | None = None) -> tuple[int, Any]:
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data, headers = None, {}
        if body is not None:
            data, headers = json.dumps(body).encode(), {"Content-Type": "application/json"}
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
        elif method == "POST":
            data = b""
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        text = raw.decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def get(self, path: str, **query: Any) -> Any:
        status, payload = self.call("GET", path, query=query or None)
        if status != 200:
            sys.exit(f"GET {path}: HTTP {status}: {payload}")
        return payload

    def post(self, path: str, *, query: dict[str, Any] | None = None, body: Any = None,
             form: dict[str, Any] | None = None) -> Any:
        status, payload = self.call("POST", path, query=query, body=body, form=form)
        if status != 200:
            sys.exit(f"POST {path}: HTTP {status}: {payload}")
        return payload


def until(what: str, check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    sys.exit(f"timed out waiting for {what}")


def main(base: str, worker: str, queue: str) -> None:
    api = Client(base)
    say = print

    status, text = api.call("GET", "/healthcheck")
    say(f"healthcheck {status} {text!r}")

    workers = api.get("/api/workers", refresh="1")
    say(f"workers has {worker}: {worker in workers}")
    say(f"worker keys include registered, stats, active_queues: "
        f"{all(k in workers[worker] for k in ('registered', 'stats', 'active_queues'))}")
    say(f"worker online: {api.get('/api/workers', status='1').get(worker)}")

    # async-apply, then poll the result the way Flower's docs show
    started = api.post("/api/task/async-apply/workerapp.add", body={"args": [2, 3]})
    # the state is read from the backend as the answer is made: PENDING, or already SUCCESS
    # when the worker was quicker (Flower and serve alike), so only its being one is compared
    say(f"async-apply keys {sorted(started)} "
        f"state known {started.get('state') in ('PENDING', 'RECEIVED', 'STARTED', 'SUCCESS')}")
    task_id = started["task-id"]
    result = until("the result", lambda: (lambda r: r if r.get("state") == "SUCCESS" else None)(
        api.get(f"/api/task/result/{task_id}")))
    say(f"result {result['state']} {result['result']}")

    applied = api.post("/api/task/apply/workerapp.add", body={"args": [4, 5]})
    say(f"apply {applied['state']} {applied['result']}")

    sent = api.post("/api/task/send-task/workerapp.add", body={"args": [1, 1]})
    say(f"send-task keys {sorted(sent)}")

    info = until("the task in /api/task/info", lambda: (
        lambda s, i: i if s == 200 and i.get("state") == "SUCCESS" else None)(
        *api.call("GET", f"/api/task/info/{task_id}")))
    say(f"info {info['name']} {info['state']} args={info['args']} result={info['result']} "
        f"worker={info['worker'] == worker}")

    tasks = api.get("/api/tasks", taskname="workerapp.add", state="SUCCESS", limit="100")
    say(f"tasks by name and state include ours: {task_id in tasks}")
    say(f"task types include workerapp.add: {'workerapp.add' in api.get('/api/task/types')['task-types']}")

    status, _ = api.call("GET", "/api/task/info/00000000-0000-0000-0000-000000000000")
    say(f"unknown task info: HTTP {status}")

    # a long task, terminated through the API
    sleeper = api.post("/api/task/async-apply/workerapp.sleepy", body={"args": [60]})["task-id"]
    until("the sleeper to start", lambda: (lambda s, i: s == 200 and i.get("state") == "STARTED")(
        *api.call("GET", f"/api/task/info/{sleeper}")))
    revoked = api.post(f"/api/task/revoke/{sleeper}", query={"terminate": "true"})
    say(f"revoke message {revoked['message'] == f'Revoked {sleeper!r}'}")
    until("the sleeper to be revoked", lambda: (lambda s, i: s == 200 and i.get("state") == "REVOKED")(
        *api.call("GET", f"/api/task/info/{sleeper}")))
    say("sleeper REVOKED")

    limited = api.post("/api/task/rate-limit/workerapp.add",
                       form={"workername": worker, "ratelimit": "100/m"})
    say(f"rate-limit answered with a message: {'message' in limited}")
    timed = api.post("/api/task/timeout/workerapp.sleepy",
                     form={"workername": worker, "soft": "30", "hard": "60"})
    say(f"timeout answered with a message: {'message' in timed}")

    for path, query in ((f"/api/worker/pool/grow/{worker}", {"n": "1"}),
                        (f"/api/worker/pool/shrink/{worker}", {"n": "1"}),
                        (f"/api/worker/queue/add-consumer/{worker}", {"queue": queue + "-extra"}),
                        (f"/api/worker/queue/cancel-consumer/{worker}", {"queue": queue + "-extra"})):
        # a pool just grown, or whose process was just terminated, may refuse to shrink while
        # its new process starts ("All processes busy"): a client retries for a while
        answer = until(f"POST {path} to succeed", lambda p=path, q=query: (
            lambda s, a: a if s == 200 else None)(*api.call("POST", p, query=q)), timeout=30)
        say(f"{path.split('/api/worker/')[1].rsplit('/', 1)[0]}: message {'message' in answer}")

    lengths = api.get("/api/queues/length")["active_queues"]
    say(f"queue lengths list our queue: {queue in [q['name'] for q in lengths]}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
