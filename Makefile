# The two commands the README starts with. Both install everything they need into .venv first,
# and a JDK 17 and Maven with apt-get when they are missing (the embedded Apache Kafka: Maven
# fetches the broker's jars once into ~/.cache/whistle, see streams/kafka/pom.xml).
#   make up     install, then run `whistle up` (embedded Kafka, worker, API on 127.0.0.1:6066)
#   make test   install, then check the house rules and run the whole test suite but the cluster
#               chaos module
#   make chaos  the cluster chaos module: three Kafka brokers on this machine, two workers (one
#               in a network namespace: needs root and iproute2), five faults; about 3-5 minutes
#   make lint   the house rules alone: ruff, mypy on the packages, import-linter's contracts
# .ci/run runs `make test chaos`, the README's test command.

PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
# the console's browser test drives Debian's Chromium; a CJK font makes its Chinese legible
CHROMIUM := /usr/bin/chromium
# the deployment tests check deploy/prometheus with Debian's promtool
PROMTOOL := /usr/bin/promtool
# `whistle bench --peer alertmanager` and its test run Debian's Alertmanager
ALERTMANAGER := /usr/bin/prometheus-alertmanager
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)

.PHONY: up test chaos lint install java browser promtool alertmanager netns clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

java:
	@if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then \
		echo "installing a JDK 17 and Maven for the embedded Apache Kafka"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			openjdk-17-jdk-headless maven; \
	fi

browser:
	@if [ ! -x $(CHROMIUM) ] || ! fc-list :lang=zh family 2>/dev/null | grep -q .; then \
		echo "installing Chromium and a CJK font for the console's browser test"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk; \
	fi

promtool:
	@if [ ! -x $(PROMTOOL) ]; then \
		echo "installing Prometheus (promtool) for the deployment tests"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; \
	fi

alertmanager:
	@if [ ! -x $(ALERTMANAGER) ]; then \
		echo "installing Alertmanager for the bench's peer comparison"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-alertmanager; \
	fi

netns:
	@if ! command -v ip >/dev/null; then \
		echo "installing iproute2 for the cluster chaos test's second host (a network namespace)"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iproute2; \
	fi

up: $(STAMP) java
	$(VENV)/bin/whistle up $(ARGS)

# The packages and the tests; layers and circles in pyproject.toml's [tool.importlinter].
lint: $(STAMP)
	$(VENV)/bin/ruff check schemas playbooks agents streams tests deploy
	$(VENV)/bin/mypy schemas playbooks agents streams
	$(VENV)/bin/lint-imports

test: lint java browser promtool alertmanager
	$(VENV)/bin/pytest -m "not cluster" $(ARGS)

chaos: $(STAMP) java netns
	$(VENV)/bin/pytest -s -m cluster tests/chaos/test_cluster.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
