# The two commands a newcomer needs: `make demo` and `make test`. Both set up everything first.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

.PHONY: bootstrap demo test test-unit bench stack-up stack-down clean

bootstrap:  ## uv, Java/Maven if missing, and the venv from uv.lock
	@scripts/bootstrap.sh

demo: bootstrap  ## stack up, data, training pipeline, replay a day through Kafka, summary of the scores
	$(UV) run fraud demo

test: bootstrap  ## every test; integration tests start their own Kafka broker
	$(UV) run pytest

test-unit: bootstrap  ## fast tests only, no broker
	$(UV) run pytest tests/unit

bench: bootstrap  ## benchmarks, each beside its baseline
	@command -v wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)
	$(UV) run fraud bench produce
	$(UV) run fraud bench data
	$(UV) run fraud bench predictor
	$(UV) run fraud bench pipeline --sizes 100000
	$(UV) run fraud bench stream
	$(UV) run fraud bench chaos
	$(UV) run fraud bench redeploy
	$(UV) run fraud bench soak

stack-up: bootstrap
	$(UV) run fraud stack up

stack-down:
	$(UV) run fraud stack down

clean: stack-down  ## remove runtime state (data/), keep the jar cache
	rm -rf data
