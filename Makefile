# Loopline: `make run` starts everything, `make test` runs the tests. Both set up what is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(PYTHON) -m uv
STAMP  := $(VENV)/.loopline-installed

.PHONY: install bytecode prometheus oip-clients browser run stop status test test-fast lint audit bench lock clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@echo "==> Installing Loopline into $(VENV) (first time: about a minute)"
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check uv
	@test -x $(BIN)/python || $(UV) venv --quiet --python $(PYTHON) $(VENV)
	@$(UV) pip install --python $(BIN)/python --compile-bytecode --require-hashes -r requirements.lock
	@$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

# The package is installed editable, so its own modules get no bytecode from the install, and
# this environment sets PYTHONDONTWRITEBYTECODE: without this every DAG-file parse compiles
# them again (~30 ms here). Only changed files are recompiled. The image's `pip install .`
# compiles them itself.
bytecode: install
	@$(BIN)/python -m compileall -q include dags

# Prometheus for the stack and its test: Debian's package unpacked into the project (no root,
# no install). Soft: where it cannot be fetched the stack runs without it and says so (CI's
# LOOPLINE_TEST_REQUIRE_PROMETHEUS makes the Prometheus test fail instead of skipping).
PROMETHEUS_DIR := .loopline/tools/prometheus
prometheus:
	@test -x $(PROMETHEUS_DIR)/usr/bin/prometheus || command -v prometheus >/dev/null 2>&1 || { \
		echo "==> Fetching Prometheus (Debian's package) into $(PROMETHEUS_DIR)"; \
		tmp=$$(mktemp -d) && (cd $$tmp && apt-get download -qq prometheus) \
		&& mkdir -p $(PROMETHEUS_DIR) && dpkg-deb -x $$tmp/prometheus_*.deb $(PROMETHEUS_DIR) \
		|| echo "!!  could not fetch Prometheus (apt-get download prometheus); the stack runs without it: install one on PATH"; \
		rm -rf $$tmp; }

# The Open Inference Protocol clients nobody here wrote (tritonclient HTTP and gRPC, the kserve
# SDK), for the serving tests: in a virtualenv of their own, since their pins (protobuf<7, their
# own fastapi/pandas) conflict with Airflow's set, and kserve's and tritonclient's generated
# `inference` stubs cannot be imported in one process anyway. Soft like Prometheus: where the
# index cannot be reached those tests skip (LOOPLINE_TEST_REQUIRE_OIP_CLIENTS makes them fail).
OIP_CLIENTS_DIR   := .loopline/tools/oip-clients
OIP_CLIENTS_STAMP := $(OIP_CLIENTS_DIR)/.loopline-installed
OIP_CLIENTS_PINS  := 'tritonclient[http,grpc]==2.73.0' 'kserve==0.21.0'
oip-clients: $(OIP_CLIENTS_STAMP)

$(OIP_CLIENTS_STAMP): requirements-oip-clients.lock
	@echo "==> Installing the OIP clients into $(OIP_CLIENTS_DIR) (first time: under a minute)"
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check uv
	@{ test -x $(OIP_CLIENTS_DIR)/bin/python || $(UV) venv --quiet --python $(PYTHON) $(OIP_CLIENTS_DIR); } \
		&& $(UV) pip install --quiet --python $(OIP_CLIENTS_DIR)/bin/python --compile-bytecode \
			--require-hashes -r requirements-oip-clients.lock \
		&& touch $@ \
		|| echo "!!  could not install the OIP clients into $(OIP_CLIENTS_DIR); their tests skip"

# Chromium for the browser tests (Playwright drives it; its own browser download is not
# used): Debian's package, installed where it is missing and apt-get may install (root). Soft
# like Prometheus: without it those tests skip (LOOPLINE_TEST_REQUIRE_BROWSER makes them fail).
browser:
	@test -x /usr/bin/chromium || { \
		echo "==> Installing Chromium (Debian's package) for the browser tests (first time: a minute)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "!!  could not install chromium (apt-get install chromium); the browser tests skip"; }

run: install bytecode prometheus ## start S3, Kafka broker, Airflow and Prometheus; seed demo data
	@$(BIN)/loopline stack up

stop:                       ## stop everything (S3 objects are saved under .loopline/)
	@if [ -x $(BIN)/loopline ]; then $(BIN)/loopline stack down; fi

status:
	@$(BIN)/loopline stack status

# The unit tier first, on its own: its guard against heavy imports is whole only in a run of its
# own (tests/unit/conftest.py), and a broken unit test fails the run in seconds. Then the other
# tiers across the cores (pytest-xdist): each worker starts its own S3 server and broker when
# first asked; --dist loadscope keeps each module on one worker, so that a module's own server
# (the local stack, a Spark cluster) starts once; the modules with most tests go first.
# (--dist loadgroup would be finer, but pytest-xdist 3.8 cannot rename pytest 9's node ids:
# its groups are ignored.)
TEST_WORKERS ?= auto
test: install bytecode prometheus oip-clients browser ## every test, the real servers included
	@$(BIN)/pytest tests/unit
	@$(BIN)/pytest --ignore=tests/unit -n $(TEST_WORKERS) --dist loadscope

test-fast: install          ## the unit tier only: pure logic, in seconds
	@$(BIN)/pytest tests/unit

lint: install
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy  # [tool.mypy] in pyproject.toml: include/loopline, cache in .mypy_cache/

# Known vulnerabilities in the locked packages, from PyPI's advisory data (pip-audit). Where
# that data cannot be reached (a mirror without PyPI's JSON API) each package is listed as not
# audited and the run passes: the count below says so.
audit: install              ## pip-audit the lock (hashes required)
	@$(BIN)/pip-audit --requirement requirements.lock --require-hashes --disable-pip \
		--progress-spinner off > .audit.log 2>&1; code=$$?; \
		grep -v "could not be audited" .audit.log | grep -v "^WARNING" ; \
		echo "pip-audit: $$(grep -c 'could not be audited' .audit.log) package(s) could not be audited (see .audit.log)"; \
		exit $$code

bench: install bytecode     ## benchmarks, as ratios against in-run baselines
	@$(BIN)/python -m bench

lock:                       ## re-resolve requirements.lock from pyproject.toml
	@$(UV) pip compile pyproject.toml --extra local --extra test --python-version 3.11 \
		--generate-hashes --quiet -o requirements.lock
	@# The GPU image's lock: requirements.lock plus TensorFlow's CUDA wheels, nothing else moved.
	@$(UV) pip compile pyproject.toml --extra local --extra test --extra gpu --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 -c requirements.lock --generate-hashes --quiet \
		-o requirements-gpu.lock
	@# The OIP clients' own lock (make oip-clients): resolved apart from Airflow's set.
	@printf '%s\n' $(OIP_CLIENTS_PINS) | $(UV) pip compile - --python-version 3.11 \
		--generate-hashes --quiet -o requirements-oip-clients.lock

clean: stop
	rm -rf .loopline
