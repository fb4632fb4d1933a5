"""ops/lockcheck.py: the guard that replaces pip's resolver when the locks are installed with --no-deps."""

import importlib.util
from pathlib import Path

import pytest

OPS = Path(__file__).resolve().parent.parent
ROOT = OPS.parent


@pytest.fixture(scope="module")
def lockcheck():
    spec = importlib.util.spec_from_file_location("lockcheck", OPS / "lockcheck.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lock_without(lock: Path, name: str, tmp_path: Path) -> Path:
    """A copy of a lock with one package's pin (and its hash lines) removed."""
    kept, skipping = [], False
    for line in lock.read_text().splitlines():
        if line.startswith(f"{name}=="):
            skipping = True
            continue
        if skipping and line.startswith("    --hash"):
            continue
        skipping = False
        kept.append(line)
    copy = tmp_path / lock.name
    copy.write_text("\n".join(kept) + "\n")
    return copy


def test_the_virtualenv_is_exactly_the_dev_lock(lockcheck):
    assert lockcheck.check_exact(ROOT / "requirements-dev.txt") == []


@pytest.mark.parametrize(
    ("lock", "requirements_in"),
    [("requirements-dev.txt", "requirements-dev.in"), ("requirements.txt", "requirements.in")],
)
def test_each_lock_pins_every_dependency_of_its_in_file(lockcheck, lock, requirements_in):
    assert lockcheck.check_closed(ROOT / lock, ROOT / requirements_in) == []


def test_a_dependency_wanted_only_through_an_extra_missing_from_the_lock_is_found(lockcheck, tmp_path):
    # pip-audit wants CacheControl[filecache]; the filecache extra wants filelock. The lock strips extras, so only
    # the graph walk with extras sees that filelock is needed: this is the shape of the break that stopped installs.
    lock = lock_without(ROOT / "requirements-dev.txt", "filelock", tmp_path)
    for name in ("requirements-dev.in", "requirements.txt", "requirements.in"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    problems = lockcheck.check_closed(lock, tmp_path / "requirements-dev.in")
    assert len(problems) == 1, problems
    assert problems[0].startswith("filelock") and "wanted by cachecontrol==" in problems[0], problems


def test_a_package_installed_beside_the_lock_is_found(lockcheck, tmp_path):
    lock = lock_without(ROOT / "requirements-dev.txt", "filelock", tmp_path)
    problems = lockcheck.check_exact(lock)
    assert any(p.startswith("filelock==") and "not in the lock" in p for p in problems), problems


def test_a_pin_at_another_version_is_found(lockcheck):
    problems = lockcheck.differences({"django": "1.0"}, {"django": "5.2.19"})
    assert problems == ["django is 5.2.19, the lock pins 1.0"]


def test_names_are_compared_as_pep_503_says(lockcheck):
    assert lockcheck.canonical("Django_Rest.Knox") == "django-rest-knox"
    assert lockcheck.differences({"django-rest-knox": "5.1.0"}, {"django-rest-knox": "5.1.0"}) == []
