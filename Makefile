# Two entry points (README): `make demo` and `make test`. Both create .venv from requirements.txt if needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= demo_out
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: venv demo test lint bench clean-demo docs

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip -q
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) -m eegdecode demo --out $(DEMO_DIR)

test: venv
	$(PY) -m pytest -q tests

lint: venv
	$(PY) -m ruff check eegdecode tests bench Retrieval Generation EEG-preprocessing MEG-preprocessing examples docs/hooks
	$(PY) -m ruff format --check eegdecode tests bench Retrieval Generation EEG-preprocessing MEG-preprocessing examples docs/hooks

# The documentation site (docs/, mkdocs.yml): its own pins, installed into the same venv with the runtime pins as
# constraints; strict, so a broken link, anchor or API reference, or a failing example, fails the build.
$(VENV)/.docs-installed: $(VENV)/.installed docs/requirements.txt
	$(PY) -m pip install -q -r docs/requirements.txt -c requirements.txt
	touch $@

docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict -d site

clean-demo:
	rm -rf $(DEMO_DIR)
