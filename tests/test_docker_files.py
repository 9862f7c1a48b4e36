"""docker/ without a Docker engine: compose.yaml parses and agrees with the Dockerfile and the demo."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"

_DEFAULTED = re.compile(r"\$\{(\w+):-([^}]*)\}")


def expand(value: Any) -> Any:
    """Compose's ``${VAR:-default}`` with VAR unset (what the documented commands use)."""
    if isinstance(value, str):
        return _DEFAULTED.sub(lambda m: m.group(2), value)
    if isinstance(value, list):
        return [expand(v) for v in value]
    if isinstance(value, dict):
        return {k: expand(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: expand(spec) for name, spec in compose["services"].items()}


def test_services(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {"redis", "rabbitmq", "worker", "producer", "lazycelery"}
    assert services["redis"]["image"].startswith("redis:")
    assert services["rabbitmq"]["image"].startswith("rabbitmq:")
    for name, spec in services.items():
        assert "image" in spec or "build" in spec, name
        for dependency in spec.get("depends_on", {}):
            assert dependency in services, (name, dependency)


def test_builds_point_at_the_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    built = {name: spec["build"] for name, spec in services.items() if "build" in spec}
    assert set(built) == {"worker", "producer", "lazycelery"}
    for name, build in built.items():
        context = (COMPOSE.parent / build["context"]).resolve()
        assert context == ROOT, name
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE, name
    # one image for the three, built once
    assert {services[name]["image"] for name in built} == {"lazycelery:local"}


def test_lazycelery_service_has_a_tty_and_the_right_broker(
        services: dict[str, dict[str, Any]]) -> None:
    ui = services["lazycelery"]
    assert ui["tty"] is True and ui["stdin_open"] is True
    command = ui["command"]
    broker = command[command.index("--broker") + 1]
    assert broker == "redis://redis:6379/0"
    assert broker.split("//")[1].split(":")[0] in services
    assert command[command.index("-A") + 1] == "lazycelery.demo.app"
    # the worker and the producer use the same broker
    for name in ("worker", "producer", "lazycelery"):
        assert services[name]["environment"]["LAZYCELERY_DEMO_BROKER"] == broker, name
    # a plain `up` must not start the interactive service
    assert "profiles" in ui


def test_environment_variables_are_the_demo_apps(services: dict[str, dict[str, Any]]) -> None:
    from lazycelery.demo import environment

    known = {getattr(environment, name) for name in dir(environment) if name.startswith("ENV_")}
    for name in ("worker", "producer", "lazycelery"):
        assert set(services[name]["environment"]) <= known, name
    worker = services["worker"]
    hostname = worker["command"][worker["command"].index("-n") + 1].replace("%h",
                                                                           worker["hostname"])
    # the producer revokes only on the worker it knows by name
    assert services["producer"]["environment"]["LAZYCELERY_DEMO_WORKERS"] == hostname


def test_the_worker_module_exists_and_imports(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert worker["entrypoint"] == ["celery"]
    command = worker["command"]
    module = command[command.index("-A") + 1]
    assert "worker" in command and "-E" in command
    queues = command[command.index("-Q") + 1].split(",")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAZYCELERY_", "CELERY_"))}
    env.update(worker["environment"])
    code = (f"import json, {module} as m, lazycelery.demo.tasks as t\n"
            "print(json.dumps({'broker': m.app.conf.broker_url,"
            " 'queues': [q.name for q in m.app.conf.task_queues],"
            " 'tasks': sorted(n for n in m.app.tasks if n.startswith('demo.'))}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, check=True)
    loaded = json.loads(out.stdout)
    assert loaded["broker"] == worker["environment"]["LAZYCELERY_DEMO_BROKER"]
    assert sorted(queues) == sorted(loaded["queues"])
    assert "demo.charge_card" in loaded["tasks"]


def test_the_producer_module_runs(services: dict[str, dict[str, Any]]) -> None:
    producer = services["producer"]
    assert producer["entrypoint"][:2] == ["python", "-m"]
    module = producer["entrypoint"][2]
    out = subprocess.run([sys.executable, "-m", module, "--help", *producer["command"]],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "--rate" in out.stdout


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    instructions = _instructions(DOCKERFILE.read_text())
    assert instructions[0] == ("FROM", "python:3.12-slim")
    copies = [rest.split() for keyword, rest in instructions if keyword == "COPY"]
    assert copies
    sources = [source for parts in copies for source in parts[:-1]]
    for source in sources:
        assert (ROOT / source).exists(), source
    entrypoint = [json.loads(rest) for keyword, rest in instructions if keyword == "ENTRYPOINT"]
    assert entrypoint == [["lazycelery"]]
    # the console script the entrypoint names
    assert re.search(r'^lazycelery = "lazycelery\.cli:main"$',
                     (ROOT / "pyproject.toml").read_text(), re.M)
    # the pyproject's readme is copied (setuptools reads it while building)
    assert "README.md" in sources
    # BuildKit's per-Dockerfile ignore file keeps every COPY source in the context
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    kept = {line[1:].strip().rstrip("/") for line in ignore if line.startswith("!")}
    assert {source.rstrip("/") for source in sources} <= kept


def test_readme_has_the_commands() -> None:
    readme = (DOCKER / "README.md").read_text()
    assert "docker compose -f docker/compose.yaml up -d redis worker producer" in readme
    assert "docker compose -f docker/compose.yaml run --rm lazycelery" in readme


def test_the_copied_files_build_the_wheel(tmp_path: Path) -> None:
    """What the Dockerfile copies is enough for `pip install .` (the pyproject's package dirs,
    its readme and licence file): built here as the image would, without Docker."""
    instructions = _instructions(DOCKERFILE.read_text())
    context = tmp_path / "src"
    context.mkdir()
    for parts in (rest.split() for keyword, rest in instructions if keyword == "COPY"):
        for source in parts[:-1]:
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, context / source,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy(ROOT / source, context / source)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--disable-pip-version-check", "--wheel-dir", str(tmp_path / "w"), str(context)],
                   check=True, timeout=300, capture_output=True)
    (wheel,) = (tmp_path / "w").glob("lazycelery-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "lazycelery/cli.py" in names and "lazycelery_beat/__init__.py" in names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
