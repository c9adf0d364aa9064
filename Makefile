# Two entry points (see README): `make demo` and `make test`. Everything else is what they need.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export CONTAINERS_CONF := $(CURDIR)/images/containers.conf

.PHONY: demo test venv system-deps image lint clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# podman + runc run the node containers; debootstrap builds their image.
system-deps:
	@if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null; \
	fi

image: system-deps
	images/node/build.sh

lint: venv
	$(VENV)/bin/ruff check wrapper tests bench
	$(VENV)/bin/ruff format --check wrapper tests bench
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/ansible-lint

# Three pytest runs, each keeping its stories in order: the local cloud's from the start (its
# minutes are mostly spent waiting on its nodes' timers and boots) beside the emulator's (one
# Ansible run after another, two modules side by side), then Molecule beside the local cloud's
# rest. The local cloud's output follows.
PYTEST := PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/pytest
test: venv image lint
	mkdir -p build
	$(PYTEST) -m slow --ignore=tests/test_molecule.py --basetemp=/tmp/awsc-tests-local >build/local-cloud-tests.log 2>&1 & \
	local=$$!; \
	$(PYTEST) -m "not slow" -n 2 --dist loadscope --basetemp=/tmp/awsc-tests-emulator; emulator=$$?; \
	$(PYTEST) -m slow tests/test_molecule.py --basetemp=/tmp/awsc-tests-molecule; molecule=$$?; \
	wait $$local; local=$$?; \
	echo "== The local cloud (ran beside the others)"; cat build/local-cloud-tests.log; \
	exit $$((emulator || molecule || local))

demo: venv image
	scripts/demo

clean:
	rm -rf $(VENV) build dist *.egg-info
