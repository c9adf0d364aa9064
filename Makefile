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

# The emulator tests are one Ansible run after another: two modules side by side use both cores.
# Then the podman ones: Molecule beside the local cloud (xdist groups), which spends minutes
# waiting on its guard's timers and on apt, so each fills the other's idle time.
test: venv image lint
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/pytest -m "not slow" -n 2 --dist loadscope
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/pytest -m slow -n 2 --dist loadgroup

demo: venv image
	scripts/demo

clean:
	rm -rf $(VENV) build dist *.egg-info
