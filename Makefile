# `make run` and `make test` do all set-up: a .venv with the pinned requirements, then the command.
PYTHON ?= python3
# The Pythons requirements.txt has a binary wheel for every pin for (tools/check_wheels.py).
PYTHONS := 3.10 3.11 3.12 3.13
# torch's CPU build; PyPI's Linux torch is the CUDA build (3 GB more), kept where a GPU is found.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WHEELS_CHECKED := $(VENV)/.wheels-checked
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
DEMO_NETWORK ?= checkpoints/demo.pkl

.PHONY: run lint test test-all venv system-packages test-system-packages clean

venv: $(STAMP)

# A python3 outside $(PYTHONS) is refused before the venv is made. torch comes first, alone, from
# TORCH_INDEX (its +cpu build sorts above PyPI's), then the rest; PyPI's torch and cuda-bindings
# (CUDA-GL interop) where an NVIDIA driver is present.
$(STAMP): requirements.txt requirements-cuda.txt pyproject.toml
	@v=$$($(PYTHON) -c 'import sys; print("Python %d.%d" % sys.version_info[:2])' 2>/dev/null); \
	case " $(PYTHONS) " in *" $${v#Python } "*) ;; *) echo "error: PYTHON=$(PYTHON) is" \
		"$${v:-not found}; this project supports Python $(PYTHONS): name one, e.g." \
		"make $(or $(MAKECMDGOALS),venv) PYTHON=python3.12" >&2; exit 1;; esac
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	if nvidia-smi -L >/dev/null 2>&1; then \
		$(PIP) -r requirements.txt -r requirements-cuda.txt; \
	else \
		$(PIP) --no-deps --extra-index-url $(TORCH_INDEX) -c requirements.txt torch && \
		$(PIP) -r requirements.txt; fi
	$(PIP) --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Every pin has a binary wheel for every Python of $(PYTHONS); asks the index again only when a
# requirements file changes.
$(WHEELS_CHECKED): requirements.txt requirements-cuda.txt tools/check_wheels.py $(STAMP)
	$(PY) tools/check_wheels.py --pythons $(PYTHONS) -- requirements.txt requirements-cuda.txt
	touch $@

system-packages:
	@bash tools/system_packages.sh

# The tests also need sshd (tests/test_remote_ssh.py starts its own on a free port of 127.0.0.1).
test-system-packages:
	@bash tools/system_packages.sh openssh-server

# Opens the viewer on the demo network; without a display it says to use --headless.
run: system-packages $(STAMP)
	$(PY) visualizer.py $(DEMO_NETWORK) $(RUN_ARGS)

# The linter, with the rules of pyproject.toml's [tool.ruff]; `make test` runs it first.
lint: $(STAMP)
	$(VENV)/bin/ruff check --no-cache .

# `make test` lints, then leaves out the tests marked slow (full-size networks, 512x512 training) so that it
# stays well under 15 minutes on 2 cores; `make test-all` runs them too.
# pytest's exit code 5 (no test collected) is a failure, not a pass.
TEST_SELECTION ?= -m "not slow"
test: test-system-packages $(STAMP) $(WHEELS_CHECKED) lint
	$(PY) -m pytest $(TEST_SELECTION) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-all:
	$(MAKE) test TEST_SELECTION=

clean:
	rm -rf $(VENV) build *.egg-info
