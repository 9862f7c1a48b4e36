"""The release artefacts, built and used: the .deb installed with dpkg, run, removed; the .rpm
inspected with rpm -qpl / -qpR; the PKGBUILD's package() run by bash; the zipapp run.

packaging/build_all.py builds the wheel, the wheelhouse and each artefact once for the module
(about 1.5 min of CPU in all). The .deb test needs root and dpkg (it installs into
/opt/lazycelery and /usr/bin, and removes both; it skips if lazycelery is already installed);
the .rpm test needs rpmbuild (apt-get install rpm); the PKGBUILD and zipapp tests download from
the package index. LAZYCELERY_TEST_PACKAGES=0 skips the module.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import lazycelery
from conftest import WorkerProcess, wait_for

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "packaging" / "build_all.py"
PREFIX = Path("/opt/lazycelery")
LINK = Path("/usr/bin/lazycelery")
GEN_RECIPES = ROOT / "packaging" / "gen_recipes.py"

# makepkg's fetch, checksum and package() steps (no makepkg on Debian): bash runs the PKGBUILD
MINI_MAKEPKG = r"""
set -euo pipefail
startdir=$PWD; srcdir=$startdir/src; pkgdir=$startdir/pkg
source ./PKGBUILD
for i in "${!source[@]}"; do
  s=${source[$i]}; f=${s##*/}
  if [[ $s == https://* ]]; then
    [[ -e $srcdir/$f ]] || curl -sSfL --max-time 120 -o "$srcdir/$f" "$s"
  else
    cp "$startdir/$s" "$srcdir/$f"
  fi
  echo "${sha256sums[$i]}  $srcdir/$f" | sha256sum -c --quiet
done
cd "$srcdir"
package
"""

pytestmark = [
    pytest.mark.integration,
    pytest.mark.packages,
    pytest.mark.skipif(os.environ.get("LAZYCELERY_TEST_PACKAGES") == "0",
                       reason="LAZYCELERY_TEST_PACKAGES=0"),
]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no virtualenv, no test settings, system PATH first."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LAZYCELERY_", "CELERY_", "PYTHON", "VIRTUAL_ENV", "PEX_"))}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    env.update(extra)
    return env


def needs(*modules: str) -> None:
    import importlib.util

    for module in modules:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dist")


@pytest.fixture(scope="module")
def wheelhouse(out: Path) -> Path:
    needs("build")
    system = subprocess.run(["/usr/bin/python3", "-c", "import ensurepip, venv"],
                            capture_output=True)
    if system.returncode != 0:
        pytest.skip("no system /usr/bin/python3 with venv and ensurepip (python3-venv)")
    subprocess.run([sys.executable, str(BUILD), "--out", str(out), "dists", "wheelhouse"],
                   check=True, timeout=600)
    return out / "wheelhouse"


@pytest.fixture(scope="module")
def deb(out: Path, wheelhouse: Path) -> Path:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb not found (not a Debian system)")
    subprocess.run([sys.executable, str(BUILD), "--out", str(out), "deb"], check=True, timeout=600)
    (built,) = out.glob(f"lazycelery_{lazycelery.__version__}-1_*.deb")
    return built


@pytest.fixture(scope="module")
def pyz(out: Path, wheelhouse: Path) -> Path:
    needs("pex")
    subprocess.run([sys.executable, str(BUILD), "--out", str(out), "pyz"], check=True,
                   timeout=600, env={**os.environ, "PEX_ROOT": str(out / "pex-build")})
    return out / "lazycelery.pyz"


@pytest.fixture(scope="module")
def rpm(out: Path, wheelhouse: Path) -> Path:
    if shutil.which("rpmbuild") is None:
        pytest.skip("rpmbuild not found (apt-get install rpm)")
    subprocess.run([sys.executable, str(BUILD), "--out", str(out), "rpm"], check=True, timeout=600)
    (built,) = out.glob(f"lazycelery-{lazycelery.__version__}-1*.rpm")
    return built


@pytest.fixture
def installed(deb: Path) -> Iterator[Path]:
    """The .deb installed with dpkg -i; removed (dpkg -r, then purged) when the test ends."""
    if os.geteuid() != 0:
        pytest.skip("installing a .deb needs root")
    status = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", "lazycelery"],
                            capture_output=True, text=True)
    if "installed" in status.stdout or PREFIX.exists():
        pytest.skip(f"lazycelery is already installed here ({PREFIX}): not replacing it")
    subprocess.run(["dpkg", "-i", str(deb)], check=True, timeout=300, capture_output=True)
    try:
        yield LINK
    finally:
        subprocess.run(["dpkg", "-r", "lazycelery"], check=True, timeout=300, capture_output=True)
        subprocess.run(["dpkg", "-P", "lazycelery"], check=True, timeout=300, capture_output=True)


def run_demo(command: list[str], env: dict[str, str]) -> list[dict[str, object]]:
    done = subprocess.run([*command, "demo", "--no-dashboard", "--duration", "10", "--json"],
                          capture_output=True, text=True, timeout=180, env=env, cwd="/")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [line["event"] for line in lines] == ["demo-started", "demo-stopped"], done.stdout
    return lines


@pytest.mark.timeout(900)
def test_deb_installs_runs_and_removes_cleanly(
        installed: Path, redis_url: str,
        celery_worker_factory: Callable[..., WorkerProcess]) -> None:
    env = clean_env()
    assert installed.resolve() == PREFIX / "bin" / "lazycelery"
    version = subprocess.run([str(installed), "--version"], capture_output=True, text=True,
                             timeout=60, env=env, cwd="/", check=True)
    assert version.stdout.strip() == f"lazycelery {lazycelery.__version__}"

    # tail --limit 1: exits after the first task event of a task sent to a real worker
    worker = celery_worker_factory(redis_url)
    tail = subprocess.Popen([str(installed), "tail", "--broker", redis_url, "--limit", "1",
                             "--json", "--type", "task-*", "--timeout", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd="/")
    app = worker.app()
    try:
        def seen_one() -> bool:
            # tail subscribes a moment after it starts: send until it has seen one
            if tail.poll() is not None:
                return True
            app.send_task("workerapp.add", (1, 2), queue=worker.queue)
            return False

        wait_for(seen_one, timeout=60, interval=0.5, what="tail --limit 1 to exit")
        stdout, stderr = tail.communicate(timeout=30)
    finally:
        app.close()
        if tail.poll() is None:
            tail.kill()
            tail.communicate()
    assert tail.returncode == 0, stderr
    (line,) = stdout.splitlines()
    event = json.loads(line)
    assert event["type"].startswith("task-") and event["name"] == "workerapp.add"

    run_demo([str(installed)], env)
    # nothing written under /opt/lazycelery by running it (removal then leaves nothing)
    listed = subprocess.run(["dpkg", "-L", "lazycelery"], capture_output=True, text=True,
                            check=True).stdout.splitlines()
    on_disk = {str(p) for p in PREFIX.rglob("*")}
    assert on_disk <= set(listed), sorted(on_disk - set(listed))[:10]


def test_after_removal_nothing_is_left() -> None:
    # runs after the round trip above (same module, in order); skipped if it was
    assert not PREFIX.exists() and not LINK.is_symlink()
    status = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", "lazycelery"],
                            capture_output=True, text=True)
    assert "installed" not in status.stdout


@pytest.mark.network
@pytest.mark.timeout(900)
def test_pkgbuild_package_function_installs_the_venv(out: Path, wheelhouse: Path,
                                                      tmp_path: Path) -> None:
    """The PKGBUILD template, generated for this machine's Python (Arch's is newer) and run by
    bash as makepkg would: every download checked against its sha256, then package()."""
    if shutil.which("curl") is None:
        pytest.skip("curl not found")
    python = os.path.realpath("/usr/bin/python3")
    minor = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                           capture_output=True, text=True, check=True).stdout.strip()
    version = lazycelery.__version__
    wheel = out / f"lazycelery-{version}-py3-none-any.whl"
    arch = tmp_path / "arch"
    subprocess.run([sys.executable, str(GEN_RECIPES), "--wheel", str(wheel),
                    "--sdist", str(out / f"lazycelery-{version}.tar.gz"), "--python", minor,
                    "--interpreter", python, "--out", str(arch)], check=True, timeout=600)
    (arch / "src").mkdir()
    (arch / "pkg").mkdir()
    shutil.copy(wheel, arch / "src")  # lazycelery's own wheel: not on the index before release
    subprocess.run(["bash", "-c", MINI_MAKEPKG], cwd=arch, check=True, timeout=600,
                   env=clean_env())
    pkg = arch / "pkg"
    assert os.readlink(pkg / "usr" / "bin" / "lazycelery") == "../../opt/lazycelery/bin/lazycelery"
    assert (pkg / "usr" / "share" / "licenses" / "lazycelery" / "LICENSE").is_file()
    script = (pkg / "opt" / "lazycelery" / "bin" / "lazycelery").read_text()
    assert script.startswith("#!/opt/lazycelery/bin/python\n")
    assert str(arch) not in (pkg / "opt" / "lazycelery" / "pyvenv.cfg").read_text()


@pytest.mark.timeout(900)
def test_rpm_lists_the_venv_and_requires_the_python_it_was_built_with(rpm: Path) -> None:
    files = subprocess.run(["rpm", "-qpl", str(rpm)], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert "/usr/bin/lazycelery" in files
    assert "/opt/lazycelery/bin/lazycelery" in files
    assert any(f.startswith("/opt/lazycelery/lib/python3.") and f.endswith("/lazycelery/cli.py")
               for f in files)
    assert any(f.endswith("/LICENSE") and f.startswith("/usr/share/licenses/") for f in files)
    assert not [f for f in files if "/tmp/" in f or "BUILDROOT" in f]
    requires = subprocess.run(["rpm", "-qpR", str(rpm)], capture_output=True, text=True,
                              check=True).stdout.splitlines()
    minor = subprocess.run(["/usr/bin/python3", "-c",
                            "import sys; print('%d.%d' % sys.version_info[:2])"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert f"python(abi) = {minor}" in requires
    assert not [r for r in requires if r.startswith("/opt/")]  # its own files need nothing
    provides = subprocess.run(["rpm", "-qp", "--provides", str(rpm)], capture_output=True,
                              text=True, check=True).stdout.split()
    assert not [p for p in provides if ".so" in p]  # the venv's libraries stay private


def _pythons() -> list[str]:
    found = sorted({os.path.realpath(p) for p in glob.glob("/usr/bin/python3.1[0-9]")
                    + glob.glob("/usr/local/bin/python3.1[0-9]") if os.access(p, os.X_OK)})
    return found


@pytest.mark.timeout(900)
def test_zipapp_runs_with_the_system_python(pyz: Path, tmp_path: Path) -> None:
    pythons = _pythons()
    if not pythons:
        pytest.skip("no python3.10+ in /usr/bin or /usr/local/bin")
    env = clean_env(PEX_ROOT=str(tmp_path / "pex"), HOME=str(tmp_path))
    for python in pythons:
        out = subprocess.run([python, str(pyz), "--version"], capture_output=True, text=True,
                             timeout=120, env=env, cwd="/")
        assert out.stdout.strip() == f"lazycelery {lazycelery.__version__}", (python, out.stderr)
    # as a user runs it: ./lazycelery.pyz (its shebang: /usr/bin/env python3)
    assert os.access(pyz, os.X_OK)
    run_demo([str(pyz)], env)
