# Rollcall: `make run` sets everything up and starts the server; `make test` runs every test.
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/rollcall/target
export ROLLCALL_FIXTURES_DIR ?= $(CURDIR)/fixtures
# Tests find the models here whatever data dir they use.
export ROLLCALL_MODELS_DIR ?= $(CURDIR)/data/models
CARGO ?= cargo

.PHONY: run build models fixtures web test-tools check test test-postgres test-scale-out test-redis bench eval-calibration clean-data

run: models web
	$(CARGO) run --release --bin rollcall -- serve

build: web
	$(CARGO) build --release --bin rollcall

models:
	@./scripts/fetch-models.sh

fixtures:
	@./scripts/fetch-fixtures.sh

# Front-end packages (Swagger UI for /api/docs), embedded into the binary at build time.
web: web/node_modules/.package-lock.json
web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error

check: web
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --quiet

# Programs the tests open reports with (poppler-utils).
test-tools:
	@./scripts/ensure-test-tools.sh

test: models fixtures web test-tools check
	$(CARGO) nextest run --workspace --no-fail-fast

# The storage and API suites, and two server processes on one database, against
# PostgreSQL (needs ROLLCALL_TEST_POSTGRES_URL).
test-postgres: models fixtures web test-tools
	@test -n "$$ROLLCALL_TEST_POSTGRES_URL" || { echo "set ROLLCALL_TEST_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/test"; exit 2; }
	# --workspace keeps the features (and so the build) that `make test` made.
	$(CARGO) nextest run --workspace --no-fail-fast -E 'package(rollcall-server) | (package(rollcall) & (binary(processes) | binary(cameras)))'

# Two API instances and two workers as separate processes on PostgreSQL, RabbitMQ and
# Redis (needs ROLLCALL_TEST_AMQP_URL, ROLLCALL_TEST_REDIS_URL and, for PostgreSQL,
# ROLLCALL_TEST_POSTGRES_URL; rabbitmqctl closes the broker's connections mid-test).
test-scale-out: models fixtures web
	@test -n "$$ROLLCALL_TEST_AMQP_URL" || { echo "set ROLLCALL_TEST_AMQP_URL, e.g. amqp://guest:guest@127.0.0.1:5672/%2f"; exit 2; }
	@test -n "$$ROLLCALL_TEST_REDIS_URL" || { echo "set ROLLCALL_TEST_REDIS_URL, e.g. redis://127.0.0.1:6379"; exit 2; }
	$(CARGO) nextest run --workspace --no-fail-fast -E 'package(rollcall) & binary(scale_out)'

# The tests of the state API instances share through Redis (rate limits, live events,
# health), against the Redis at ROLLCALL_TEST_REDIS_URL (default: the local one). Each test
# keeps to a key prefix of its own.
test-redis: models fixtures web test-tools
	ROLLCALL_TEST_REDIS_URL=$${ROLLCALL_TEST_REDIS_URL:-redis://127.0.0.1:6379} \
	  $(CARGO) nextest run --workspace --no-fail-fast -E 'test(/redis/)'

bench: models fixtures
	$(CARGO) bench -p rollcall-face
