# Two commands on a fresh machine: `make demo` and `make test`. Both build .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lab venv bench-venvs bench clean-venv arm64-tools

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m workbench demo

test: $(STAMP) arm64-tools
	$(BIN)/python -m pytest --nbval-lax

# The ARM64 target's cross compiler, emulator and llvm-mca (Debian packages). Where apt cannot install
# them (no root, no network) the ARM64 tests skip and say why; nothing else depends on them.
arm64-tools:
	@command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64 >/dev/null && \
	  command -v llvm-mca >/dev/null || \
	  { SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	    ($$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq gcc-aarch64-linux-gnu qemu-user llvm) || \
	    echo "arm64-tools: could not install gcc-aarch64-linux-gnu, qemu-user and llvm; the ARM64 tests will skip"; }

# Peers for `python -m workbench bench peers`: the bench extra in .venv, and two side venvs for
# packages that cannot live beside torch 2.14 / numpy 2 (see workbench/bench/peers.py).
bench-venvs: $(STAMP)
	$(BIN)/python -m pip install -e '.[test,bench]'
	test -x .cache/venv-deepsparse/bin/python || ($(PYTHON) -m venv .cache/venv-deepsparse && \
		.cache/venv-deepsparse/bin/pip install 'deepsparse==1.8.0' 'numpy<2')
	test -x .cache/venv-litert/bin/python || ($(PYTHON) -m venv .cache/venv-litert && \
		echo $(CURDIR)/$(VENV)/lib/python3.11/site-packages \
		> .cache/venv-litert/lib/python3.11/site-packages/zz_main.pth && \
		.cache/venv-litert/bin/pip install 'litert-torch==0.10.0')

bench: bench-venvs
	$(BIN)/python -m workbench bench peers

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

clean-venv:
	rm -rf $(VENV)
