# pyposert -- the two commands a fresh machine needs:
#   make demo   build the runtime (no torch) and run the demo on the shipped default model
#   make test   build everything (runtime, training, export, tests) and run the tests
# Both create .venv and install what they need into it from scratch.
#
# GPU-less machine: `make test TORCH_INDEX=https://download.pytorch.org/whl/cpu` installs the
# CPU-only torch first (about 190 MB instead of the CUDA build's ~1.5 GB of nvidia-* packages).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
BUILD_DEPS := "scikit-build-core>=0.10" "pybind11>=2.12" ninja cmake
TORCH_VERSION := 2.13.0
TORCH_INDEX ?=
STAMP := $(VENV)/.pyposert-built
RUNTIME_STAMP := $(VENV)/.pyposert-runtime
NATIVE_SOURCES := $(wildcard csrc/*) CMakeLists.txt pyproject.toml

.PHONY: all build test demo bench bench-all gpu-check clean

all: build

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# The editable install builds pyposert._C (CUDA kernels too where nvcc exists) into
# build/, and is redone whenever a native source or the build files change.
# Runtime only (make demo): numpy, OpenCV, ONNX Runtime, tqdm -- no torch.
$(RUNTIME_STAMP): $(NATIVE_SOURCES) | $(PY)
	$(PIP) install -q $(BUILD_DEPS)
	$(PIP) install -q --no-build-isolation -e ".[runtime]"
	touch $@

# Everything (make test, make build): runtime + training/export (torch $(TORCH_VERSION)) + tests.
$(STAMP): $(NATIVE_SOURCES) | $(PY)
	$(PIP) install -q $(BUILD_DEPS)
	$(if $(TORCH_INDEX),$(PIP) install -q "torch==$(TORCH_VERSION)" --index-url $(TORCH_INDEX))
	$(PIP) install -q --no-build-isolation -e ".[runtime,train,test]"
	$(PY) -c "import pyposert, json; print(json.dumps(pyposert.build_info(), indent=1))"
	touch $@ $(RUNTIME_STAMP)

build: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests -q

demo: $(RUNTIME_STAMP)
	$(PY) -m pyposert demo

# Benchmarks: every alternative side by side in one run; REPORT.md and plots from that run only.
# bench-all adds the paper-size (256 x 176) models (slow on a CPU).
bench: $(STAMP)
	$(PY) -m pytest benchmarks -q -m "not slow" --benchmark-json=benchmarks/results.json
	$(PY) benchmarks/report.py benchmarks/results.json -o benchmarks/REPORT.md

bench-all: $(STAMP)
	$(PY) -m pytest benchmarks -q --benchmark-json=benchmarks/results.json
	$(PY) benchmarks/report.py benchmarks/results.json -o benchmarks/REPORT.md

# On a machine with an NVIDIA GPU whose system python3 has torch with CUDA: build in place
# (no venv), run the CUDA tests, the whole suite crash-tolerantly, the GPU benchmarks and
# pyposert bench on a GPU bundle; logs and JSON in GPU_CHECK_OUT (default gpu-check/).
gpu-check:
	bash benchmarks/gpu_check.sh

clean:
	rm -rf build $(VENV) .pytest_cache .benchmarks
