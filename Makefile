# The two commands: `make demo` (the whole stack on a private PostgreSQL) and `make test`.
# Both install what is missing (Debian packages, the venv) and are quick when everything is there.
SHELL := /bin/bash
VENV := .venv
APT_PACKAGES := postgresql freeradius freeradius-python3 freeradius-postgresql freeradius-utils pmacct softflowd \
                poppler-utils zbar-tools fonts-dejavu-core chromium chromium-driver \
                nftables iptables opennds dnsmasq-base busybox curl iproute2 \
                patroni etcd-server pgbouncer

.PHONY: setup demo demo-stop ha-lab ha-lab-stop test lint bench deb

setup:
	@scripts/ensure-system $(APT_PACKAGES)
	@scripts/ensure-venv $(VENV)

demo: setup
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/demo

demo-stop:
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/demo-stop

ha-lab: setup
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/ha-lab

ha-lab-stop:
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/ha-lab-stop

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# DEB=1 (the default, and CI's): the suite also builds the Debian package (in the background while the other
# tests run) and installs it on this machine (tests/e2e/test_deb.py). `make test DEB=0` leaves that out.
DEB ?= 1
test: lint
	RLM_HOTSPOT_DEB_TEST=$(DEB) $(VENV)/bin/python -m pytest

bench: setup
	$(VENV)/bin/python bench/cards_generate.py

# The Debian package, built with debhelper + dh-virtualenv from a clean copy of the tracked files (so that
# nothing of the checkout's .venv or var/ gets in): dist/rlm-hotspot_<version>_<arch>.deb. docs/operations.md.
DEB_OUT ?= dist
DEB_BUILD_PACKAGES := debhelper dh-virtualenv python3-dev python3-venv python3-psycopg2 dpkg-dev fakeroot
deb:
	@scripts/ensure-system $(DEB_BUILD_PACKAGES)
	@scripts/build-deb $(DEB_OUT)
