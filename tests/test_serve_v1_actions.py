"""``/api/v1/actions`` in process (Starlette's TestClient) over a replayed event stream: who may
call what (a viewer reads the dry runs, is refused the actions; ``--read-only`` refuses), the
bodies validated with a 400 naming the field, unknown workers and queues 404, a dry run that
never answers the real args, and the client (``RemoteActions``) turning serve's answers into
one line each. The real sends are in integration/test_remote_actions.py."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the serve extra")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from lazycelery.core.action_result import ActionError, ActionResult, ReadOnlyError, Reply
from lazycelery.core.actions_remote import RemoteActions, result_from_json
from lazycelery.core.index import TaskIndex
from lazycelery.serve.app import build_app
from lazycelery.serve.auth import AuthConfig, Guard
from lazycelery.serve.v1.actions import result_json
from tests.replay import load_events
from tests.test_serve_v1 import OP, TOKENS, VIEW, make_service


@pytest.fixture(scope="module")
def index() -> TaskIndex:
    index = TaskIndex()
    index.apply_batch(load_events("redis"))
    return index


def _client(index: TaskIndex, tmp_path: Path, **kw: Any) -> TestClient:
    service = make_service(index, audit_path=tmp_path / "audit.log", **kw)
    return TestClient(build_app(service, Guard(AuthConfig(TOKENS))),
                      raise_server_exceptions=False)


@pytest.fixture
def api(index: TaskIndex, tmp_path: Path) -> Iterator[TestClient]:
    with _client(index, tmp_path) as c:
        yield c


def _failed(index: TaskIndex) -> str:
    return next(r.uuid for r in index.records() if r.state == "FAILURE")


def test_viewer_reads_dry_runs_but_may_not_act(api: TestClient, index: TaskIndex,
                                               tmp_path: Path) -> None:
    failed = _failed(index)
    plan = api.post("/api/v1/actions/retry/plan", json={"task_ids": [failed]}, headers=VIEW)
    assert plan.status_code == 200
    body = plan.json()
    # planned (args from the event here): their count and keyword names, never the values
    [planned] = body["plans"]
    assert planned["uuid"] == failed and body["refusals"] == []
    assert isinstance(planned["args_count"], int) and isinstance(planned["kwargs_names"], list)
    assert not {"args", "kwargs"} & set(planned)
    located = api.post("/api/v1/actions/locate", json={"task_ids": [failed]}, headers=VIEW)
    assert located.status_code == 200 and set(located.json()) == {"holders", "held_as",
                                                                  "online", "source"}
    for path, payload in (("retry", {"task_ids": [failed]}), ("replay", {"task_id": failed}),
                          ("revoke", {"task_ids": [failed]}), ("purge", {"queue": "celery"}),
                          ("workers/pool-grow", {"workers": ["w1"], "n": 1})):
        refused = api.post(f"/api/v1/actions/{path}", json=payload, headers=VIEW)
        assert refused.status_code == 403, path
        assert refused.json() == {"error": "role viewer may not act (operator needed)"}
    assert not (tmp_path / "audit.log").exists()


def test_read_only_serve_refuses_actions_allows_dry_runs(index: TaskIndex,
                                                        tmp_path: Path) -> None:
    with _client(index, tmp_path, read_only=True) as api:
        refused = api.post("/api/v1/actions/revoke", json={"task_ids": ["x"]}, headers=OP)
        assert refused.status_code == 403
        assert refused.json() == {"error": "read-only mode: actions are refused"}
        assert api.post("/api/v1/actions/locate", json={"task_ids": ["x"]},
                        headers=OP).status_code == 200


def test_bodies_are_validated_with_one_line(api: TestClient) -> None:
    cases = [("revoke", {"task_ids": []}, "task_ids"),
             ("revoke", {"task_ids": ["a"], "colour": 1}, None),
             ("retry", {"task_ids": "abc"}, "task_ids"),
             ("workers/pool-grow", {"workers": ["w"], "n": 0}, "n")]
    for path, payload, field in cases:
        got = api.post(f"/api/v1/actions/{path}", json=payload, headers=OP)
        assert got.status_code == 400, (path, payload)
        assert got.json()["error"].startswith("bad body: ")
        if field:
            assert got.json()["parameter"] == field
    bad_signal = api.post("/api/v1/actions/revoke", json={"task_ids": ["a"], "signal": "NOPE"},
                          headers=OP)
    assert bad_signal.status_code == 400 and "unknown signal" in bad_signal.json()["error"]


def test_unknown_workers_queues_and_actions_are_404(api: TestClient) -> None:
    worker = api.post("/api/v1/actions/workers/shutdown", json={"workers": ["nobody@x"]},
                      headers=OP)
    assert worker.status_code == 404 and worker.json() == {"error": "Unknown worker 'nobody@x'"}
    queue = api.post("/api/v1/actions/purge", json={"queue": "not-a-queue"}, headers=OP)
    assert queue.status_code == 404
    action = api.post("/api/v1/actions/workers/explode", json={"workers": ["w"]}, headers=OP)
    assert action.status_code == 404 and "one of: shutdown" in action.json()["error"]


def test_a_revoke_with_no_online_worker_is_refused_and_audited_as_the_api_user(
        api: TestClient, index: TaskIndex, tmp_path: Path) -> None:
    from lazycelery.core import audit

    failed = _failed(index)  # the replayed workers are long offline: nobody to tell
    got = api.post("/api/v1/actions/revoke", json={"task_ids": [failed]}, headers=OP)
    assert got.status_code == 200
    result = result_from_json(got.json(), "revoke")
    assert not result.ok and failed in result.refused
    [entry] = audit.read(tmp_path / "audit.log")
    assert entry.action == "revoke" and entry.user.startswith("api:token:o")


def test_result_round_trips_through_json() -> None:
    result = ActionResult("retry", ("a", "b"), False, replies={"a": Reply(True, "sent as n")},
                          missing=("w2",), message="1 of 2 sent, 1 refused",
                          created={"a": "n"}, refused={"b": "no args"}, count=None,
                          marked=("a",), audit_error="disk full")
    assert result_from_json(result_json(result), "retry") == result


def test_client_refusals_are_one_line() -> None:
    actions = RemoteActions("http://127.0.0.1:1", "t", read_only=True)
    with pytest.raises(ReadOnlyError, match=r"^revoke: refused: read-only mode"):
        actions.revoke(["a"])
    actions.read_only = False
    with pytest.raises(ActionError) as lost:
        actions.pool_grow(["w"], 2)
    text = str(lost.value)
    assert text.startswith("pool-grow: cannot reach http://127.0.0.1:1: ") and "\n" not in text
    assert text.endswith("nothing was sent")


def test_a_retry_with_nothing_planned_asks_nobody() -> None:
    from lazycelery.core.retry_plan import Refusal, RetryBatch

    actions = RemoteActions("http://127.0.0.1:1", "t")  # unreachable: it must not be asked
    result = actions.retry(RetryBatch(plans=(), refusals=(Refusal("a", "no args"),)))
    assert not result.ok and result.refused == {"a": "no args"}


def test_a_forwarded_retry_goes_where_the_routing_rules_say(index: TaskIndex,
                                                            tmp_path: Path) -> None:
    """serve's ``[[policies.route]]`` (``Service.route``) decides the queue of a retry and a
    replay forwarded to it, as it does for a local one; a name no rule matches keeps its own."""
    from lazycelery.core import audit

    failed = _failed(index)
    name = index.get(failed).name  # type: ignore[union-attr]
    routes = {name: "routed-by-policy"}
    with _client(index, tmp_path, route=routes.get) as api:
        got = api.post("/api/v1/actions/retry", json={"task_ids": [failed]}, headers=OP)
        assert got.status_code == 200
        result = result_from_json(got.json(), "retry")
        assert result.ok, result.lines()
        assert result.replies[failed].text.endswith(" to routed-by-policy")
        replayed = api.post("/api/v1/actions/replay", json={"task_id": failed}, headers=OP)
        assert replayed.status_code == 200
        assert replayed.json()["message"].endswith(" to routed-by-policy")
        routes.clear()  # no rule for the name: the task's own queue
        again = result_from_json(api.post("/api/v1/actions/retry", json={"task_ids": [failed]},
                                          headers=OP).json(), "retry")
        assert "routed-by-policy" not in again.replies[failed].text
    assert [e.action for e in audit.read(tmp_path / "audit.log")] == ["retry", "replay", "retry"]


def test_task_id_prefixes_are_resolved_by_serve(api: TestClient, index: TaskIndex,
                                                tmp_path: Path) -> None:
    """A unique prefix (the dashboard's 8 characters) names the task on serve; none is a 404
    and several a 409 naming them, each one line of JSON; full ids pass as they are."""
    failed = _failed(index)
    ids = sorted(r.uuid for r in index.records())
    # the shortest prefix of `failed` no other id starts with, and one two ids share
    unique = next(failed[:n] for n in range(1, 36)
                  if sum(i.startswith(failed[:n]) for i in ids) == 1)
    shared = next(a[:n] for a, b in itertools.pairwise(ids)
                  for n in range(8, 0, -1) if a[:n] == b[:n])
    got = api.post("/api/v1/actions/resolve", json={"task_ids": [unique, failed]}, headers=VIEW)
    assert got.status_code == 200
    assert got.json() == {"resolved": [{"given": unique, "task_id": failed},
                                       {"given": failed, "task_id": failed}]}
    plan = api.post("/api/v1/actions/retry/plan", json={"task_ids": [unique]}, headers=VIEW)
    assert [p["uuid"] for p in plan.json()["plans"]] == [failed]

    ambiguous = api.post("/api/v1/actions/revoke", json={"task_ids": [shared]}, headers=OP)
    assert ambiguous.status_code == 409
    body = ambiguous.json()
    assert body["error"].startswith(f"task id prefix {shared!r} is ambiguous: ")
    assert len(body["matches"]) >= 2 and all(m.startswith(shared) for m in body["matches"])
    none = api.post("/api/v1/actions/replay", json={"task_id": "ffffffff0"}, headers=OP)
    assert none.status_code == 404
    assert none.json() == {"error": "no task id starts with 'ffffffff0' in serve's index (a "
                                    "task still in a queue has no result yet): give the "
                                    "full id"}
    too_many = api.post("/api/v1/actions/locate", json={"task_ids": ["ab"] * 101}, headers=OP)
    assert too_many.status_code == 400 and too_many.json()["parameter"] == "task_ids"
    assert not (tmp_path / "audit.log").exists()  # refused before acting: nothing audited


def test_the_client_says_serves_prefix_answers_in_one_line(api: TestClient,
                                                           index: TaskIndex) -> None:
    from lazycelery.core.actions_remote import ACTIONS_PATH

    class Wire(RemoteActions):  # the in-process app instead of the network
        def _post(self, action: str, path: str, body: Any) -> dict[str, Any]:
            got = api.post(f"{ACTIONS_PATH}{path}", json=dict(body), headers=OP)
            if got.status_code != 200:
                raise ActionError(f"{action}: {got.json()['error']}")
            return dict(got.json())

    failed = _failed(index)
    wire = Wire("http://serve", "op")
    assert wire.resolve_task_ids([failed[:12]]) == [(failed[:12], failed)]
    with pytest.raises(ActionError, match=r"^revoke: no task id starts with 'ffffffff0'"):
        wire.resolve_task_ids(["ffffffff0"], "revoke")


def test_queue_actions_and_reveal_need_an_operator_on_a_serve_that_acts(
        api: TestClient, index: TaskIndex, tmp_path: Path) -> None:
    failed = _failed(index)
    move = {"queue": "celery", "target": "elsewhere", "all": True}
    for path, payload in (("queues/move", move), ("queues/requeue-dead",
                                                  {"queue": "celery", "task_ids": ["a"]}),
                          ("queues/delete", {"queue": "celery", "all": True}),
                          ("reveal", {"task_id": failed})):
        refused = api.post(f"/api/v1/actions/{path}", json=payload, headers=VIEW)
        assert refused.status_code == 403, path
        assert refused.json() == {"error": "role viewer may not act (operator needed)"}
    with _client(index, tmp_path, read_only=True) as ro:
        for path, payload in (("queues/move", move), ("reveal", {"task_id": failed})):
            refused = ro.post(f"/api/v1/actions/{path}", json=payload, headers=OP)
            assert refused.status_code == 403
            assert refused.json() == {"error": "read-only mode: actions are refused"}
    assert not (tmp_path / "audit.log").exists()


def test_queue_action_bodies_and_names_are_checked(api: TestClient) -> None:
    cases = [("queues/move", {"queue": "celery", "all": True}, 400, "target"),
             ("queues/move", {"queue": "celery", "target": "celery", "all": True}, 400, "target"),
             ("queues/delete", {"queue": "celery", "target": "x", "all": True}, 400, "target"),
             ("queues/delete", {"queue": "celery"}, 400, "task_ids"),
             ("queues/delete", {"queue": "celery", "all": True, "task_ids": ["a"]}, 400,
              "task_ids"),
             ("queues/delete", {"queue": "celery", "all": True, "limit": 0}, 400, "limit"),
             ("queues/move", {"queue": "nowhere", "target": "x", "all": True}, 404, None),
             ("queues/explode", {"queue": "celery", "all": True}, 404, None)]
    for path, payload, status, field in cases:
        got = api.post(f"/api/v1/actions/{path}", json=payload, headers=OP)
        assert got.status_code == status, (path, payload, got.json())
        assert "\n" not in got.json()["error"]
        assert got.json().get("parameter") == field, (path, payload)


def test_a_queue_move_serve_cannot_open_the_broker_for_is_a_503(index: TaskIndex,
                                                               tmp_path: Path) -> None:
    def broken(queues: Any) -> Any:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    with _client(index, tmp_path, open_inspector=broken, known_queues=("celery",)) as api:
        got = api.post("/api/v1/actions/queues/move",
                       json={"queue": "celery", "target": "b", "all": True}, headers=OP)
    assert got.status_code == 503
    assert got.json() == {"error": "cannot open the broker: Error 111 connecting to "
                                   "127.0.0.1:1. Connection refused."}


def test_reveal_without_a_result_backend_says_why_and_is_audited_as_the_api_user(
        api: TestClient, index: TaskIndex, tmp_path: Path) -> None:
    from lazycelery.core import audit

    failed = _failed(index)
    got = api.post("/api/v1/actions/reveal", json={"task_id": failed[:10]}, headers=OP)
    assert got.status_code == 200 and got.headers["cache-control"] == "no-store"
    body = got.json()
    assert body["uuid"] == failed and body["fields"] == {}
    assert "result backend" in body["reason"]
    [entry] = audit.read(tmp_path / "audit.log")
    assert (entry.action, entry.targets) == ("reveal", [failed])
    assert entry.user.startswith("api:token:o") and entry.result["ok"] is False


def test_worker_options_are_checked_with_a_400_naming_the_parameter(
        api: TestClient, tmp_path: Path) -> None:
    """A pool restart's modules, an add-consumer's exchange, type and routing key: a bad one,
    or one the action does not take, is refused before any worker is looked up or asked."""
    cases = [("pool-restart", {"modules": ["os; rm"]}, "modules", "bad module name"),
             ("pool-restart", {"modules": ["a..b"], "reload": True}, "modules", "dotted"),
             ("pool-restart", {"modules": "proj.tasks"}, "modules", "bad body"),
             ("pool-restart", {"exchange": "x"}, "exchange", "takes no exchange"),
             ("add-consumer", {"queue": "q", "exchange": "a b"}, "exchange", "bad exchange"),
             ("add-consumer", {"queue": "q", "exchange_type": "nope"}, "exchange_type",
              "bad exchange type"),
             ("add-consumer", {"queue": "q", "routing_key": "a\u0000"}, "routing_key",
              "bad routing key"),
             ("add-consumer", {"queue": "q", "reload": True}, "reload", "takes no reload"),
             ("pool-grow", {"routing_key": "k"}, "routing_key", "takes no routing_key")]
    for action, extra, parameter, said in cases:
        got = api.post(f"/api/v1/actions/workers/{action}",
                       json={"workers": ["nobody@x"], **extra}, headers=OP)
        assert got.status_code == 400, (action, extra, got.text)
        assert got.json()["parameter"] == parameter, (action, extra)
        assert said in got.json()["error"]
    # good options pass the checks: then the unknown worker is the 404
    for action, extra in (("pool-restart", {"modules": ["proj.tasks"], "reload": True}),
                          ("add-consumer", {"queue": "q", "exchange": "jobs",
                                            "exchange_type": "topic", "routing_key": "r.#"})):
        got = api.post(f"/api/v1/actions/workers/{action}",
                       json={"workers": ["nobody@x"], **extra}, headers=OP)
        assert got.status_code == 404, got.text
        viewer = api.post(f"/api/v1/actions/workers/{action}",
                          json={"workers": ["nobody@x"], **extra}, headers=VIEW)
        assert viewer.status_code == 403
    assert not (tmp_path / "audit.log").exists()


def test_the_client_checks_worker_options_before_sending() -> None:
    from lazycelery.core.control_options import BadOption

    actions = RemoteActions("http://127.0.0.1:1", "t")  # unreachable: it must not be asked
    with pytest.raises(BadOption, match="bad module name"):
        actions.pool_restart(["w"], modules=["a-b"], reload=True)
    with pytest.raises(BadOption, match="bad exchange type"):
        actions.add_consumer(["w"], "q", exchange="e", exchange_type="bogus")
    with pytest.raises(ActionError, match="cannot reach"):  # good ones are sent
        actions.add_consumer(["w"], "q", exchange="e", exchange_type="topic", routing_key="r")


def test_options_round_trip_through_the_result_json() -> None:
    result = ActionResult("add-consumer", ("w", "q"), True,
                          options={"exchange": "e", "exchange_type": "topic",
                                   "routing_key": "r.#"})
    assert result.to_json()["options"] == {"exchange": "e", "exchange_type": "topic",
                                           "routing_key": "r.#"}
    assert result_from_json(result_json(result), "add-consumer") == result
    assert "options" not in ActionResult("shutdown", ("w",), True).to_json()


def test_workflow_links_are_a_read_for_any_role(api: TestClient, index: TaskIndex,
                                                tmp_path: Path) -> None:
    """``GET /api/v1/tasks/ID/links``: a viewer may read; without a result backend the note
    says why; an unknown task is a 404 naming it; the client makes each one line."""
    from lazycelery.core.workflow_remote import RemoteWorkflow

    failed = _failed(index)
    got = api.get(f"/api/v1/tasks/{failed}/links", headers=VIEW)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["task"] == failed and body["links"] == {} and body["count"] == 0
    assert "result backend" in body["note"]
    missing = api.get("/api/v1/tasks/no-such-task/links", headers=VIEW)
    assert missing.status_code == 404 and missing.json()["parameter"] == "task_id"
    with pytest.raises(ActionError) as lost:
        RemoteWorkflow("http://127.0.0.1:1", "t").links(failed)
    assert str(lost.value).startswith("workflow: cannot read http://127.0.0.1:1: ")
