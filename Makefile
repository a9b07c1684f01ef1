# `make run` and `make test` do all set-up: a .venv with the pinned requirements, then the command.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_NETWORK ?= checkpoints/demo.pkl

.PHONY: run test test-all venv system-packages clean

venv: $(STAMP)

# cuda-bindings (CUDA-GL interop) only where an NVIDIA driver is present.
$(STAMP): requirements.txt requirements-cuda.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	if nvidia-smi -L >/dev/null 2>&1; then \
		$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-cuda.txt; fi
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

system-packages:
	@bash tools/system_packages.sh

# Opens the viewer on the demo network; without a display it says to use --headless.
run: system-packages $(STAMP)
	$(PY) visualizer.py $(DEMO_NETWORK) $(RUN_ARGS)

# `make test` leaves out the tests marked slow (full-size networks, 512x512 training) so that it
# stays well under 15 minutes on 2 cores; `make test-all` runs them too.
# pytest's exit code 5 (no test collected) is a failure, not a pass.
TEST_SELECTION ?= -m "not slow"
test: system-packages $(STAMP)
	$(PY) -m pytest $(TEST_SELECTION) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-all:
	$(MAKE) test TEST_SELECTION=

clean:
	rm -rf $(VENV) build *.egg-info
