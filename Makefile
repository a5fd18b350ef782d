# `make run` starts the app on the active model; `make test` runs the whole suite (its browser
# tests write their screenshots to a temporary folder); `make screenshots` refreshes the README's
# docs/screenshots/ by running the browser tests with SCREENSHOT_DIR set.
# Each creates .venv and installs the pinned requirements when needed (idempotent).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test screenshots audit audit-report bench clean-venv

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/streamlit run app.py

test: $(STAMP)
	$(BIN)/python -m pytest

screenshots: $(STAMP)
	SCREENSHOT_DIR=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest tests/e2e -p no:cacheprovider

# pip-audit over the pinned requirements.txt: fails on an advisory that has a fixed version;
# offline (no advisory database) it says so and passes.
audit: $(STAMP)
	$(BIN)/python .ci/audit_deps.py

audit-report: $(STAMP)
	$(BIN)/python .ci/audit_deps.py --report-only

clean-venv:
	rm -rf $(VENV)
