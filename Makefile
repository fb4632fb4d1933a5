# Two commands do everything: `make run` and `make test`. Both install what is missing first.
.PHONY: run test bench lint format services-start services-stop services-status clean

run:
	@ops/run.sh

test:
	@ops/test.sh $(ARGS)

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
