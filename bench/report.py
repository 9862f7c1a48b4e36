"""Markdown tables from a results dict (``bench/results/latest.json``); ``python bench/report.py [FILE]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from common import RESULTS, fmt_float, fmt_int, fmt_ratio, md_table

KIND_LABELS = {
    "celery": "celery `State` behind `app.events.Receiver` (reference)",
    "receiver": "`app.events.Receiver`, handler only counts",
    "kombu": "lazycelery `Ingestor(mode=\"kombu\")` → `TaskIndex`",
    "fast": "lazycelery `Ingestor(mode=\"fast\")` → `TaskIndex`",
}


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} µs"


def environment(env: dict[str, Any]) -> str:
    la = env.get("loadavg_at_start") or ()
    load = " / ".join(f"{x:.2f}" for x in la)
    return (f"{env.get('date')}; {env.get('cpus')} cores ({env.get('platform')}); load average at start "
            f"{load}; Python {env.get('python')}, celery {env.get('celery')}, kombu {env.get('kombu')}, "
            f"redis-py {env.get('redis_py')}, hiredis {env.get('hiredis', '-')}, msgspec "
            f"{env.get('msgspec')}, redis-server {env.get('redis_server', '-')}")


def inprocess(r: dict[str, Any]) -> str:
    if "reference" not in r:
        return f"_skipped: {r.get('error') or r}_"
    ref = r["reference"]
    rows = [["celery: kombu decode + `Receiver` + `State.event`", fmt_int(ref["events_per_s"]),
             _us(ref["us_per_event"]), "1.0x"]]
    ours = r.get("lazycelery", {})
    if "events_per_s" in ours:
        rows.append(["lazycelery: `decode_redis_message` + `TaskIndex.apply_batch`",
                     fmt_int(ours["events_per_s"]), _us(ours["us_per_event"]), fmt_ratio(r["ratio"])])
    else:
        rows.append(["lazycelery", "-", "-", ours.get("error", "-")])
    bd = r.get("breakdown", {})
    labels = [("reference_decode", "  celery half: kombu decode + Receiver (handler counts)"),
              ("reference_state", "  celery half: `State.event` on decoded events"),
              ("lazycelery_decode", "  lazycelery half: `decode_redis_message`"),
              ("lazycelery_index", "  lazycelery half: `TaskIndex.apply_batch` on decoded events")]
    for key, label in labels:
        if key in bd:
            rows.append([label, fmt_int(bd[key]["events_per_s"]), _us(bd[key]["us_per_event"]), ""])
    head = (f"{r['events']:,} events in {r['messages']:,} messages (the recorded Redis stream x"
            f"{r['messages'] // 8626}, fresh uuids), median of {r['repeats']}; "
            f"`max_tasks` = {r['max_tasks']:,}.\n\n")
    return head + md_table(["path", "events/s", "per event", "ratio"], rows)


def e2e(r: dict[str, Any], broker: str) -> str:
    if "skipped" in r and not r.get("kinds"):
        return f"_skipped: {r['skipped']}_"
    rows = []
    for kind, res in r["kinds"].items():
        d = res["drain"]
        sustained = f"{fmt_int(res['best_rate'])}/s ({', '.join(fmt_int(x) for x in res['best_rates'])})"
        if "publisher" in res["limited_by"] and res.get("clean_rate", 0) > res["best_rate"]:
            sustained = f"≥ {fmt_int(res['clean_rate'])}/s (publishers capped)"
        elif set(res["limited_by"]) == {"top of the ladder"}:
            sustained = "≥ " + sustained
        rows.append([
            KIND_LABELS.get(kind, kind),
            sustained,
            fmt_ratio(res.get("ratio_sustained")),
            f"{fmt_int(d['rate'])}/s", fmt_ratio(res.get("ratio_drain")),
            _us(d["cpu_us"]), _us(res.get("cpu_us_at_best")),
            ", ".join(sorted(set(res["limited_by"]))),
        ])
    head = (f"Publish rate ladders of {r['duration_s']:.0f} s steps, {r['repeats']} ladder run(s), "
            f"median of the best rates (each run's best in brackets); drain = {r['backlog']:,}-event "
            f"backlog, median of {r['repeats']}; publishers: {r['publisher_mode']}; consumers keep up "
            f"to {r['max_tasks']:,} tasks.\n\n")
    table = md_table(["consumer", "sustained, no loss", "ratio", "drain capacity", "ratio",
                      "CPU/event (drain)", "CPU/event (at best rate)", "next rung failed by"], rows)
    skipped = "".join(f"\n\n_{k} skipped: {v}_" for k, v in r.get("skipped", {}).items())
    return head + table + skipped


def e2e_steps(r: dict[str, Any]) -> str:
    rows = []
    for kind, res in r.get("kinds", {}).items():
        for i, run in enumerate(res["ladders"], 1):
            for s in run["steps"]:
                verdict = "ok" if s["ok"] else ("publisher-bound" if s.get("publisher_bound") else "FAIL")
                rows.append([kind, str(i), fmt_int(s["target_rate"]), fmt_int(s["publisher_rate"]),
                             str(s["publishers"]), fmt_int(s["published"]), fmt_int(s["received"]),
                             fmt_int(s["lost"]), fmt_float(s["lag_s"], 2), fmt_float(s["consumer_cpu_us"]),
                             fmt_float(s["consumer_cpu_share"], 2), verdict])
    return md_table(["consumer", "run", "target/s", "published/s", "pubs", "published", "received",
                     "lost", "lag s", "CPU µs/event", "CPU share", "verdict"], rows)


def memory(r: dict[str, Any]) -> str:
    rows = []
    for key, label in (("celery", "celery `State`"), ("lazycelery", "lazycelery `TaskIndex`")):
        m = r.get(key, {})
        if "error" in m:
            rows.append([label, fmt_int(m.get("tasks")), "-", "-", "-", "-", "error"])
            continue
        rows.append([label, fmt_int(m["tasks"]), f"{m['growth'] / 2**20:,.0f} MiB",
                     fmt_int(m["bytes_per_task"]), f"{m['rss_after'] / 2**30:,.2f} GiB",
                     f"{m['extrapolated_1m_bytes'] / 2**30:,.2f} GiB", fmt_int(m["events_per_s"])])
    table = md_table(["structure", "tasks retained", "RSS growth", "bytes/task", "RSS after",
                      "1M tasks (bytes/task x 1M)", "build events/s"], rows)
    ratio = f"\n\nRatio (celery bytes/task ÷ lazycelery bytes/task): {fmt_ratio(r.get('ratio'))}."
    return table + ratio


def startup(r: dict[str, Any]) -> str:
    rows = [[f"`{name}`", fmt_float(v["median_ms"]), fmt_float(v["over_python_ms"])]
            for name, v in r["rows"].items()]
    table = md_table(["command", "median wall ms", "over `python -c pass`"], rows)
    imports = ", ".join(f"{name} {ms:.1f} ms" for name, ms in r.get("slowest_imports_tail_help", []))
    warn = f"\n\n**{r['warning']}**" if r.get("warning") else ""
    return (f"Median of {r['repeats']} runs each, interleaved; `{r['command']}`.\n\n{table}\n\n"
            f"Largest top-level imports of `tail --help` (`-X importtime`, one run): {imports}.{warn}")


def _describe_gap(g: dict[str, Any]) -> str:
    gap = g.get("gap")
    if isinstance(gap, dict):
        return f"gap of {gap['seconds']:.1f} s ({gap['reason']})"
    if gap:
        return str(gap)
    if g.get("receiver_errors"):
        return (f"nothing (the Receiver raised {g.get('last_error')} internally and was rebuilt "
                f"{g.get('receiver_errors')} time(s))")
    return "nothing"


def gap(r: dict[str, Any]) -> str:
    if "runs" not in r:
        return f"_skipped: {r.get('skipped')}_"
    rows = []
    for g in r["runs"]:
        if "broker_down_s" in g:
            window = f"broker down {g['broker_down_s']:.1f} s"
        else:
            window = f"consumer frozen {g.get('frozen_s', 0):.1f} s"
        rows.append([g["scenario"], g["kind"], fmt_int(g["published"]), fmt_int(g["received"]),
                     fmt_int(g["lost"]), window, _describe_gap(g)])
    return md_table(["scenario", "consumer", "published", "received", "lost", "outage",
                     "what the consumer reported (`Ingestor.status.gap`)"], rows)


def store(r: dict[str, Any]) -> str:
    rows = []
    for name, result in r.get("backends", {}).items():
        if "max" not in result:
            rows.append([name, "-", "-", "-", "-", "-", f"skipped: {result.get('skipped')}"])
            continue
        top, paced = result["max"], result["paced"]
        rows.append([name, fmt_int(top["events_per_s"]), fmt_int(top["lost"]),
                     _us(top.get("cpu_us_per_event")), fmt_int(paced["lost"]),
                     fmt_int(paced["peak_pending"]), fmt_int(top["bytes_per_task"])])
    head = (f"{fmt_int(r.get('events'))} events (copies of the recorded Redis stream), fed as "
            "the ingest thread does (index + snapshot + queue)\n\n")
    paced = f"lost at a paced {fmt_int(r.get('paced_rate'))}/s (queue 200,000)"
    return head + md_table(["store", "events/s written (queue as big as the run)", "lost",
                            "CPU per event (lazycelery's process)", paced,
                            "peak queued (paced)", "bytes on disk per task"], rows)


def mask(r: dict[str, Any]) -> str:
    import bench_mask

    return str(bench_mask.markdown(r))


SECTIONS = [
    ("inprocess", "1. In-process decode + index update (recorded Redis stream, no network)", inprocess),
    ("redis", "2. End to end over Redis", lambda r: e2e(r, "redis")),
    ("amqp", "3. End to end over RabbitMQ", lambda r: e2e(r, "amqp")),
    ("memory", "4. Memory per retained task", memory),
    ("startup", "5. Startup", startup),
    ("gap", "6. Gap detection", gap),
    ("store", "9. Recording into the history store", store),
    ("mask", "12. Masking at ingest", mask),
]


def render(results: dict[str, Any], steps: bool = True) -> str:
    out = [f"Environment: {environment(results.get('environment', {}))}"]
    for key, title, fn in SECTIONS:
        if key not in results:
            continue
        section = results[key]
        meta = section.get("_meta", {})
        note = f" _(run {meta.get('date')}, {'quick' if meta.get('quick') else 'full'}, " \
               f"load {meta.get('loadavg', ['?'])[0]:.2f}, {meta.get('seconds', 0):.0f} s)_" if meta else ""
        try:
            body = fn(section)
        except (KeyError, TypeError):
            body = f"_skipped: {section.get('skipped', 'no result')}_"
        out.append(f"### {title}{note}\n\n{body}")
        if steps and key in ("redis", "amqp") and section.get("kinds"):
            out.append(f"<details><summary>{key}: every step</summary>\n\n{e2e_steps(section)}\n\n</details>")
    return "\n\n".join(out) + "\n"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS / "latest.json"
    print(render(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
