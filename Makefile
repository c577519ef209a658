# triolb — two commands do everything: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
PACKAGES := appliance bgp bpf web

.PHONY: setup lint typecheck test unit demo bench clean

setup:
	@bash scripts/setup.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy --strict $(addprefix -p ,$(PACKAGES))

test: setup lint typecheck
	$(VENV)/bin/pytest

unit: setup
	$(VENV)/bin/pytest tests/unit

demo: setup
	$(VENV)/bin/triolb lab demo

bench: setup
	@mkdir -p bench/results
	@set -e; for b in bench/*.py; do [ -e "$$b" ] || continue; echo "== $$b"; $(PY) $$b; done

clean:
	$(VENV)/bin/triolb lab down || true
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
