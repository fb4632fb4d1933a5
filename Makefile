# Two commands do everything: `make run` and `make test`. Both install what is missing first.
.PHONY: run run-smoke test faults bench lint format services-start services-stop services-status clean lock audit

run:
	@ops/run.sh

test:
	@ops/test.sh $(ARGS)

# `make run` started as a new user would, on spare ports, until it serves the demo; then stopped (CI runs it).
run-smoke:
	@ops/run-smoke.sh

# Breaks a private stack (its own PostgreSQL, Redis, gunicorn, worker and beat on other ports) and measures how it
# recovers: faults/. A few minutes; safe next to `make run` and `make test`.
faults:
	@ops/bootstrap.sh && .venv/bin/pytest -c faults/pytest.ini faults $(ARGS)

bench:
	@ops/bench.sh $(ARGS)

lint:
	@.venv/bin/ruff check . && .venv/bin/ruff format --check .

format:
	@.venv/bin/ruff check --fix . && .venv/bin/ruff format .

services-start:
	@ops/bootstrap.sh && ops/services.sh start

services-stop:
	@ops/services.sh stop

services-status:
	@ops/services.sh status

clean:
	@ops/services.sh stop || true
	rm -rf .run .venv staticfiles

# requirements*.in are the versions chosen by hand; `make lock` resolves them into requirements*.txt, every
# dependency pinned with the hashes of its files (ARGS="--upgrade-package NAME" moves one). This machine's package
# index settings stay out of the lock files.
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" .venv/bin/pip-compile --quiet --generate-hashes --allow-unsafe \
	--strip-extras --no-emit-index-url --no-emit-find-links --no-emit-trusted-host

lock:
	@ops/bootstrap.sh
	$(PIP_COMPILE) $(ARGS) --output-file requirements.txt requirements.in
	$(PIP_COMPILE) $(ARGS) --output-file requirements-dev.txt requirements-dev.in

# Known vulnerabilities in the locked requirements (also part of `make test`).
audit:
	@ops/bootstrap.sh && bash -c 'source ops/lib.sh && audit_requirements'
