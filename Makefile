# The two commands a newcomer needs:
#   make run    set up, index the bundled reports if needed, and serve the chat page + API
#   make test   set up (Chromium for the browser test included) and run the test suite (what CI runs)
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# torch is installed first and pinned: the CPU build, never the multi-GB CUDA one.
# Elsewhere, point pip at a CPU wheel index with e.g. TORCH_PIP_ARGS="--index-url <cpu index>".
TORCH_VERSION ?= 2.13.0
TORCH_PIP_ARGS ?=
EXTRAS ?= dev

.PHONY: setup browser postgres run test eval clean

setup: $(VENV)/.installed-$(EXTRAS)

$(VENV)/.installed-$(EXTRAS): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==$(TORCH_VERSION)" $(TORCH_PIP_ARGS)
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	$(PY) -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith('$(TORCH_VERSION)') else 'torch ' + v + ' installed, expected $(TORCH_VERSION)')"
	touch $@

run: setup
	$(VENV)/bin/qa-app serve

# The browser test drives Debian's Chromium (Playwright's own browser download is not used);
# CJK fonts make Chinese readable in screenshots.
browser:
	@if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi "noto.*cjk"; then \
		echo "installing Debian's chromium and fonts-noto-cjk"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	fi

# The PostgreSQL catalog's tests start a throw-away server (tests/test_pg_catalog.py): Debian's binaries.
postgres:
	@if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "installing Debian's postgresql"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; \
	fi

test: setup browser postgres
	$(PY) -m pytest -q -ra

eval: setup
	$(VENV)/bin/qa-app ingest --quiet
	$(VENV)/bin/qa-app eval eval_sets/seeds_dev.jsonl

clean:
	rm -rf qa_data .pytest_cache
