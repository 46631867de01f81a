# The two commands (README): `make demo` and `make test`.  Both run `make setup` first,
# which installs what is missing and reuses what is there (a cached setup takes seconds).
VENV ?= .venv
PY   := $(VENV)/bin/python

.PHONY: setup setup-tests test test-cuda-image demo bench prototxt lint clean-demo gpu-kit
setup:
	@tools/setup.sh

# The set-up plus what only the tests use (tools/test-packages.txt: a Docker engine, mmdebstrap).
setup-tests:
	@G2S_SETUP_FOR_TESTS=1 tools/setup.sh

# The header says what this machine lacks and so skips; at the end, -ra (pyproject.toml) lists
# every skipped test with its reason (docs/testing.md).
test: setup-tests
	$(PY) -m pytest tests

# Opt-in, not in CI (about an hour on 2 cores): the CUDA image built by a test engine for sm_90
# and checked without a GPU (docs/docker.md).  `G2S_TEST_CUDA_IMAGE=1 make test` adds it to the rest.
test-cuda-image: setup-tests
	G2S_TEST_CUDA_IMAGE=1 $(PY) -m pytest -q -s tests/tools/test_docker_lanes.py -k cuda_image

demo: setup
	$(VENV)/bin/g2s demo

# Regenerate the committed prototxt/ tree (a test fails if this changes anything).
prototxt: setup
	$(VENV)/bin/g2s gen --all

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# The GPU check kit (docs/gpu-kit.md): CUDA Caffe for sm_90 and the run script in
# build/gpu_kit/, for one `run` on a GPU machine.  First build ~1 h on 2 cores, then cached.
gpu-kit: setup
	$(PY) tools/gpu_kit/build_kit.py

clean-demo:
	rm -rf demo_output
