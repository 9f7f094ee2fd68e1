# coldwatch: the README's two commands (`make demo`, `make test`) plus `make bench`.
# Each target installs what it needs first (Debian packages, two venvs) and is idempotent.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
EDGE := .venv-edge
CLOUD := .venv-cloud
DURATION ?= 0
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: all test demo bench lint system venvs clean messages

all: test

system:
	@bash deploy/install-system.sh

# The gateway's environment: numpy<2 + tflite-runtime, never torch/fastapi/sqlmodel.
$(EDGE)/.installed: pyproject.toml
	@echo "==> creating $(EDGE) (pip install -e .[edge])"
	@$(PYTHON) -m venv $(EDGE)
	@$(EDGE)/bin/pip install $(PIP_FLAGS) -e '.[edge]'
	@touch $@

# The cloud's environment: FastAPI, SQLModel, torch 2.13 + litert-torch, the simulator, dev tools.
$(CLOUD)/.installed: pyproject.toml
	@echo "==> creating $(CLOUD) (pip install -e .[cloud,train,sim,dev]; torch is large, this takes minutes once)"
	@$(PYTHON) -m venv $(CLOUD)
	@$(CLOUD)/bin/pip install $(PIP_FLAGS) -e '.[cloud,train,sim,dev]'
	@touch $@

venvs: $(EDGE)/.installed $(CLOUD)/.installed

lint: venvs
	@echo "==> ruff"
	@$(CLOUD)/bin/ruff check .
	@echo "==> import-linter (the layers: pyproject.toml [tool.importlinter])"
	@$(CLOUD)/bin/lint-imports --no-cache
	@echo "==> mypy --strict (every package; pyproject.toml [tool.mypy])"
	@$(CLOUD)/bin/mypy protocol edge_agent cloud models firmware_sim deploy

# Re-extract the strings marked for translation into messages.pot and merge them into each language's .po
# (new strings arrive untranslated: tests/unit/test_i18n.py fails until they are translated). docs/translations.md
LOCALES := cloud/ui/locale
messages: venvs
	@echo "==> pybabel extract → $(LOCALES)/messages.pot, update → $(LOCALES)/*/LC_MESSAGES/messages.po"
	@$(CLOUD)/bin/pybabel -q extract -F babel.cfg --no-location --sort-output \
		--project coldwatch --copyright-holder "coldwatch contributors" -o $(LOCALES)/messages.pot .
	@$(CLOUD)/bin/pybabel -q update -i $(LOCALES)/messages.pot -d $(LOCALES) --no-wrap --ignore-obsolete

test: system venvs lint
	@echo "==> pytest"
	@$(CLOUD)/bin/python -m pytest

demo: system venvs
	@$(CLOUD)/bin/python -m deploy.demo --duration $(DURATION)

bench: system venvs
	@$(CLOUD)/bin/python -m bench.run

clean:
	rm -rf $(EDGE) $(CLOUD) .mypy_cache .ruff_cache .pytest_cache var
