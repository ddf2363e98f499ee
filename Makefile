# Two commands matter: `make demo` and `make test`. Both set up .venv themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# The CPU wheel by default; e.g. `make TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"` on a GPU machine.
TORCH_SPEC ?= torch==2.13.0
PACKAGES := $(notdir $(patsubst %/package.xml,%,$(wildcard src/*/package.xml)))
SETUP_FILES := $(foreach p,$(PACKAGES),src/$(p)/setup.py src/$(p)/package.xml)
STAMP := $(VENV)/.installed

# Every process of the stack and its tests loads the stack's Fast DDS transport profile itself (see README).
export SDL_VIDEODRIVER ?= dummy
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup demo lint test test-fast fuzz mutation bench soak update-refs colcon-build clean

setup: $(STAMP)

$(STAMP): requirements.txt Makefile $(SETUP_FILES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-build-isolation --no-deps $(foreach p,$(PACKAGES),-e src/$(p))
	touch $@

demo: $(STAMP)
	$(VENV)/bin/avstack demo

# ruff.toml's rules over src/ and test/; `make test` stops on any finding before running a test.
lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest test

# The unit tests only (marker `unit`: no DDS, no simulator, nothing slow; test/conftest.py assigns the markers).
test-fast: lint
	$(PY) -m pytest -q -m unit test

# The property tests (those using support.examples) with FUZZ_FACTOR x as many random examples as CI's fixed ones;
# a failing example is printed as a regression test to paste. FUZZ_FACTOR=50 make fuzz digs deeper.
FUZZ_FACTOR ?= 10
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz FUZZ_FACTOR=$(FUZZ_FACTOR) $(PY) -m pytest -q $(shell grep -rl 'from support import.*examples' test --include='test_*.py')

# mutmut over the critic's checks, collision sweep and state machine, the planner's mode selection and the
# stack_common conversions, each against its fast unit tests; prints killed / total per module (docs/testing.md).
mutation: $(STAMP)
	$(PY) test/mutation.py

bench: $(STAMP)
	$(VENV)/bin/avstack bench --out bench --force

soak: $(STAMP)
	$(VENV)/bin/avstack bench --soak --duration 600 --out bench --force

# After a change that alters the stack's outputs on purpose (e.g. a new checkpoint): commit the new references.
update-refs: $(STAMP)
	$(PY) -m avstack.offline.process_replay update test/references/process_replay.json

clean:
	rm -rf $(VENV) build install log .pytest_cache
