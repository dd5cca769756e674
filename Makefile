# bourbon's task runner: the single source of dev and CI commands. `make help` lists targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# CPython versions the Python tests run on (from pyenv when present, else PATH).
PYTHONS ?= 3.11 3.13
PYTHON_DEMO ?= 3.11
pyexe = $(firstword $(wildcard $(HOME)/.pyenv/versions/$(1).*/bin/python$(1)) $(shell command -v python$(1) 2>/dev/null))
venv = .venv-$(1)
# channels: the example site's chat (in-memory channel layer); websockets: the tests' WebSocket
# client; starlette and fastapi: the ASGI framework apps in tests/apps; uvloop: --loop uvloop;
# gunicorn: the access log test compares bourbon's lines with gunicorn's own.
DEV_PACKAGES := maturin pytest pytest-timeout ruff "django>=5.2,<7" flask brotli "tomli; python_version<'3.11'" \
	"channels>=4.2,<5" "websockets>=13" starlette fastapi uvloop gunicorn
DEMO_BIND ?= 127.0.0.1:8000

.PHONY: help
help: ## show this help
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# Redone when this Makefile changes, so an existing venv gets packages added to DEV_PACKAGES.
.venv-%/.ok: Makefile
	@py="$(call pyexe,$*)"; test -n "$$py" || { echo "error: no python$* found (pyenv install $*)" >&2; exit 1; }; \
	"$$py" -m venv .venv-$* && .venv-$*/bin/pip install -q --upgrade pip && .venv-$*/bin/pip install -q $(DEV_PACKAGES)
	@touch $@

.PHONY: venvs
venvs: $(foreach v,$(PYTHONS),$(call venv,$(v))/.ok) ## create the test virtualenvs

# The Autobahn|Testsuite fuzzing client (wstest) runs on Python 2.7 only. virtualenv 20.21.x
# (the last release that creates Python 2 environments) is installed into the first test venv
# and makes .venv-autobahn from pyenv's 2.7; pip there installs the suite from PyPI with every
# version pinned by tests/autobahn/constraints-py27.txt. When a C accelerator (wsaccel, ujson)
# will not build, the pinned tree is installed without them: autobahn then uses its pure-Python
# UTF-8 validator and masker (slower, same verdicts). AUTOBAHN_PURE=1 takes that path directly.
AUTOBAHN_VENV := .venv-autobahn
AUTOBAHN_SUITE := autobahntestsuite==25.10.1
AUTOBAHN_PINS := tests/autobahn/constraints-py27.txt
PYENV_ROOT ?= $(HOME)/.pyenv
PY27 ?= $(firstword $(wildcard $(PYENV_ROOT)/versions/2.7.*/bin/python2.7) $(shell command -v python2.7 2>/dev/null))
AUTOBAHN_TOOLS := $(call venv,$(firstword $(PYTHONS)))

# Redone only when the pins change (or after a failed attempt: .ok is written last).
$(AUTOBAHN_VENV)/.ok: $(AUTOBAHN_PINS) | $(AUTOBAHN_TOOLS)/.ok
	@py="$(PY27)"; \
	if [ -z "$$py" ] || ! "$$py" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null; then \
	  echo "error: the Autobahn fuzzing client needs Python 2.7, none found (pyenv install 2.7.18, or PY27=/path/to/python2.7)" >&2; exit 1; \
	fi; \
	set -e; rm -rf $(AUTOBAHN_VENV); \
	$(AUTOBAHN_TOOLS)/bin/pip install -q 'virtualenv>=20.21,<20.22'; \
	$(AUTOBAHN_TOOLS)/bin/virtualenv -q -p "$$py" $(AUTOBAHN_VENV); \
	pip27="$(AUTOBAHN_VENV)/bin/pip --no-python-version-warning -q"; \
	if [ -z "$(AUTOBAHN_PURE)" ] && $$pip27 install -c $(AUTOBAHN_PINS) $(AUTOBAHN_SUITE); then :; else \
	  echo "== autobahn: installing the pinned tree without the C accelerators (wsaccel, ujson)"; \
	  grep -vE '^(#|wsaccel==|ujson==)' $(AUTOBAHN_PINS) > $(AUTOBAHN_VENV)/pins-pure.txt; \
	  $$pip27 install --no-deps -r $(AUTOBAHN_VENV)/pins-pure.txt; \
	fi; \
	$(AUTOBAHN_VENV)/bin/wstest --help >/dev/null
	@touch $@

.PHONY: autobahn-venv
autobahn-venv: $(AUTOBAHN_VENV)/.ok ## Python 2.7 venv with the Autobahn fuzzing client (wstest)

