"""Bad stores at start: one clear line each (store named, password masked), never a traceback;
`record` exits 2, `tail --since` follows live events without history."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT, free_port
from lazycelery.store import StoreError, open_store


def _one_line(exc: pytest.ExceptionInfo[StoreError]) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("certainly not a database\n" * 200)
    with pytest.raises(StoreError) as info:
        open_store(f"sqlite:///{path}")
    assert _one_line(info) == f"store sqlite:///{path}: not a SQLite database, or corrupt"
    assert path.read_text().startswith("certainly")  # untouched


def test_a_store_locked_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    open_store(f"sqlite:///{path}").close()
    holder = sqlite3.connect(str(path), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError) as info:
            open_store(f"sqlite:///{path}")
        assert "locked by another process" in _one_line(info)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@contextlib.contextmanager
def _immutable(path: Path) -> Iterator[None]:
    """A file nobody may write, root included (``chattr +i``); skips where that is impossible."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    if os.geteuid() != 0:
        path.chmod(0o444)
        yield
        return
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"chattr +i is not supported here: {made.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def test_a_read_only_store(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    open_store(f"sqlite:///{path}").close()
    with _immutable(path):
        with pytest.raises(StoreError) as info:
            open_store(f"sqlite:///{path}")
        assert "read-only" in _one_line(info)
        # a reader (tail --since) still reads it
        reader = open_store(f"sqlite:///{path}", create=False, writer=False)
        assert reader.count("tasks") == 0
        reader.close()


def test_a_directory_that_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "plain-file"
    blocker.write_text("x")
    with pytest.raises(StoreError) as info:
        open_store(f"sqlite:///{blocker / 'sub' / 'h.sqlite3'}")
    assert "cannot create its directory" in _one_line(info)


def test_a_reader_does_not_create_a_missing_store(tmp_path: Path) -> None:
    path = tmp_path / "absent.sqlite3"
    with pytest.raises(StoreError) as info:
        open_store(f"sqlite:///{path}", create=False, writer=False)
    assert "no such file" in _one_line(info)
    assert not path.exists()


def test_an_unreachable_postgresql_is_one_line_without_the_password() -> None:
    pytest.importorskip("psycopg")
    url = f"postgresql://lc:s3cret-pw@127.0.0.1:{free_port()}/celerymon"
    with pytest.raises(StoreError) as info:
        open_store(url)
    text = _one_line(info)
    assert text.startswith("store postgresql://lc:********@127.0.0.1:") and "refused" in text
    assert "s3cret-pw" not in text


def _lazycelery(*args: str, env: dict[str, str] | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, **(env or {}))
    full.pop("LAZYCELERY_STORE", None)
    return subprocess.run([sys.executable, "-m", "lazycelery", *args], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_record_exits_2_with_one_line_when_the_store_cannot_be_opened(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite3"
    bad.write_bytes(b"\0garbage" * 512)
    done = _lazycelery("record", "--broker", f"redis://127.0.0.1:{free_port()}/0",
                       "--store", f"sqlite:///{bad}")
    assert done.returncode == 2
    assert done.stderr == f"lazycelery: store sqlite:///{bad}: not a SQLite database, or corrupt\n"


def test_record_refuses_a_bad_retention(tmp_path: Path) -> None:
    done = _lazycelery("record", "--store", f"sqlite:///{tmp_path / 'h.db'}",
                       "--retention", "soon")
    assert done.returncode == 2
    assert done.stderr.startswith("lazycelery: --retention: not a duration: 'soon'")
    assert done.stderr.count("\n") == 1


def test_tail_since_without_a_store_follows_live_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "none.sqlite3"
    done = _lazycelery("tail", "--broker", f"redis://127.0.0.1:{free_port()}/0", "--since",
                       "2h", "--store", f"sqlite:///{missing}", "--timeout", "1")
    assert done.returncode == 1  # nothing listens there: --timeout without a connection
    lines = done.stderr.splitlines()
    assert lines[-1] == "lazycelery: --timeout: 1 s went by without a connection"
    assert lines[0] == (f"lazycelery: history off: store sqlite:///{missing}: no such file "
                        "(`lazycelery record` creates it); following live events only")
    assert "Traceback" not in done.stderr and not missing.exists()
