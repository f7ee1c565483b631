# The two commands the README starts with. Both install everything they need into .venv first.
#   make up     install, then run `whistle up` (embedded broker, worker, API on 127.0.0.1:6066)
#   make test   install, then run the whole test suite (what .ci/run runs)

PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: up test install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(VENV)/bin/whistle up $(ARGS)

test: $(STAMP)
	$(VENV)/bin/pytest $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
