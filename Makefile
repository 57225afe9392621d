# The two set-up commands: `make demo` and `make test`. Both install what they need first
# (Debian's libcoap3-bin, chromium, a JDK and Maven, a Python 3.11 venv with the project and test extras);
# `make test` also fetches the JVM test peers' jars from Maven Central into a cache, once (`make jars`).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3.11
ARGS ?=
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: install apt-deps jars demo test check lint unit docs fuzz bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# libcoap3-bin: coap-server/client-{notls,openssl,gnutls}; a JDK 17 runs the JVM peers (Apache Kafka, Kafka
# Connect with stream-reactor, Californium, compiled once with javac) and its keytool makes the JKS stores of
# the DTLS tests; Maven fetches the peers' jars; Debian's chromium is the stats-page test's browser.
apt-deps:
	@missing=""; \
	command -v coap-server-openssl >/dev/null 2>&1 || missing="$$missing libcoap3-bin"; \
	command -v javac >/dev/null 2>&1 || missing="$$missing openjdk-17-jdk-headless"; \
	command -v mvn >/dev/null 2>&1 || missing="$$missing maven"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	[ -z "$$missing" ] || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; }

install: apt-deps $(VENV)/.installed

# The JVM peers' jars (streamapp_harness/jvm/*/pom.xml) from Maven Central into ~/.cache/streamapp/jvm,
# and stream-reactor's CoAP sink jar built there from its vendored source (Central lacks it);
# a second run finds them there and starts no Maven and no compiler.
jars: install
	$(PY) -m streamapp_harness jars

demo: install
	$(PY) -m streamapp_harness demo $(ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

unit: install
	$(PY) -m pytest tests/unit -q

# The everyday loop, within 3 minutes on a 2-core machine: `make lint`, then the unit tests and the
# integration tests except those marked `slow` (the harness's Kafka broker, a lossy-link soak, Californium's
# interop, Apicurio as a Confluent stand-in), and none of the end-to-end tests (each starts workers on Kafka).
# `make test` runs everything, the slow tests included: run it before a merge (CI does).
check: lint jars
	$(PY) -m pytest tests/unit tests/integration -q -m "not slow" $(PYTEST_ARGS)

# The configuration reference in docs/configuration.md, generated from KEYS (streamapp/config/keys.py) by
# tools/configuration_doc.py; only the part between its markers is rewritten. A unit test fails when the
# committed file is out of date.
docs: install
	$(PY) -m tools.configuration_doc

test: install lint jars
	$(PY) -m pytest -v --durations=15 $(PYTEST_ARGS)

# The hostile-input properties (tests/fuzz/) with many fresh examples each (FUZZ_EXAMPLES, 20000 by default);
# `make test` runs them with hypothesis' bounded, derandomized CI profile.
fuzz: install
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest tests/fuzz -q

# Every benchmark in bench/, each against its in-run baseline; results appended to bench/results.json.
bench: install
	@status=0; for f in bench/bench_*.py; do \
	  $(PY) -m bench.$$(basename $$f .py) $(BENCH_ARGS) || status=1; \
	done; exit $$status

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache tests/artifacts
