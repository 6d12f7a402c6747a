# make demo: install and run the gateway against its built-in simulated PBX
# make test: install, then lint (ruff), type-check (mypy) and run the test suite
VENV ?= .venv

.PHONY: install demo test bench clean

$(VENV)/.installed: pyproject.toml scripts/bootstrap
	VENV=$(VENV) scripts/bootstrap

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/3cx-gateway demo

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q

bench: install
	$(VENV)/bin/python bench/run_all.py

clean:
	rm -rf $(VENV) demo-state .pytest_cache