.PHONY: build
build: venvs ## build and install bourbon (pip install .) into every test virtualenv
	@for v in $(PYTHONS); do \
	  echo "== pip install . (CPython $$v)"; \
	  PATH="$$PWD/.venv-$$v/bin:$$PATH" .venv-$$v/bin/pip install -q --no-build-isolation . || exit 1; \
	done

.PHONY: lint
lint: $(call venv,$(firstword $(PYTHONS)))/.ok ## rustfmt, clippy -D warnings, ruff
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(call venv,$(firstword $(PYTHONS)))/bin/ruff check python tests examples bench
	$(call venv,$(firstword $(PYTHONS)))/bin/ruff format --check python tests examples bench

.PHONY: test-rust
test-rust: ## cargo tests (bourbon-config, bourbon-server incl. the gunicorn corpus, docs drift)
	cargo test --workspace --exclude bourbon-py
	PYO3_PYTHON=$(call pyexe,$(firstword $(PYTHONS))) cargo test -p bourbon-py --lib --no-default-features

.PHONY: test-python
test-python: build $(AUTOBAHN_VENV)/.ok ## pytest against the installed bourbon, on every CPython in PYTHONS
	@for v in $(PYTHONS); do \
	  echo "== pytest (CPython $$v)"; \
	  .venv-$$v/bin/python -m pytest -q -p no:cacheprovider tests/python || exit 1; \
	done
	cd examples/mysite && ../../$(call venv,$(firstword $(PYTHONS)))/bin/python manage.py test polls chat -v 1

.PHONY: test
test: lint test-rust test-python ## everything CI runs

# All 517 cases against bourbon (test-python runs a 261-case subset); the report stays in
# build/autobahn/index.html.
.PHONY: autobahn
autobahn: build $(AUTOBAHN_VENV)/.ok ## Autobahn WebSocket conformance, all cases; report in build/autobahn/
	rm -rf build/autobahn
	AUTOBAHN_CASES=all AUTOBAHN_REPORT_DIR="$$PWD/build/autobahn" \
	  $(AUTOBAHN_TOOLS)/bin/python -m pytest -q -s -p no:cacheprovider tests/python/test_autobahn.py

.PHONY: demo
# The ASGI entry point serves the pages and the chat's WebSockets on one listener. One worker:
# the chat's in-memory channel layer is per process (see examples/mysite/mysite/settings.py).
demo: $(call venv,$(PYTHON_DEMO))/.ok ## build, then serve the example Django site (pages and live chat) at http://127.0.0.1:8000
	PATH="$$PWD/.venv-$(PYTHON_DEMO)/bin:$$PATH" .venv-$(PYTHON_DEMO)/bin/pip install -q --no-build-isolation .
	cd examples/mysite && ../../.venv-$(PYTHON_DEMO)/bin/python manage.py migrate --noinput
	cd examples/mysite && ../../.venv-$(PYTHON_DEMO)/bin/python manage.py collectstatic --noinput -v 0
	.venv-$(PYTHON_DEMO)/bin/bourbon compress --quiet examples/mysite/staticfiles
	.venv-$(PYTHON_DEMO)/bin/bourbon mysite.wsgi:application --asgi mysite.asgi:application --chdir examples/mysite -b $(DEMO_BIND) -w 1 --threads 4 --static django

.PHONY: docs
docs: ## regenerate docs/settings.md from the settings registry
	BOURBON_BLESS=1 cargo test -p bourbon-config --test docs

.PHONY: clean
clean: ## remove build output and virtualenvs
	cargo clean
	rm -rf .venv-* build dist

.PHONY: bench
bench: ## full benchmark vs the peers (bench/run.py, ~40 min); updates docs/performance.md
	bench/setup.sh
	bench/.venv/bin/python bench/run.py --update-docs $(BENCH_ARGS)

.PHONY: bench-bar
bench-bar: ## the bar's cells only (keep-alive, c=1/64) vs the peers it names, 5 x 5 s (~50 min)
	bench/setup.sh
	bench/.venv/bin/python bench/run.py --bar --update-docs $(BENCH_ARGS)

.PHONY: bench-asgi
bench-asgi: ## ASGI + WebSocket cells vs Granian, uvicorn, Daphne (~15 min); updates docs/performance.md
	bench/setup.sh
	bench/.venv/bin/python bench/run.py --asgi-only --update-docs $(BENCH_ARGS)

.PHONY: bench-quick
bench-quick: ## short benchmark: hello + Django /plain at c=64, bourbon vs granian and bjoern
	bench/setup.sh
	bench/.venv/bin/python bench/run.py --quick $(BENCH_ARGS)
