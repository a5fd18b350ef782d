# `make run` starts the app on the active model; `make test` runs the whole suite.
# Both create .venv and install the pinned requirements when needed (idempotent).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test audit audit-report bench clean-venv

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/streamlit run app.py

test: $(STAMP)
	$(BIN)/python -m pytest

# pip-audit over the pinned requirements.txt: fails on an advisory that has a fixed version;
# offline (no advisory database) it says so and passes.
audit: $(STAMP)
	$(BIN)/python .ci/audit_deps.py

audit-report: $(STAMP)
	$(BIN)/python .ci/audit_deps.py --report-only

clean-venv:
	rm -rf $(VENV)
