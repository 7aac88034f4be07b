# Two commands do all the set-up: `make run` serves the app, `make test` runs the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The bench's Node peer (bench/peers/node), installed by npm from its lockfile.
NODE_PEER := bench/peers/node/node_modules/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
# Refuse oversized websocket frames in the server, before the app reads them
# (keep equal to CHAT_MAX_FRAME_BYTES).
DAPHNE_LIMITS := --websocket-max-message-size 65536 --websocket-max-frame-size 65536 --ping-interval 20 --ping-timeout 20

.PHONY: run test migrate clean bench soak

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when a requirements file changes.
$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

migrate: $(VENV)/.installed
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py migrate --noinput

run: migrate
	DEBUG=$${DEBUG:-1} $(BIN)/daphne -b $(HOST) -p $(PORT) $(DAPHNE_LIMITS) myproject.asgi:application

# The bench's smoke test (chat/tests/test_bench_smoke.py) runs the outside peers too: their servers come with the suite.
test: $(VENV)/.bench-installed $(NODE_PEER)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The fan-out benchmark (README "Benchmark"): needs redis-server, and PostgreSQL for the rooms scenario.
$(VENV)/.bench-installed: requirements-bench.txt $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -r requirements-bench.txt
	touch $@

# The Node ws peer, from its lockfile (ws pinned exactly); reinstalled when the lockfile changes.
# Without npm the peer is left out (its smoke test then skips, except under CI=true): make test needs only Python.
$(NODE_PEER): bench/peers/node/package.json bench/peers/node/package-lock.json
	@if command -v npm >/dev/null; then npm ci --prefix bench/peers/node --no-audit --no-fund && touch $@; \
	else echo "npm not found: the bench's Node peer is not installed (.ci/run installs npm)"; fi

bench: $(VENV)/.bench-installed $(NODE_PEER)
	$(BIN)/python -m bench $(BENCH_ARGS)

# Join, chat and leave in a loop against two daphne processes and Redis (needs redis-server):
# make soak SOAK_ARGS='--duration 3600'. Reports gaps and duplicates (must be 0), memory and Redis keys.
soak: $(VENV)/.installed
	$(BIN)/python -m soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache staticfiles
