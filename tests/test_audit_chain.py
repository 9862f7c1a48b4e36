"""The audit log's hash chain: each line names the SHA-256 of the line before it, across
processes appending at once; `lazycelery audit verify` finds an edited, inserted or removed
line, and accepts lines written before the chain existed."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from lazycelery.core import audit

pytestmark = pytest.mark.timeout(120)


def _write(path: Path, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        audit.record("revoke", [f"task-{i}"], {"ok": True, "message": "1 ok"}, "prod", path=path)


def test_a_fresh_log_is_one_intact_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _write(path, 5)
    lines = path.read_bytes().splitlines()
    assert json.loads(lines[0])["prev"] == audit.GENESIS
    for before, line in itertools.pairwise(lines):
        assert json.loads(line)["prev"] == audit.line_hash(before)
    report = audit.verify(path)
    assert report.ok and report.entries == 5 and report.last_hash == audit.line_hash(lines[-1])


@pytest.mark.parametrize("tamper", ["edit", "delete", "insert", "reorder"])
def test_verify_finds_the_first_tampered_line(tmp_path: Path, tamper: str) -> None:
    path = tmp_path / "audit.log"
    _write(path, 6)
    lines = path.read_bytes().splitlines()
    if tamper == "edit":
        lines[2] = lines[2].replace(b"task-2", b"task-9")
        expected = 4  # line 3 changed: line 4's link no longer matches
    elif tamper == "delete":
        del lines[2]
        expected = 3
    elif tamper == "insert":
        forged = json.loads(lines[2])
        forged["targets"] = ["forged"]
        lines.insert(3, json.dumps(forged, separators=(",", ":")).encode())
        expected = 4  # a copy of line 3's link does not match line 3
    else:
        lines[1], lines[2] = lines[2], lines[1]
        expected = 2
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = audit.verify(path)
    assert not report.ok and report.broken_at == expected and report.problem


def test_lines_from_before_the_chain_are_accepted_then_chained(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    legacy = {"time": "2026-01-01T00:00:00.000+00:00", "user": "ana", "host": "h",
              "environment": "-", "action": "purge", "targets": ["q"], "result": {"ok": True}}
    path.write_text(json.dumps(legacy) + "\n" + json.dumps(legacy) + "\n")
    _write(path, 2)
    report = audit.verify(path)
    assert report.ok and report.unchained == 2 and report.entries == 4
    # an unchained line after the chain began is an insertion
    with path.open("a") as stream:
        stream.write(json.dumps(legacy) + "\n")
    assert audit.verify(path).broken_at == 5


def test_processes_appending_at_once_form_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    code = ("import sys; from pathlib import Path; from lazycelery.core import audit\n"
            "for i in range(100):\n"
            "    audit.record('revoke', [f'{sys.argv[1]}-{i}'], {'ok': True}, None,"
            " path=Path(sys.argv[2]))\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, f"p{n}", str(path)], cwd=ROOT)
             for n in range(4)]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    report = audit.verify(path)
    assert report.ok, report
    assert report.entries == 400


def test_the_verify_command(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _write(path, 3)
    env = {"LAZYCELERY_AUDIT_LOG": str(path), "LAZYCELERY_CONFIG": "/dev/null",
           "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([sys.executable, "-m", "lazycelery", "audit", "verify"], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and ok.stdout.startswith("ok: 3 entries") and not ok.stderr
    path.write_bytes(path.read_bytes().replace(b"task-1", b"task-7"))
    bad = subprocess.run([sys.executable, "-m", "lazycelery", "audit", "verify", "--json"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["broken_at"] == 3
    text = subprocess.run([sys.executable, "-m", "lazycelery", "audit", "verify"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert text.returncode == 1 and text.stderr.count("\n") == 1 and "line 3" in text.stderr
    assert "Traceback" not in text.stderr
