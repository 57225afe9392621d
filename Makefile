# The two set-up commands: `make demo` and `make test`. Both install what they need first
# (Debian's libcoap3-bin, a JRE for keytool and chromium, a Python 3.11 venv with the project and test extras).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3.11
ARGS ?=
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: install apt-deps demo test lint unit fuzz bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# libcoap3-bin: coap-server/client-{notls,openssl,gnutls}; a JRE's keytool makes the JKS keystores of the DTLS
# tests; Debian's chromium is the headless browser of the stats-page test; socat is the TLS terminator in
# front of the test broker (Kafka over TLS).
apt-deps:
	@missing=""; \
	command -v coap-server-openssl >/dev/null 2>&1 || missing="$$missing libcoap3-bin"; \
	command -v keytool >/dev/null 2>&1 || missing="$$missing openjdk-17-jre-headless"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v socat >/dev/null 2>&1 || missing="$$missing socat"; \
	[ -z "$$missing" ] || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; }

install: apt-deps $(VENV)/.installed

demo: install
	$(PY) -m streamapp_harness demo $(ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

unit: install
	$(PY) -m pytest tests/unit -q

test: install lint
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
	rm -rf $(VENV) .pytest_cache tests/artifacts
