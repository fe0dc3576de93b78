"""`python -m inboxsync.dist`: the per-function source folders Terraform zips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from inboxsync import dist

REPO_ROOT = Path(__file__).resolve().parents[1]

_PINNED = "google-auth==2.63.0\nrequests==2.34.2  # transport\n"


def _write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A small repository tree shaped like ours: two functions and the package."""
    root = tmp_path / "repo"
    _write(root / "functions" / "alpha" / "main.py", "def alpha(request): ...\n")
    _write(root / "functions" / "beta" / "main.py", "def beta(request): ...\n")
    _write(root / "functions" / "__pycache__" / "stray.pyc")
    package = root / "shared" / "inboxsync"
    _write(package / "__init__.py", '"""pkg"""\n')
    _write(package / "py.typed")
    _write(package / "core.py", "VALUE = 1\n")
    _write(package / "adapters" / "__init__.py")
    _write(package / "adapters" / "local" / "__init__.py")  # nested: ships
    _write(package / "local" / "__init__.py")  # top-level local/: test-only
    _write(package / "local" / "stack.toml", "x = 1\n")
    _write(package / "__pycache__" / "core.cpython-311.pyc")
    _write(package / "adapters" / "__pycache__" / "x.cpython-311.pyc")
    _write(package / "stale.pyc")
    _write(root / "requirements" / "runtime.txt", _PINNED)
    _write(root / "rules.toml", '[[rule]]\nname = "label-invoices"\n')
    return root


def _files(folder: Path) -> set[str]:
    return {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file()
    }


def _build_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    status = dist.main(list(argv))

    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("inboxsync.dist: error: ")
    return err


def test_builds_one_folder_per_function_with_package_requirements_and_rules(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"

    status = dist.main(["--root", str(repo), str(out)])

    assert status == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["alpha", "beta"]
    assert _files(out / "alpha") == {
        "main.py",
        "requirements.txt",
        "rules.toml",
        "inboxsync/__init__.py",
        "inboxsync/py.typed",
        "inboxsync/core.py",
        "inboxsync/adapters/__init__.py",
        "inboxsync/adapters/local/__init__.py",
    }
    assert (out / "beta" / "main.py").read_text() == "def beta(request): ...\n"
    assert (out / "alpha" / "requirements.txt").read_text() == _PINNED
    assert "built " in capsys.readouterr().out


def test_copies_keep_source_mtimes_so_rebuilds_are_identical(
    repo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    source = repo / "shared" / "inboxsync" / "core.py"
    os.utime(source, (1_000_000_000, 1_000_000_000))

    dist.build(repo, out)
    first = (out / "alpha" / "inboxsync" / "core.py").stat().st_mtime
    dist.build(repo, out)
    second = (out / "alpha" / "inboxsync" / "core.py").stat().st_mtime

    assert first == second == 1_000_000_000


def test_rules_file_is_optional(repo: Path, tmp_path: Path) -> None:
    (repo / "rules.toml").unlink()

    built = dist.build(repo, tmp_path / "out")

    assert [folder.name for folder in built] == ["alpha", "beta"]
    assert not (tmp_path / "out" / "alpha" / "rules.toml").exists()


def test_explicit_rules_file_ships_as_rules_toml(repo: Path, tmp_path: Path) -> None:
    custom = _write(tmp_path / "team-rules.toml", 'owner = "ops"\n')

    dist.build(repo, tmp_path / "out", rules_file=custom)

    shipped = tmp_path / "out" / "alpha" / "rules.toml"
    assert shipped.read_text() == 'owner = "ops"\n'


def test_rebuild_removes_folders_of_deleted_functions(
    repo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    dist.build(repo, out)
    (repo / "functions" / "beta" / "main.py").unlink()
    (repo / "functions" / "beta").rmdir()

    dist.build(repo, out)

    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["alpha"]


def test_function_folder_without_main_py_is_an_error(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(repo / "functions" / "gamma" / "README.md", "todo\n")

    err = _build_error(capsys, "--root", str(repo), str(tmp_path / "out"))

    assert "gamma" in err
    assert "main.py" in err
    assert not (tmp_path / "out").exists()


def test_no_functions_at_all_is_an_error(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("alpha", "beta"):
        (repo / "functions" / name / "main.py").unlink()
        (repo / "functions" / name).rmdir()

    err = _build_error(capsys, "--root", str(repo), str(tmp_path / "out"))

    assert "no function folders" in err


@pytest.mark.parametrize(
    ("relative_out", "expected"),
    [
        ("shared/inboxsync/build", "inside the package"),
        ("shared/inboxsync", "inside the package"),
        ("functions/dist", "function folder"),
        (".", "repository itself"),
    ],
)
def test_output_dir_that_would_eat_the_sources_is_refused(
    repo: Path,
    capsys: pytest.CaptureFixture[str],
    relative_out: str,
    expected: str,
) -> None:
    err = _build_error(capsys, "--root", str(repo), str(repo / relative_out))

    assert expected in err
    assert not (repo / "shared" / "inboxsync" / "build").exists()


def test_foreign_non_empty_output_dir_is_left_alone(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "precious"
    keep = _write(out / "notes.txt", "mine\n")

    err = _build_error(capsys, "--root", str(repo), str(out))

    assert "not made by this builder" in err
    assert keep.read_text() == "mine\n"


def test_unpinned_requirement_is_an_error(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(repo / "requirements" / "runtime.txt", "google-auth>=2\n")

    err = _build_error(capsys, "--root", str(repo), str(tmp_path / "out"))

    assert "runtime.txt:1" in err
    assert "exact pin" in err


def test_invalid_rules_toml_is_an_error(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(repo / "rules.toml", "[[rule]\nname = \n")

    err = _build_error(capsys, "--root", str(repo), str(tmp_path / "out"))

    assert "not valid TOML" in err


def test_missing_package_is_an_error(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "shared" / "inboxsync" / "__init__.py").unlink()

    err = _build_error(capsys, "--root", str(repo), str(tmp_path / "out"))

    assert "no package" in err


def test_module_entry_point_builds_the_real_repository(tmp_path: Path) -> None:
    function_dirs = sorted(
        folder
        for folder in (REPO_ROOT / "functions").iterdir()
        if folder.is_dir() and not folder.name.startswith((".", "_"))
    )
    # Git does not track empty folders, so an empty one is a local work in
    # progress, not something a clean checkout (or CI) would ever contain.
    unfinished = [f.name for f in function_dirs if not any(f.iterdir())]
    if unfinished:
        pytest.skip(f"empty, uncommitted function folders here: {unfinished}")
    out = tmp_path / "dist"

    result = subprocess.run(
        [sys.executable, "-m", "inboxsync.dist", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        f.name for f in function_dirs
    ]
    runtime = (REPO_ROOT / "requirements" / "runtime.txt").read_text()
    for folder in function_dirs:
        built = out / folder.name
        assert (built / "main.py").read_bytes() == (folder / "main.py").read_bytes()
        assert (built / "inboxsync" / "__init__.py").is_file()
        assert (built / "inboxsync" / "dist.py").is_file()
        assert not (built / "inboxsync" / "local").exists()
        assert not list(built.rglob("__pycache__"))
        assert (built / "requirements.txt").read_text() == runtime
        has_rules = (REPO_ROOT / "rules.toml").is_file()
        assert (built / "rules.toml").is_file() == has_rules
