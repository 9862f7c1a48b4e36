#!/usr/bin/env python3
"""Build every release artefact from a clone: sdist, wheel, wheelhouse, .deb, .rpm, zipapp.

    python packaging/build_all.py                # all of them into dist/
    python packaging/build_all.py rpm            # one step (the ones before it already run)
    nox -s package                               # all, in a fresh virtualenv, + twine check

Steps, in order (each needs the ones before it):
  dists      python -m build: dist/lazycelery-V.tar.gz and dist/lazycelery-V-py3-none-any.whl
  wheelhouse the wheel and every dependency's, resolved for --python: dist/wheelhouse/
  deb        a self-contained venv in /opt/lazycelery + /usr/bin/lazycelery: dist/*.deb
  rpm        the same layout with packaging/rpm/lazycelery.spec and rpmbuild: dist/*.rpm
  pyz        one file with every dependency for CPython 3.10-3.13 on x86_64 Linux (pex):
             dist/lazycelery.pyz
  recipes    the Homebrew formula and the Arch PKGBUILD for these files: dist/recipes/
             (packaging/gen_recipes.py: the dependency set resolved for CPython 3.13, each
             file's URL and sha256 from the package index)

The version is read from lazycelery/__init__.py, the one place it is written.
Needs: the `package` extra (build, pex), dpkg-deb for deb, rpmbuild for rpm.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
PREFIX = "/opt/lazycelery"
STEPS = ("dists", "wheelhouse", "deb", "rpm", "pyz", "recipes")
# the interpreters the zipapp carries binary wheels for (marker values: the lowest release)
PYZ_PYTHONS = {10: "3.10.0", 11: "3.11.0", 12: "3.12.0", 13: "3.13.0"}


def version() -> str:
    """lazycelery.__version__, read without importing the package."""
    tree = ast.parse((ROOT / "lazycelery" / "__init__.py").read_text())
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "__version__"
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            return node.value.value
    raise SystemExit("build_all.py: no __version__ = '...' in lazycelery/__init__.py")


def run(*cmd: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(part) for part in cmd), flush=True)
    subprocess.run([str(part) for part in cmd], check=True, cwd=cwd,
                   env={**os.environ, **(env or {})})


def wheel_path(out: Path) -> Path:
    return out / f"lazycelery-{version()}-py3-none-any.whl"


def build_dists(out: Path, python: str) -> None:
    for old in out.glob("lazycelery-*"):
        old.unlink()
    run(sys.executable, "-m", "build", "--outdir", out, ROOT)


def build_wheelhouse(out: Path, python: str) -> Path:
    """The wheel and every dependency's, resolved by pip running on `python` itself (its
    version and markers decide the set); a throwaway venv so no pip is needed on `python`."""
    house = out / "wheelhouse"
    if house.exists():
        shutil.rmtree(house)
    with tempfile.TemporaryDirectory() as tmp:
        run(python, "-m", "venv", tmp)
        run(Path(tmp) / "bin" / "pip", "download", "--quiet", "--disable-pip-version-check",
            "--only-binary", ":all:", "--dest", house, wheel_path(out))
    return house


def python_minor(python: str) -> str:
    out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def glibc_floor(house: Path) -> str:
    """The newest glibc any wheel in the house needs (its lowest manylinux tag), e.g. '2.17'."""
    floor = (2, 17)
    for wheel in house.glob("*.whl"):
        platforms = wheel.name[:-4].split("-")[-1].split(".")
        needs = []
        for tag in platforms:
            if tag.startswith("manylinux2014"):
                needs.append((2, 17))
            elif tag.startswith("manylinux_"):
                major, minor = tag.split("_")[1:3]
                needs.append((int(major), int(minor)))
        if needs:
            floor = max(floor, min(needs))
    return f"{floor[0]}.{floor[1]}"


def stage(root: Path, python: str, house: Path) -> None:
    run(sys.executable, PACKAGING / "stage_venv.py", "--root", root, "--prefix", PREFIX,
        "--python", python, "--wheelhouse", house, f"lazycelery=={version()}")


def require(tool: str, hint: str) -> None:
    if shutil.which(tool) is None:
        raise SystemExit(f"build_all.py: {tool} not found ({hint})")


def build_deb(out: Path, python: str) -> Path:
    require("dpkg-deb", "a Debian or Ubuntu machine has it")
    from_debian = PACKAGING / "debian"
    house = out / "wheelhouse"
    arch = subprocess.run(["dpkg", "--print-architecture"], check=True, capture_output=True,
                          text=True).stdout.strip()
    target = out / f"lazycelery_{version()}-1_{arch}.deb"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        stage(root, python, house)
        (root / "usr" / "bin").mkdir(parents=True)
        (root / "usr" / "bin" / "lazycelery").symlink_to(f"../..{PREFIX}/bin/lazycelery")
        doc = root / "usr" / "share" / "doc" / "lazycelery"
        doc.mkdir(parents=True)
        shutil.copy(from_debian / "copyright", doc / "copyright")
        control = root / "DEBIAN"
        control.mkdir()
        size_kib = sum(p.stat().st_size for p in root.rglob("*")
                       if p.is_file() and not p.is_symlink()) // 1024
        fields = {
            "VERSION": version(), "ARCH": arch, "SIZE": str(size_kib),
            "PYTHON": f"python{python_minor(python)}", "GLIBC": glibc_floor(house),
        }
        text = (from_debian / "control.in").read_text()
        for key, value in fields.items():
            text = text.replace(f"@{key}@", value)
        (control / "control").write_text(text)
        for script in ("postrm",):
            shutil.copy(from_debian / script, control / script)
            (control / script).chmod(0o755)
        run("dpkg-deb", "--root-owner-group", "-Zxz", "--build", root, target)
    return target


def build_rpm(out: Path, python: str) -> Path:
    require("rpmbuild", "apt-get install rpm, or dnf install rpm-build")
    house = out / "wheelhouse"
    top = out / "rpmbuild"
    if top.exists():
        shutil.rmtree(top)
    sources = top / "SOURCES"
    sources.mkdir(parents=True)
    with tarfile.open(sources / f"lazycelery-wheelhouse-{version()}.tar", "w") as tar:
        tar.add(house, arcname="wheelhouse")
    shutil.copy(PACKAGING / "stage_venv.py", sources)
    shutil.copy(ROOT / "LICENSE", sources)
    run("rpmbuild", "-bb", "--define", f"_topdir {top}", "--define", f"lc_version {version()}",
        "--define", f"lc_python {python}", "--define", f"lc_python_abi {python_minor(python)}",
        PACKAGING / "rpm" / "lazycelery.spec")
    built = sorted((top / "RPMS").rglob("lazycelery-*.rpm"))
    if len(built) != 1:
        raise SystemExit(f"build_all.py: expected one rpm, found {built}")
    target = out / built[0].name
    shutil.move(built[0], target)
    shutil.rmtree(top)
    return target


def complete_platform(minor: int, full: str) -> dict[str, object]:
    """A pex complete platform for CPython 3.minor on glibc x86_64 Linux (manylinux2014 and up)."""
    from packaging import tags

    platforms = [f"manylinux_2_{glibc}_x86_64" for glibc in range(28, 16, -1)]
    platforms += ["manylinux2014_x86_64", "linux_x86_64"]
    abi = f"cp3{minor}"
    compatible = [str(tag) for tag in tags.cpython_tags((3, minor), [abi, "abi3", "none"], platforms)]
    compatible += [str(tag) for tag in tags.compatible_tags((3, minor), abi, platforms)]
    markers = {
        "implementation_name": "cpython", "implementation_version": full, "os_name": "posix",
        "platform_machine": "x86_64", "platform_python_implementation": "CPython",
        "platform_release": "", "platform_system": "Linux", "platform_version": "",
        "python_full_version": full, "python_version": f"3.{minor}", "sys_platform": "linux",
    }
    return {"marker_environment": markers, "compatible_tags": compatible}


def build_pyz(out: Path, python: str) -> Path:
    """pex in venv mode: the first run unpacks a venv under ~/.cache/pex and re-executes in it,
    so the processes `lazycelery demo` starts with sys.executable find lazycelery too."""
    target = out / "lazycelery.pyz"
    with tempfile.TemporaryDirectory() as tmp:
        platform_args: list[str | Path] = []
        for minor, full in PYZ_PYTHONS.items():
            path = Path(tmp) / f"cp3{minor}.json"
            path.write_text(json.dumps(complete_platform(minor, full)))
            platform_args += ["--complete-platform", path]
        run(sys.executable, "-m", "pex", wheel_path(out), "--entry-point", "lazycelery.cli:main",
            "--venv", "prepend", "--python-shebang", "/usr/bin/env python3",
            *platform_args, "--output-file", target)
    return target


def build_recipes(out: Path, python: str) -> None:
    """The Homebrew formula and the PKGBUILD for this build, in dist/recipes/ (the tracked ones
    in packaging/ are updated by the release procedure, from the published files)."""
    run(sys.executable, PACKAGING / "gen_recipes.py", "--wheel", wheel_path(out),
        "--sdist", out / f"lazycelery-{version()}.tar.gz", "--out", out / "recipes")


BUILDERS = {"dists": build_dists, "wheelhouse": build_wheelhouse, "deb": build_deb,
            "rpm": build_rpm, "pyz": build_pyz, "recipes": build_recipes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("steps", nargs="*", metavar="STEP",
                        help=f"any of {', '.join(BUILDERS)} (default: {' '.join(STEPS)})")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="default: dist/")
    parser.add_argument("--python", default="/usr/bin/python3",
                        help="the system interpreter the .deb and .rpm run on "
                             "(default /usr/bin/python3, resolved to its versioned name)")
    parser.add_argument("--print-version", action="store_true",
                        help="print lazycelery's version (for scripts, e.g. the image tag) and exit")
    args = parser.parse_args(argv)
    if args.print_version:
        print(version())
        return 0
    unknown = [step for step in args.steps if step not in BUILDERS]
    if unknown:
        parser.error(f"unknown step {unknown[0]!r}: choose from {', '.join(BUILDERS)}")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    # the versioned interpreter: the venv keeps working, or the package manager refuses the
    # upgrade, when python3 moves to the next minor version
    python = os.path.realpath(args.python)
    for step in args.steps or STEPS:
        BUILDERS[step](out, python)
    for artefact in sorted([*out.glob("lazycelery*"), *out.glob("recipes/*")]):
        print(f"{artefact.stat().st_size:>12,}  {artefact}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
