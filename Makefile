# triolb — two commands do everything: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
PACKAGES := appliance bgp bpf web

.PHONY: setup lint typecheck test unit demo bench bench-report clean

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
	@status=0; for b in bench/*.py; do \
	  [ -e "$$b" ] && [ "$$b" != bench/report.py ] || continue; \
	  echo "== $$b"; $(PY) $$b; rc=$$?; \
	  [ $$rc -ne 130 ] || exit 130; \
	  [ $$rc -eq 0 ] || status=1; \
	done; \
	echo "== bench/report.py"; $(PY) bench/report.py || status=1; \
	exit $$status

bench-report: setup
	$(PY) bench/report.py

clean:
	$(VENV)/bin/triolb lab down || true
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
