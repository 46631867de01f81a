# The two commands (README): `make demo` and `make test`.  Both run `make setup` first,
# which installs what is missing and reuses what is there (a cached setup takes seconds).
VENV ?= .venv
PY   := $(VENV)/bin/python

.PHONY: setup test demo bench prototxt lint clean-demo
setup:
	@tools/setup.sh

test: setup
	$(PY) -m pytest -q tests

demo: setup
	$(VENV)/bin/g2s demo

# Regenerate the committed prototxt/ tree (a test fails if this changes anything).
prototxt: setup
	$(VENV)/bin/g2s gen --all

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean-demo:
	rm -rf demo_output
