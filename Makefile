# The two commands of the README: `make demo` and `make test`. Both set up
# everything they need in ./.venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench serve browser clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[web,ray,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/stylelab demo

# Browser tests drive Debian's Chromium; install it when it is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium >/dev/null; }

# Only the folders that exist (a checkout may not have benchmarks/ yet).
LINT_PATHS := $(wildcard src tests benchmarks)

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

test: $(STAMP) browser lint
	$(BIN)/python -m pytest -q --durations=15

bench: $(STAMP)
	$(BIN)/stylelab bench

serve: $(STAMP)
	$(BIN)/stylelab serve

clean:
	rm -rf $(VENV) stylelab-demo test-artifacts
