#!/usr/bin/env python3
"""Generate the Homebrew formula and the Arch PKGBUILD from lazycelery's resolved dependencies.

    python packaging/gen_recipes.py --wheel dist/lazycelery-0.1.0-py3-none-any.whl \\
        --sdist dist/lazycelery-0.1.0.tar.gz

1. pip resolves the wheel's dependencies for CPython --python (3.13, what Homebrew and Arch
   ship) without installing anything (`pip install --dry-run --report`).
2. For each pinned distribution the registry's simple index (PEP 691 JSON) gives the files it
   serves, with their sha256: the sdist for Homebrew (it builds from source), the wheel for
   CPython 3.13 on x86_64 Linux for Arch.
3. packaging/homebrew/lazycelery.rb and packaging/arch/PKGBUILD are written from the
   templates below; never edit them by hand.

lazycelery's own sdist and wheel: the registry's hash once the version is published there,
until then the hash of the files given with --sdist / --wheel.
tests/test_packaging_recipes.py downloads every file these recipes name and recomputes its hash.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
INDEX = "https://pypi.org/simple"
FILES = "https://files.pythonhosted.org/packages"
FORMULA = HERE / "homebrew" / "lazycelery.rb"
PKGBUILD = HERE / "arch" / "PKGBUILD"
HOMEPAGE = "https://github.com/lazycelery/lazycelery"
DESCRIPTION = "Keyboard-driven terminal dashboard and CLI for Celery clusters"


@dataclass(frozen=True)
class Served:
    """One file the registry serves."""

    filename: str
    url: str
    sha256: str


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve(wheel: Path, python: str, interpreter: str | None) -> dict[str, str]:
    """{canonical name: version} of every dependency of `wheel` on CPython `python` (3.13).

    pip evaluates environment markers (python_version < "3.11", ...) with the interpreter it
    runs on, whatever --python-version says: so it runs on `interpreter` (default: python3.13
    on PATH) when there is one, else on this Python, with a warning."""
    nodot = "".join(python.split(".")[:2])
    interpreter = interpreter or shutil.which(f"python{python}")
    if interpreter and subprocess.run([interpreter, "-c", "import venv"],
                                      capture_output=True).returncode != 0:
        interpreter = None  # e.g. a pyenv shim for a version that is not installed
    with tempfile.TemporaryDirectory() as tmp:
        pip = [sys.executable, "-m", "pip"]
        if interpreter:
            subprocess.run([interpreter, "-m", "venv", f"{tmp}/venv"], check=True)
            pip = [f"{tmp}/venv/bin/python", "-m", "pip"]
        else:
            print(f"gen_recipes: no python{python} found: environment markers are evaluated for "
                  f"this Python {sys.version.split()[0]}", file=sys.stderr)
        report = Path(tmp) / "report.json"
        subprocess.run(
            [*pip, "install", "--dry-run", "--quiet", "--ignore-installed",
             "--disable-pip-version-check", "--report", str(report), "--target", f"{tmp}/t",
             "--only-binary", ":all:", "--python-version", python, "--implementation", "cp",
             "--abi", f"cp{nodot}", "--platform", "manylinux_2_28_x86_64",
             "--platform", "manylinux2014_x86_64", str(wheel)],
            check=True)
        installs = json.loads(report.read_text())["install"]
    pins = {canonical(item["metadata"]["name"]): item["metadata"]["version"] for item in installs}
    pins.pop("lazycelery", None)
    return dict(sorted(pins.items()))


def served(name: str) -> list[Served]:
    """Every file of `name` on the index, from its PEP 691 JSON page."""
    request = urllib.request.Request(f"{INDEX}/{canonical(name)}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        page = json.load(response)
    return [Served(f["filename"], f["url"], f["hashes"]["sha256"]) for f in page["files"]
            if not f.get("yanked") and "sha256" in f.get("hashes", {})]


def sdist_of(files: list[Served], name: str, version: str) -> Served:
    stem = f"{canonical(name).replace('-', '_')}-{version}"
    for f in files:
        if f.filename.lower().endswith(".tar.gz") and canonical(f.filename[:-7]) == canonical(stem):
            return f
    raise SystemExit(f"gen_recipes: no sdist of {name} {version} on the index")


def wheel_of(files: list[Served], name: str, version: str, python: str) -> Served:
    """The wheel pip would pick on CPython `python`, x86_64 glibc Linux."""
    from packaging.tags import compatible_tags, cpython_tags
    from packaging.utils import parse_wheel_filename

    platforms = [f"manylinux_2_{glibc}_x86_64" for glibc in range(28, 16, -1)]
    platforms += ["manylinux2014_x86_64"]
    minor = int(python.split(".")[1])
    abi = f"cp3{minor}"
    order = [*cpython_tags((3, minor), [abi, "abi3", "none"], platforms),
             *compatible_tags((3, minor), abi, platforms)]
    rank = {tag: i for i, tag in enumerate(order)}
    best: tuple[int, Served] | None = None
    for f in files:
        if not f.filename.endswith(".whl"):
            continue
        wname, wversion, _, tags = parse_wheel_filename(f.filename)
        if canonical(wname) != canonical(name) or str(wversion) != version:
            continue
        score = min((rank[t] for t in tags if t in rank), default=None)
        if score is not None and (best is None or score < best[0]):
            best = (score, f)
    if best is None:
        raise SystemExit(f"gen_recipes: no wheel of {name} {version} for CPython {python}")
    return best[1]


def own_file(path: Path, url: str) -> Served:
    """lazycelery's own sdist/wheel: the index's hash once published, else the local file's."""
    try:
        for f in served("lazycelery"):
            if f.filename == path.name:
                return f
    except urllib.error.HTTPError as error:
        if error.code != 404:
            raise
    return Served(path.name, url, hashlib.sha256(path.read_bytes()).hexdigest())


