# `make run` and `make test` do all set-up: a .venv with the pinned requirements, then the command.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FIXTURES ?= ../shared/fixtures
DEMO_NETWORK ?= $(FIXTURES)/ffhq-micro.pkl
CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/eg3d-app

.PHONY: run test venv clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Until the viewer lands, `make run` renders the demo network to PNG files and says where.
run: $(STAMP)
	$(PY) -m eg3d_runtime.generate --network $(DEMO_NETWORK) --seeds 0-1 --yaw 0.3 \
		--outdir $(CACHE_DIR)/make-run

# pytest's exit code 5 (no test collected) is a failure, not a pass.
test: $(STAMP)
	EG3D_FIXTURES=$(FIXTURES) $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

clean:
	rm -rf $(VENV) build *.egg-info
