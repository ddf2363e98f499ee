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

.PHONY: setup demo test bench soak update-refs colcon-build clean

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

test: $(STAMP)
	$(PY) -m pytest test

bench: $(STAMP)
	$(VENV)/bin/avstack bench --out bench --force

soak: $(STAMP)
	$(VENV)/bin/avstack bench --soak --duration 600 --out bench --force

# After a change that alters the stack's outputs on purpose (e.g. a new checkpoint): commit the new references.
update-refs: $(STAMP)
	$(PY) -m avstack.process_replay update test/references/process_replay.json

clean:
	rm -rf $(VENV) build install log .pytest_cache