def formula(version: str, own: Served, resources: list[tuple[str, Served]], python: str) -> str:
    blocks = "\n".join(
        f'  resource "{name}" do\n    url "{f.url}"\n    sha256 "{f.sha256}"\n  end\n'
        for name, f in resources)
    return f'''# Generated by packaging/gen_recipes.py from lazycelery's resolved dependencies: do not edit.
class Lazycelery < Formula
  include Language::Python::Virtualenv

  desc "{DESCRIPTION}"
  homepage "{HOMEPAGE}"
  url "{own.url}"
  sha256 "{own.sha256}"
  license "MIT"

  depends_on "python@{python}"

{blocks}
  def install
    virtualenv_install_with_resources
  end

  test do
    assert_match "lazycelery #{{version}}", shell_output("#{{bin}}/lazycelery --version")
    # a real cluster on the pure-Python embedded broker, stopped after 5 s
    output = shell_output("#{{bin}}/lazycelery demo --no-dashboard --duration 5 " \\
                          "--embedded-broker fakeredis 2>&1")
    assert_match "stopped", output
  end
end
'''


def pkgbuild(version: str, own: Served, wheels: list[Served], stager: Path, python: str) -> str:
    files = [own, *wheels]
    sources = "\n".join(f'        "{f.url}"' for f in files)
    sums = "\n".join(f"            '{f.sha256}'" for f in files)
    names = " ".join(f"'{f.filename}'" for f in files)
    stager_sum = hashlib.sha256(stager.read_bytes()).hexdigest()
    nxt = f"3.{int(python.split('.')[1]) + 1}"
    return f'''# Generated by packaging/gen_recipes.py from lazycelery's resolved dependencies: do not edit.
# A self-contained virtualenv in /opt/lazycelery (the .deb's and the .rpm's layout), installed
# offline from the exact wheels below: the dependency set lazycelery is tested with.
pkgname=lazycelery
pkgver={version}
pkgrel=1
pkgdesc="{DESCRIPTION}"
arch=('x86_64')
url="{HOMEPAGE}"
license=('MIT')
depends=('python>={python}' 'python<{nxt}')
options=('!strip' '!debug')
source=(
{sources}
        "stage_venv.py"
)
noextract=({names})
sha256sums=(
{sums}
            '{stager_sum}'
)

package() {{
  "/usr/bin/python{python}" "$srcdir/stage_venv.py" --root "$pkgdir" --prefix /opt/lazycelery \\
    --python "/usr/bin/python{python}" --wheelhouse "$srcdir" "lazycelery==$pkgver"
  install -d "$pkgdir/usr/bin"
  ln -s ../../opt/lazycelery/bin/lazycelery "$pkgdir/usr/bin/lazycelery"
  local site="$pkgdir/opt/lazycelery/lib/python{python}/site-packages"
  install -Dm644 "$site/lazycelery-$pkgver.dist-info/licenses/LICENSE" \\
    "$pkgdir/usr/share/licenses/$pkgname/LICENSE"
}}
'''


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, required=True, help="dist/lazycelery-V-py3-none-any.whl")
    parser.add_argument("--sdist", type=Path, required=True, help="dist/lazycelery-V.tar.gz")
    parser.add_argument("--python", default="3.13", help="the CPython the recipes target (3.13)")
    parser.add_argument("--interpreter",
                        help="the Python pip resolves on (markers are evaluated for it); "
                             "default: python3.13 (--python) on PATH, else this one")
    parser.add_argument("--out", type=Path,
                        help="write lazycelery.rb and PKGBUILD (+ stage_venv.py) there instead "
                             "of updating packaging/homebrew/ and packaging/arch/")
    args = parser.parse_args(argv)
    version = args.sdist.name.removeprefix("lazycelery-").removesuffix(".tar.gz")
    pins = resolve(args.wheel, args.python, args.interpreter)
    resources, wheels = [], []
    for name, pinned in pins.items():
        files = served(name)
        resources.append((name, sdist_of(files, name, pinned)))
        wheels.append(wheel_of(files, name, pinned, args.python))
    own_sdist = own_file(args.sdist, f"{FILES}/source/l/lazycelery/{args.sdist.name}")
    own_wheel = own_file(args.wheel, f"{FILES}/py3/l/lazycelery/{args.wheel.name}")
    formula_path, pkgbuild_path = FORMULA, PKGBUILD
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        formula_path, pkgbuild_path = args.out / FORMULA.name, args.out / PKGBUILD.name
        shutil.copy(HERE / "stage_venv.py", args.out / "stage_venv.py")
    formula_path.write_text(formula(version, own_sdist, resources, args.python))
    pkgbuild_path.write_text(pkgbuild(version, own_wheel, wheels, HERE / "stage_venv.py",
                                      args.python))
    print(f"gen_recipes: {len(pins)} dependencies for CPython {args.python}: "
          + ", ".join(f"{n}=={v}" for n, v in pins.items()))
    print(f"gen_recipes: wrote {formula_path} and {pkgbuild_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
