"""Lock files against the virtualenv, run with the virtualenv's Python:

    .venv/bin/python ops/lockcheck.py exact requirements-dev.txt
        the virtualenv holds exactly what the lock pins: every pinned package at its version, nothing else
        (ops/bootstrap.sh after installing, and `make test`)
    .venv/bin/python ops/lockcheck.py closed requirements.txt requirements.in
        the lock is closed: every requirement of the .in file, and every requirement of those, with the extras
        asked for and the markers of this Python, is pinned in the lock at a version that satisfies it (`make test`,
        for both locks; the Docker image installs requirements.txt alone)

The locks are installed with `pip install --no-deps`: pip never resolves again, so a release published after the
lock was made cannot change or break the install. The price is that nothing else proves the lock complete; these
two checks and `pip check` do. `exact` uses the standard library only: it runs before anything can be trusted.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def canonical(name: str) -> str:
    """PEP 503 normalisation: `Django_Redis` and `django-redis` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions(lock: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        match = PIN.match(line)
        if match:
            pins[canonical(match.group(1))] = match.group(2)
    return pins


def installed_versions() -> dict[str, str]:
    return {canonical(dist.metadata["Name"]): dist.version for dist in metadata.distributions()}


def differences(pins: dict[str, str], installed: dict[str, str]) -> list[str]:
    problems = []
    for name, version in sorted(pins.items()):
        if name not in installed:
            problems.append(f"{name}=={version} is locked but not installed")
        elif installed[name] != version:
            problems.append(f"{name} is {installed[name]}, the lock pins {version}")
    for name in sorted(set(installed) - set(pins)):
        problems.append(f"{name}=={installed[name]} is installed but not in the lock (a dependency the lock misses?)")
    return problems


def root_requirements(requirements_in: Path) -> list[str]:
    """The requirement lines of a .in file and of the files it includes with -r (constraints, -c, are not roots)."""
    lines = []
    for raw in requirements_in.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#") or line.startswith("-c"):
            continue
        if line.startswith("-r"):
            lines += root_requirements(requirements_in.parent / line[2:].strip())
        else:
            lines.append(line)
    return lines


def unpinned_dependencies(roots: list[str], pins: dict[str, str]) -> list[str]:
    """Walk the dependency graph from the roots through the installed packages' metadata; report every requirement
    the lock does not pin, or pins at a version that does not satisfy it."""
    from packaging.requirements import Requirement  # installed from the lock; `exact` has proved it is the locked one

    problems: list[str] = []
    queue = [(Requirement(line), "the .in file") for line in roots]
    walked: set[tuple[str, frozenset[str]]] = set()
    while queue:
        requirement, wanted_by = queue.pop()
        name = canonical(requirement.name)
        if name not in pins:
            problems.append(f"{requirement} (wanted by {wanted_by}) is not in the lock")
            continue
        if not requirement.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{requirement} (wanted by {wanted_by}) is not met by the pinned {name}=={pins[name]}")
        extras = frozenset(requirement.extras)
        if (name, extras) in walked:
            continue
        walked.add((name, extras))
        for line in metadata.distribution(name).requires or []:
            dependency = Requirement(line)
            environments = [{"extra": extra} for extra in ("", *extras)]
            if dependency.marker is None or any(dependency.marker.evaluate(env) for env in environments):
                queue.append((dependency, f"{name}=={pins[name]}"))
    return problems


def check_exact(lock: Path) -> list[str]:
    return differences(locked_versions(lock), installed_versions())


def check_closed(lock: Path, requirements_in: Path) -> list[str]:
    pins = locked_versions(lock)
    installed = installed_versions()
    # The graph is read from the installed metadata, so it must be the metadata of the pinned releases.
    problems = [problem for problem in differences(pins, installed) if "not in the lock" not in problem]
    return problems or unpinned_dependencies(root_requirements(requirements_in), pins)


def main(argv: list[str]) -> int:
    usage = f"usage: {argv[0]} exact LOCK | closed LOCK REQUIREMENTS_IN"
    if len(argv) < 3 or (argv[1], len(argv)) not in {("exact", 3), ("closed", 4)}:
        print(usage, file=sys.stderr)
        return 2
    lock = Path(argv[2])
    pins = locked_versions(lock)
    if not pins:
        print(f"{lock}: no pinned requirements found", file=sys.stderr)
        return 2
    if argv[1] == "exact":
        problems, claim = check_exact(lock), f"{len(pins)} packages installed, exactly as {lock.name} pins them"
    else:
        problems, claim = check_closed(lock, Path(argv[3])), f"{lock.name} pins every dependency of {argv[3]}"
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    if problems:
        print(f"{lock}: {len(problems)} problem(s); `make lock` makes the lock again", file=sys.stderr)
        return 1
    print(f"  {claim}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
