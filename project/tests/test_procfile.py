"""One definition of the process set: the Procfile, run by `ops/proc NAME` everywhere (make run through honcho,
the image, docker-compose.yml, the AWS task definitions, the fault suite, the benchmark)."""

import os
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = {"web", "worker", "beat", "flower"}


def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name] = command.strip()
    return entries


def test_the_procfile_names_the_four_processes():
    assert set(procfile()) == PROCESSES


def test_ops_proc_runs_each_process_by_name_with_settings_from_the_environment():
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    checked = subprocess.run(
        [str(ROOT / "ops" / "proc"), "web", "--check-config"],
        env={**env, "WEB_BIND": "127.0.0.1:1", "WEB_CONCURRENCY": "7"},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert checked.returncode == 0, checked.stderr
    printed = subprocess.run(
        [str(ROOT / "ops" / "proc"), "web", "--print-config"],
        env={**env, "WEB_BIND": "127.0.0.1:1", "WEB_CONCURRENCY": "7"},
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    settings = {
        line.split("=", 1)[0].strip(): line.split("=", 1)[1].strip() for line in printed.splitlines() if "=" in line
    }
    assert settings["workers"] == "7" and "127.0.0.1:1" in settings["bind"]
    missing = subprocess.run([str(ROOT / "ops" / "proc"), "nope"], capture_output=True, text=True)
    assert missing.returncode == 64 and "no process 'nope'" in missing.stderr


def test_compose_and_the_image_start_the_procfiles_processes():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in PROCESSES - {"web"}:
        assert services[name]["command"] == ["ops/proc", name], name
    assert 'CMD ["ops/proc", "web"]' in (ROOT / "Dockerfile").read_text()  # compose's web runs the image's command
    assert "command" not in services["web"]


def test_the_aws_task_definitions_start_the_procfiles_processes():
    template = (ROOT / "ops" / "aws" / "servicearea.yaml").read_text()
    for name in ("worker", "beat", "flower"):
        assert f'ops/proc", "{name}"' in template or f"exec ops/proc {name}" in template, name
    assert '"celery", "-A"' not in template and '"gunicorn"' not in template


def test_the_fault_suite_and_the_benchmark_start_them_with_ops_proc():
    for path in ("faults/stack.py", "bench/management/commands/bench.py", "ops/run.sh"):
        text = (ROOT / path).read_text()
        assert "ops" in text and ("proc" in text or "Procfile" in text), path
        assert '"-m", "gunicorn"' not in text and 'BIN / "celery"' not in text, path
