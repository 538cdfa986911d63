# Main targets: `make book` (the whole study at the quick profile), `make test`, `make lint`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= quick
JOBS ?= 2
FASHION_MNIST := /usr/share/datasets/fashion-mnist
LINT_PATHS := src tests benchmarks notebooks
LAB_PORT ?= 8888

.PHONY: venv data book test test-book lint sweep lab clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

data:
	@test -d $(FASHION_MNIST) || { \
	  echo "Fashion-MNIST missing: installing the Debian package dataset-fashion-mnist"; \
	  apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; } || { \
	  echo "could not install it: run 'sudo apt-get install dataset-fashion-mnist'"; exit 1; }

book: venv data
	$(PY) -m cl_regimes book --profile $(PROFILE) --jobs $(JOBS)

# Two processes of one thread each (pytest-xdist, whole files per process): the small
# networks of the tests use a second thread poorly. pytest exits 5 when it collects no
# test: not a failure of the suite.
test: venv
	$(PY) -m pytest -m "not book" -q -n 2 --dist loadfile || [ $$? -eq 5 ]

test-book: venv
	CL_REGIMES_REQUIRE_BOOK=1 $(PY) -m pytest -m book -q || [ $$? -eq 5 ]

# Both checks run, so one run lists every problem; `ruff format $(LINT_PATHS)` fixes the layout.
lint: venv
	$(VENV)/bin/ruff check $(LINT_PATHS); status=$$?; \
	$(VENV)/bin/ruff format --check $(LINT_PATHS) && exit $$status

sweep: venv data
	$(PY) -m cl_regimes sweep --profile $(PROFILE) --jobs $(JOBS)

# JupyterLab on this machine only (localhost), with a token: open the URL it prints (set
# JUPYTER_TOKEN to choose the token). Jupytext opens notebooks/*.py as notebooks. As root
# (a container), Jupyter refuses to start without --allow-root.
lab: venv
	$(VENV)/bin/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.port=$(LAB_PORT) \
	  --ServerApp.root_dir=$(CURDIR) --ServerApp.default_url=/lab/tree/notebooks \
	  $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

clean:
	rm -rf _build notebooks/*.ipynb
