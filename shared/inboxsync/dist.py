"""Build one deployable source folder per Cloud Function (what `make dist` runs).

    python -m inboxsync.dist OUT_DIR [--root REPO] [--rules FILE]

For every `functions/<name>/` that holds a `main.py`, `OUT_DIR/<name>/` gets:

    main.py            the function's thin entry point
    inboxsync/         the package from `shared/inboxsync`, minus `local/`
                       (the emulator stack, never deployed) and bytecode caches
    requirements.txt   a copy of `requirements/runtime.txt` (exact pins only)
    rules.toml         the rules file, when the repository has one

Terraform zips each folder as it is. Copies keep the source files' modification
times, so rebuilding unchanged sources gives byte-identical folders and no
needless redeploy. Any problem exits with status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DistError", "FunctionSource", "build", "find_functions", "main"]

_PACKAGE = "inboxsync"
_ENTRY_POINT = "main.py"
_RULES_NAME = "rules.toml"
_REQUIREMENTS_NAME = "requirements.txt"

# Written into OUT_DIR so that a rebuild may clear it: a folder without this
# marker is not ours, and we refuse to delete what is in it.
_MARKER = ".inboxsync-dist"

# Only the package's own top-level `local/` is test-only; a nested folder that
# happens to be called `local` is ordinary code and ships.
_TEST_ONLY_TOP_LEVEL = frozenset({"local"})
_NEVER_SHIPPED_DIRS = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache"})
_NEVER_SHIPPED_SUFFIXES = (".pyc", ".pyo")

_EXIT_USAGE = 2


class DistError(Exception):
    """The build cannot go on; the message says what to fix."""


@dataclass(frozen=True)
class FunctionSource:
    """One deployable function: its folder name and its entry point file."""

    name: str
    main_py: Path


def find_functions(functions_dir: Path) -> list[FunctionSource]:
    """Every function folder under `functions_dir`, sorted by name."""
    if not functions_dir.is_dir():
        raise DistError(f"no functions folder at {functions_dir}")

    found: list[FunctionSource] = []
    for folder in sorted(functions_dir.iterdir()):
        # Hidden folders and caches (`.x`, `__pycache__`) are not functions.
        if not folder.is_dir() or folder.name.startswith((".", "_")):
            continue
        main_py = folder / _ENTRY_POINT
        if not main_py.is_file():
            raise DistError(
                f"function folder {folder} has no {_ENTRY_POINT}; "
                "add the entry point or remove the folder"
            )
        found.append(FunctionSource(folder.name, main_py))

    if not found:
        raise DistError(f"no function folders with a {_ENTRY_POINT} in {functions_dir}")
    return found


def build(root: Path, out_dir: Path, rules_file: Path | None = None) -> list[Path]:
    """Build every function of the repository at `root` into `out_dir`.

    `rules_file` defaults to `rules.toml` at the repository root when it exists.
    Returns the folders built, one per function.
    """
    root = root.resolve()
    out_dir = out_dir.resolve()
    package_dir = root / "shared" / _PACKAGE
    functions_dir = root / "functions"
    requirements = root / "requirements" / "runtime.txt"

    if not (package_dir / "__init__.py").is_file():
        raise DistError(f"no package at {package_dir} (is --root the repository?)")
    if not requirements.is_file():
        raise DistError(f"no pinned runtime requirements at {requirements}")
    _check_out_dir(
        out_dir, root=root, package_dir=package_dir, functions_dir=functions_dir
    )

    functions = find_functions(functions_dir)
    _check_pinned(requirements)
    rules = _resolve_rules(root, rules_file)
    if rules is not None and rules.resolve().is_relative_to(out_dir):
        raise DistError(f"rules file {rules} is inside the output dir {out_dir}")

    _prepare_out_dir(out_dir)
    built: list[Path] = []
    for function in functions:
        target = out_dir / function.name
        target.mkdir()
        shutil.copy2(function.main_py, target / _ENTRY_POINT)
        shutil.copytree(
            package_dir, target / _PACKAGE, ignore=_package_filter(package_dir)
        )
        shutil.copy2(requirements, target / _REQUIREMENTS_NAME)
        if rules is not None:
            shutil.copy2(rules, target / _RULES_NAME)
        built.append(target)
    return built


def _check_out_dir(
    out_dir: Path, *, root: Path, package_dir: Path, functions_dir: Path
) -> None:
    if out_dir == root or out_dir in root.parents:
        raise DistError(f"output dir {out_dir} would contain the repository itself")
    if out_dir.is_relative_to(package_dir):
        raise DistError(
            f"output dir {out_dir} is inside the package {package_dir}; "
            "the package would end up copying itself"
        )
    if out_dir.is_relative_to(functions_dir):
        raise DistError(
            f"output dir {out_dir} is inside {functions_dir}; "
            "it would be taken for a function folder"
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise DistError(f"output path {out_dir} exists and is not a directory")


def _check_pinned(requirements: Path) -> None:
    """Every requirement must be an exact `name==version` pin."""
    for number, raw in enumerate(requirements.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        # `--hash=` lines continue the pin above them.
        if not line or line.startswith("--hash"):
            continue
        if line.startswith("-") or "==" not in line:
            raise DistError(
                f"{requirements}:{number}: {line!r} is not an exact pin "
                "(name==version); deployed builds must be reproducible"
            )


def _resolve_rules(root: Path, rules_file: Path | None) -> Path | None:
    if rules_file is None:
        default = root / _RULES_NAME
        if not default.is_file():
            return None
        rules_file = default
    elif not rules_file.is_file():
        raise DistError(f"rules file {rules_file} does not exist")

    # A broken rules file would only surface when run_sync starts; fail now.
    try:
        tomllib.loads(rules_file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DistError(f"rules file {rules_file} is not valid TOML: {exc}") from exc
    return rules_file


def _prepare_out_dir(out_dir: Path) -> None:
    """Empty `out_dir` if a previous build made it; refuse any other folder."""
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / _MARKER).is_file():
            raise DistError(
                f"output dir {out_dir} is not empty and was not made by this "
                "builder; choose another folder or empty it yourself"
            )
        # A stale folder of a deleted function must not linger, so start over.
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / _MARKER).write_text(
        "Built by `python -m inboxsync.dist`; the next build deletes this folder.\n"
    )


def _package_filter(package_dir: Path) -> Callable[[str, list[str]], set[str]]:
    """A `copytree` ignore callback that drops test-only parts and caches."""
    package_dir = package_dir.resolve()

    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = {
            name
            for name in names
            if name in _NEVER_SHIPPED_DIRS
            or name.endswith(_NEVER_SHIPPED_SUFFIXES)
            or name.endswith(".egg-info")
        }
        if Path(directory).resolve() == package_dir:
            skipped |= _TEST_ONLY_TOP_LEVEL & set(names)
        return skipped

    return ignore


def _default_root() -> Path:
    # shared/inboxsync/dist.py -> the repository is two folders up.
    return Path(__file__).resolve().parents[2]


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m inboxsync.dist",
        description="Build one deployable source folder per Cloud Function.",
    )
    parser.add_argument("out_dir", type=Path, help="where to build, e.g. build/dist")
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="repository root (default: the checkout this package lives in)",
    )
    parser.add_argument(
        "--rules",
        type=Path,
        default=None,
        help=f"rules file to ship as {_RULES_NAME} (default: ROOT/{_RULES_NAME})",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    args = _parse_args(argv)
    root: Path = args.root if args.root is not None else _default_root()
    try:
        built = build(root, args.out_dir, args.rules)
    except DistError as exc:
        print(f"inboxsync.dist: error: {exc}", file=sys.stderr)
        return _EXIT_USAGE

    for folder in built:
        count = sum(1 for path in folder.rglob("*") if path.is_file())
        print(f"built {folder} ({count} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
