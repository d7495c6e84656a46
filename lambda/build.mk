# sam build runs these targets for every function and for AlpacaLayer (BuildMethod: makefile), from
# lambda/<architecture>/Makefile, which sets LAMBDA_ARCH (the template's ContextPath names the architecture, so the
# harness's x86_64 copy of the template builds for x86_64). The packages are pinned completely by ./dev lock
# (requirements.txt next to the code), so --no-deps installs exactly them.
#
# Every .py is compiled by python3.13 (the runtime's Python) with unchecked-hash bytecode: Lambda's /var/task is
# read-only, so without it every cold start compiles pollen and its packages from source; an unchecked hash
# does not depend on the files' mtimes, which the zip does not keep.
PYTHON ?= python3.13
PIP_PLATFORMS = $(foreach tag,manylinux2014 manylinux_2_28 manylinux_2_34,--platform $(tag)_$(LAMBDA_ARCH_TAG))
LAMBDA_ARCH_TAG = $(if $(filter arm64,$(LAMBDA_ARCH)),aarch64,$(LAMBDA_ARCH))
PIP_INSTALL = $(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps --no-compile \
	--only-binary=:all: $(PIP_PLATFORMS) --implementation cp --python-version 3.13

define compile
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13) and "bytecode needs python3.13")'
	$(PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash "$(1)" >/dev/null
endef

# The functions: the packages of src/requirements.txt, then pollen (run in a copy of src/, the CodeUri).
FUNCTIONS = SyncAssetsFunction SyncEarningsFunction SchedulePollenationFunction PollenateFunction StreamSyncFunction
$(addprefix build-,$(FUNCTIONS)):
	$(PIP_INSTALL) --target "$(ARTIFACTS_DIR)" -r requirements.txt
	rm -rf "$(ARTIFACTS_DIR)/bin"
	cp -R pollen "$(ARTIFACTS_DIR)/"
	find "$(ARTIFACTS_DIR)/pollen" -name __pycache__ -prune -exec rm -rf {} +
	$(call compile,$(ARTIFACTS_DIR))

# alpaca-py and its data stack, for SyncAssets only (run in a copy of layers/alpaca/).
build-AlpacaLayer:
	$(PIP_INSTALL) --target "$(ARTIFACTS_DIR)/python" -r requirements.txt
	rm -rf "$(ARTIFACTS_DIR)/python/bin"
	$(call compile,$(ARTIFACTS_DIR)/python)
