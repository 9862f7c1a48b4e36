"""Masking rules (lazycelery.mask): key names, value patterns, field paths, text fallback, the
config's bad rules, and the hook at ingest (BatchSink) on recorded events."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from lazycelery.config_file import MaskConfig
from lazycelery.mask import Masker, compile_rules, is_masked_text
from lazycelery.mask.patterns import luhn_ok

SECRET = "hunter2"
CARD = "4111 1111 1111 1111"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----"


def masked(text: str, config: MaskConfig | None = None, task: str | None = None,
           field: str = "kwargs") -> str:
    return Masker.from_config(config).mask_field(task, field, text)


@pytest.mark.parametrize("text, expected", [
    ("{'password': 'hunter2'}", "{'password': '***' (str, 7 chars)}"),
    ("{'PassWord': 'hunter2', 'n': 1}", "{'PassWord': '***' (str, 7 chars), 'n': 1}"),
    ("{'user': {'db_password': 'x', 'name': 'ana'}}",
     "{'user': {'db_password': '***' (str, 1 char), 'name': 'ana'}}"),
    ("{'X-Api-Key': 'k1', 'apiKey': 'k2'}",
     "{'X-Api-Key': '***' (str, 2 chars), 'apiKey': '***' (str, 2 chars)}"),
    ("[{'cookie': b'abc'}]", "[{'cookie': '***' (bytes, 3 bytes)}]"),
    ("{'card': {'number': 1, 'exp': 2}}", "{'card': '***' (dict, 2 items)}"),
    ("{'cvv': 123}", "{'cvv': '***' (int, 3 digits)}"),
    ("{'token': None, 'secret': True}", "{'token': None, 'secret': True}"),
    ("({'iban': 'DE89'},)", "({'iban': '***' (str, 4 chars)},)"),
    ("{'a': {'b': {'c': [{'ssn': '078-05-1120'}]}}}",
     "{'a': {'b': {'c': [{'ssn': '***' (str, 11 chars)}]}}}"),
])
def test_key_names_are_masked_anywhere_whatever_their_case(text: str, expected: str) -> None:
    assert masked(text) == expected


@pytest.mark.parametrize("value, rule", [
    (CARD, "pattern:card"), ("4111-1111-1111-1111", "pattern:card"),
    ("Bearer abcdefgh12345678", "pattern:bearer"), (JWT, "pattern:jwt"),
    (PEM, "pattern:private_key"), ("AKIAIOSFODNN7EXAMPLE", "pattern:aws_key"),
    ("redis://:pw@host:6379/0", "pattern:url_password"),
])
def test_value_patterns_mask_values_wherever_they_are(value: str, rule: str) -> None:
    masker = Masker()
    out = masker.mask_field(None, "args", repr((1, [value])))
    assert out == f"(1, ['***' (str, {len(value)} chars)])"
    assert masker.counts == {rule: 1}


def test_card_numbers_need_the_luhn_check_and_an_issuer_digit() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert masked("('4111 1111 1111 1112',)") == "('4111 1111 1111 1112',)"
    assert masked("(4111111111111111,)") == "('***' (int, 16 digits),)"
    # a millisecond timestamp is not a card (it starts with 1)
    assert masked("(1712345678901, 1712345678908)") == "(1712345678901, 1712345678908)"


def test_email_is_off_by_default_and_on_when_named() -> None:
    text = "('ana@example.com',)"
    assert masked(text) == text
    config = MaskConfig(patterns=("card", "email"))
    assert masked(text, config) == "('***' (str, 15 chars),)"


def test_field_paths_mask_one_task_s_arguments() -> None:
    config = MaskConfig(fields={"billing.charge": ("args[1]", "kwargs.customer.email"),
                                "reports.*": ("args[0]",)})
    args = "(42, 'ana', 'x')"
    assert masked(args, config, "billing.charge", "args") == "(42, '***' (str, 3 chars), 'x')"
    assert masked(args, config, "billing.refund", "args") == args
    assert masked(args, config, "reports.daily", "args") == "('***' (int, 2 digits), 'ana', 'x')"
    kwargs = "{'customer': {'email': 'ana@example.com', 'id': 7}}"
    assert masked(kwargs, config, "billing.charge") == (
        "{'customer': {'email': '***' (str, 15 chars), 'id': 7}}")
    # a repr that does not parse cannot be followed: the field is masked whole
    assert masked("(42, <object at 0x1>)", config, "billing.charge", "args") == (
        "'***' (text, 21 chars)")


def test_text_that_does_not_parse_is_masked_by_key_and_pattern() -> None:
    cut = "{'password': 'hunter2', 'note': 'xxxx"  # celery cut it at 1,024 characters
    assert SECRET not in masked(cut)
    assert masked("<User password='hunter2' name='ana'>") == (
        "<User password='***' (text, 9 chars) name='ana'>")
    assert masked("{'when': datetime(2024, 1, 1), 'token': 'abc', 'cut': 'x...") == (
        "{'when': datetime(2024, 1, 1), 'token': '***' (text, 5 chars), 'cut': 'x...")
    # objects' reprs that parse are walked like literals, keyword arguments included
    assert masked("{'when': datetime.datetime(2024, 1, 1), 'token': 'abc'}") == (
        "{'when': datetime.datetime(2024, 1, 1), 'token': '***' (str, 3 chars)}")
    assert masked("(User(name='ana', password='hunter2'), Decimal('4111111111111111'))") == (
        "(User(name='ana', password='***' (str, 7 chars)), Decimal('***' (str, 16 chars)))")
    trace = ("Traceback (most recent call last):\n  File \"t.py\", line 1, in f\n"
             f"ValueError: bad token {JWT}")
    out = Masker().mask_field(None, "traceback", trace)
    assert JWT not in out and out.startswith("Traceback") and "'***' (text," in out


def test_masking_is_idempotent_and_leaves_clean_text_alone() -> None:
    once = masked("{'password': 'hunter2', 'x': <o>}")
    assert is_masked_text(once) and masked(once) == once
    for clean in ("(1, 2)", "{'id': 1801, 'user': 'user-844', 'tags': ['a', 'b']}", "()", "{}"):
        assert masked(clean) is clean if len(clean) < 5 else masked(clean) == clean


def test_sets_tuples_and_ellipsis_render_as_reprs() -> None:
    assert masked("{'token': {1, 2}, 'a': {...}, 'b': (1,)}") == (
        "{'token': '***' (set, 2 items), 'a': {...}, 'b': (1,)}")
    assert masked(f"({{'{CARD}'}},)") == "({'***' (str, 19 chars)},)"


def test_bad_rules_are_one_line_each_and_the_others_still_apply() -> None:
    rules = compile_rules(MaskConfig(regex=("sk_(", "sk_live_[0-9a-z]{8}"),
                                     patterns=("card", "cards"),
                                     fields={"t": ("args.x", "nope[1]", "kwargs.a")}))
    assert rules.problems == (
        "mask.patterns: unknown pattern 'cards' (known: card, bearer, jwt, private_key, "
        "aws_key, url_password, email): skipped",
        "mask.regex[0]: bad regular expression 'sk_(' (missing ), unterminated subpattern at "
        "position 3): skipped",
        "mask.fields.t: bad path 'args.x' (args is a list: its first step is an index "
        "(args[1])): skipped",
        "mask.fields.t: bad path 'nope[1]' (a field path starts with args, kwargs or result "
        "(args[1], kwargs.customer.email)): skipped",
    )
    assert all("\n" not in p for p in rules.problems)
    masker = Masker(rules)
    assert masker.mask_field("t", "kwargs", "{'key': 'sk_live_abcdefgh'}") == (
        "{'key': '***' (str, 16 chars)}")
    assert masker.mask_field("t", "kwargs", "{'a': 1, 'password': 'x'}") == (
        "{'a': '***' (int, 1 digit), 'password': '***' (str, 1 char)}")
    assert not rules.fail_closed


def test_no_valid_rule_at_all_fails_closed() -> None:
    rules = compile_rules(MaskConfig(keys=(), patterns=("nope",), regex=("(",)))
    assert rules.fail_closed and len(rules.problems) == 2
    assert Masker(rules).mask_field(None, "args", "(1, 2)") == "'***' (text, 6 chars)"


def test_masking_can_be_turned_off() -> None:
    masker = Masker.from_config(MaskConfig(enabled=False))
    event = {"type": "task-received", "kwargs": "{'password': 'x'}"}
    masker.apply([event])
    assert event["kwargs"] == "{'password': 'x'}"


def test_an_environment_s_mask_table_is_over_the_top_level_one() -> None:
    top = MaskConfig(extra_keys=("pin",), patterns=("card",))
    env = MaskConfig(patterns=("card", "email"))
    merged = env.over(top)
    assert merged.extra_keys == ("pin",) and merged.patterns == ("card", "email")


def test_the_config_file_reads_mask_tables(tmp_path: Path) -> None:
    from lazycelery.config_file import load_file
    from lazycelery.errors import ConfigError

    path = tmp_path / "c.toml"
    path.write_text('[mask]\nextra_keys = ["pin"]\n[mask.fields]\n"billing.charge" = ["args[1]"]\n'
                    '[environments.prod]\nbroker = "redis://h:6379/0"\n'
                    '[environments.prod.mask]\npatterns = ["card", "email"]\n')
    config = load_file(path)
    assert config.mask is not None and config.mask.extra_keys == ("pin",)
    assert config.environments["prod"].mask == MaskConfig(patterns=("card", "email"))
    path.write_text('[mask]\nkeys = "password"\n')
    with pytest.raises(ConfigError, match=r"^config .*: mask.keys: expected array, got str$"):
        load_file(path)
    path.write_text('[mask]\nkey = ["x"]\n')
    with pytest.raises(ConfigError, match=r": mask.key: unknown key \(known: enabled, keys,"):
        load_file(path)
    path.write_text('[environments.prod.mask]\nfields = { t = "args[0]" }\n')
    with pytest.raises(ConfigError, match=r": environments.prod.mask.fields: expected array, got str$"):
        load_file(path)


def test_apply_masks_the_fields_of_each_event_type_and_counts() -> None:
    masker = Masker()
    events: list[dict[str, Any]] = [
        {"type": "task-received", "name": "t", "args": f"('{CARD}',)",
         "kwargs": "{'password': 'hunter2'}"},
        {"type": "task-succeeded", "result": "{'token': 'abc'}"},
        {"type": "task-failed", "exception": f"ValueError('{JWT}')", "traceback": "x"},
        {"type": "worker-heartbeat", "args": "{'password': 'left alone: not a task event'}"},
    ]
    masker.apply(events)
    assert events[0]["args"] == "('***' (str, 19 chars),)"
    assert events[0]["kwargs"] == "{'password': '***' (str, 7 chars)}"
    assert events[1]["result"] == "{'token': '***' (str, 3 chars)}"
    assert JWT not in events[2]["exception"]
    assert masker.counts == {"pattern:card": 1, "key:password": 1, "key:token": 1,
                             "pattern:jwt": 1}
    assert masker.take_counts() == masker.counts and masker.take_counts() == {}


def test_values_from_a_message_body_are_masked_as_plain_values() -> None:
    masker = Masker.from_config(MaskConfig(fields={"t": ("args[0]",)}))
    args, kwargs = masker.mask_values("t", ["ana", CARD], {"credentials": {"password": "x"}, "n": 1})
    assert args == ["'***' (str, 3 chars)", "'***' (str, 19 chars)"]
    assert kwargs == {"credentials": "'***' (dict, 1 item)", "n": 1}
    assert json.dumps([args, kwargs])


def test_the_counts_log_is_appended_and_read(tmp_path: Path) -> None:
    from lazycelery.mask import counts

    path = tmp_path / "counts.log"
    masker = Masker(environment="prod", save_every=60.0)
    masker.mask_field(None, "kwargs", "{'password': 'x'}")
    counts.append(masker.take_counts(), "prod", 1, path=path)
    counts.append({}, "prod", path=path)  # nothing to say: no line
    path.open("ab").write(b"not json\n")
    entries = counts.read(path)
    assert [(e.environment, e.counts) for e in entries] == [("prod", {"key:password": 1})]


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_recorded_events_are_left_as_they_are_by_the_default_rules(broker: str) -> None:
    """No false positive on a real stream (ids, timestamps, amounts, e-mail off)."""
    from tests.replay import load_events

    events = load_events(broker)
    assert events
    copies = [dict(e) for e in events]
    Masker().apply(copies)
    assert copies == events


def test_the_ingest_hook_masks_before_the_index_and_the_sinks_see_events() -> None:
    from lazycelery.core.batch import BatchSink
    from lazycelery.core.index import TaskIndex

    seen: list[Any] = []
    index = TaskIndex()
    sink = BatchSink(index, on_batch=lambda batch, records: seen.extend(batch), masker=Masker())
    sink.add({"type": "task-received", "uuid": "u1", "name": "t", "hostname": "w", "clock": 1,
              "timestamp": 1.0, "args": "()", "kwargs": "{'password': 'hunter2'}"})
    sink.flush()
    rec = index.get("u1")
    assert rec is not None and rec.kwargs == "{'password': '***' (str, 7 chars)}"
    assert SECRET not in repr(seen)


def test_retry_refuses_args_rebuilt_from_masked_events() -> None:
    from lazycelery.core.model import TaskRecord
    from lazycelery.core.retry_plan import _parse_event_reprs

    rec = TaskRecord(uuid="u", name="t", args="()", kwargs="{'password': '***' (str, 7 chars)}")
    reason = _parse_event_reprs(rec)
    assert isinstance(reason, str) and "masked" in reason


def test_the_retry_dry_run_never_shows_the_real_args() -> None:
    from lazycelery.core.retry_plan import RetryPlan

    plan = RetryPlan(uuid="u", name="billing.charge", args=(CARD, 3),
                     kwargs={"password": SECRET}, queue="billing", root_id="u", parent_id="u",
                     source="result backend", state="FAILURE")
    assert plan.describe() == ("billing.charge(2 args; kwargs password) -> billing  "
                               "[FAILURE; args from result backend]")


def test_literal_reprs_render_back_to_equal_values() -> None:
    text = "({'a': [1, 2.5, None, True], 'b': (1,), 'c': b'x', 'password': 's'}, 'z', -3)"
    out = masked(text, field="args")
    parsed = ast.literal_eval(out.replace("'***' (str, 1 char)", "'MASKED'"))
    assert parsed == ({"a": [1, 2.5, None, True], "b": (1,), "c": b"x", "password": "MASKED"},
                      "z", -3)


def test_a_field_that_is_not_a_string_stays_one_masked() -> None:
    """Not what celery sends: still masked, and still not a string (the index counts it as a
    bad field, as before)."""
    masker = Masker()
    event = {"type": "task-received", "uuid": "u", "args": [{"password": SECRET}, 1],
             "kwargs": {"n": 1}}
    masker.apply([event])
    assert event["args"] == [{"password": "'***' (str, 7 chars)"}, 1]
    assert event["kwargs"] == {"n": 1}


def test_every_ingestor_masks_by_default_and_takes_the_configured_masker() -> None:
    from lazycelery.config import Settings
    from lazycelery.core.index import TaskIndex
    from lazycelery.core.ingest import Ingestor
    from lazycelery.mask.settings import masker_for

    plain = Ingestor("redis://127.0.0.1:1/0", TaskIndex(), mode="kombu")
    assert plain.masker.rules.active and plain._sink.masker is plain.masker
    settings = Settings(broker_url="redis://127.0.0.1:1/0", env_name="prod",
                        mask=MaskConfig(extra_keys=("pin",)))
    masker = masker_for(settings, save_counts=False)
    configured = Ingestor(settings.broker_url, TaskIndex(), mode="kombu", masker=masker)
    assert configured._sink.masker is masker and masker.environment == "prod"
    assert "pin" in masker.rules.keys


def test_a_regex_with_a_global_flag_joins_the_pre_check() -> None:
    rules = compile_rules(MaskConfig(regex=("(?i)sk_live_[0-9a-z]{4}",)))
    assert rules.value_trigger is not None and rules.value_trigger.pattern != ""
    assert not rules.could_match("(1, 2, 'ana')")
    assert Masker(rules).mask_field(None, "args", "('SK_LIVE_ABCD',)") == "('***' (str, 12 chars),)"


@pytest.mark.parametrize("field, text", [
    # an exception quoting the args it failed on (the recorded leak: workerapp's _explode)
    ("exception", "ValueError(\"bad payload: {'password': 'hunter2', 'user': 'bob'}\")"),
    ("exception", "RuntimeError('login failed for bob password=hunter2')"),
    ("args", "(\"{'api_key': 'hunter2'}\", 3)"),  # a dict serialised into a string argument
    ("kwargs", "{'note': 'token: hunter2'}"),
    ("result", "'secret=hunter2'"),
    # the name=value pair itself quoted inside the message (a quote before the name is no
    # reason to skip it: this leaked in session 7's amqps run with 'card=4111')
    ("exception", "ValueError(\"bad 'password=hunter2'\")"),
    ("exception", "ValueError('bad \"token: hunter2\" given')"),
    ("args", "(\"'secret=hunter2'\",)"),
])
def test_a_secret_quoted_inside_a_string_is_masked_with_the_string(field: str, text: str) -> None:
    out = masked(text, field=field)
    assert SECRET not in out and "'***' (str," in out, out


@pytest.mark.parametrize("text", [
    "ValueError('error: connection refused')", "('password=None', 'token: ', 3)",
    "RuntimeError('the password field is required')",
    "ValueError(\"bad 'password=None'\")", "ValueError(\"missing 'token='\")",
])
def test_a_string_naming_a_key_without_a_value_is_left_alone(text: str) -> None:
    assert masked(text, field="exception") == text


def test_a_quoted_pair_in_a_cut_repr_is_masked_up_to_its_quote() -> None:
    # a repr cut short cannot be parsed: the text is masked where the pairs are, and a value
    # quoted with its name ends at the quote (the quote and what follows are kept)
    out = masked("ValueError(\"bad 'password=hunter2' for bob and m", field="exception")
    assert SECRET not in out and out.startswith("ValueError(\"bad 'password=") \
        and out.endswith("' for bob and m"), out
