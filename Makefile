# The README's two commands are `make run` and `make test`; both bootstrap .venv themselves.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= config/local

.PHONY: run test lint typecheck pytest bench clean image image-deps image-boot test-image test-image-arm64

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "plantd needs Python >= 3.11 (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,all]'
	@touch $@

## run: the appliance stack on this machine with simulated devices (config/local; Ctrl-C stops)
run: $(STAMP)
	$(BIN)/plant --config $(CONFIG) up

## test: everything CI checks — lint, format, types, the whole pytest suite, which builds the
## amd64 appliance image and boots it under QEMU (root; deselect: PYTEST_ARGS="-m 'not image'")
test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Two workers per core: most tests wait on real processes, sockets and servers rather than
# compute (on 2 cores, -m 'not image' took 8 min 24 s on 2 workers, 5 min 15 s on 4).
# tests/_parallel.py says how the tests are shared out; PYTEST_PARALLEL= (empty) runs them in
# one process.
PYTEST_WORKERS ?= $(shell echo $$(( $$(nproc) * 2 )))
PYTEST_PARALLEL ?= -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder

# As root (CI is), the image tests' Debian packages are installed first; as another user those
# tests say what is missing.
pytest: $(STAMP)
	@if [ "$$(id -u)" = 0 ]; then image/deps.sh; tests/deps.sh; fi
	$(BIN)/pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

## image: build an appliance image, IMAGE=amd64 (default) or rpi-arm64, into image/out/IMAGE
IMAGE ?= amd64
image: $(STAMP)
	image/deps.sh $(if $(filter rpi-arm64,$(IMAGE)),--arm64)
	$(BIN)/python image/build.py build $(IMAGE) --compress

## image-deps: the Debian packages that building and boot-testing the images need (root)
image-deps:
	image/deps.sh --arm64

## image-boot: boot image/out/amd64 under QEMU; prints how to log in over SSH (Ctrl-C stops)
image-boot: $(STAMP)
	$(BIN)/python image/qemu.py image/out/amd64

## test-image: only the image tests (build, boot under QEMU, reboot, power cut)
test-image: $(STAMP)
	image/deps.sh
	$(BIN)/pytest -m image $(PYTEST_ARGS)

## test-image-arm64: build the Raspberry Pi image and check its contents (slow: qemu-user)
test-image-arm64: $(STAMP)
	image/deps.sh --arm64
	PLANTD_IMAGE_ARM64=1 $(BIN)/pytest tests/image/test_contents.py -k raspberry $(PYTEST_ARGS)

## bench: benchmarks that print figures and ratios (not part of `make test`; ~25 minutes)
BENCHES ?= mdp_broker security state modbus opcua sinks historian_writer dataplane observability \
	control proxy hotplug cli_start
bench: $(STAMP)
	@for b in $(BENCHES); do echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py || exit 1; echo; done

clean:
	rm -rf $(VENV) .plantd .mypy_cache .ruff_cache .pytest_cache build *.egg-info image/out
