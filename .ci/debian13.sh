#!/usr/bin/env bash
# Second and third toolchains for CI: build pyposert in a Debian 13 chroot (Python 3.13, the
# newest numpy and pybind11 from PyPI) with GCC 13.3 (the compiler of the host where the
# module once crashed) and with GCC 14, and run the tests there without torch (the runtime
# subset: every test that needs torch skips itself; GCC 13 runs the native-core tests).
#
# Why: the native module once crashed on its first call on a host whose compiler, Python
# and C++ runtime differed from the CI machine's (tests/test_native_runtime.py says how).
# One toolchain cannot catch that class of bug; two different ones can.
#
# Needs root (debootstrap, chroot, bind mounts) and Debian's package registry. The chroot is
# kept in POSERT_CHROOT (default /var/cache/pyposert-ci/debian13) and reused by later runs;
# the source is copied in fresh every time. Usage: bash .ci/debian13.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=${POSERT_CHROOT:-/var/cache/pyposert-ci/debian13}
SUITE=trixie
# Pinned, so the run does not move under us; the newest releases that have Python 3.13 wheels.
PIP_PACKAGES=(numpy==2.5.2 pybind11==3.1.0 "scikit-build-core>=0.10" cmake ninja pytest
              onnx onnxruntime "opencv-contrib-python>=4.10,<4.12" tqdm av)

if [ "$(id -u)" != 0 ]; then
  echo "debian13.sh: needs root (debootstrap, chroot and mounts); run it as root or in CI" >&2
  exit 2
fi

log() { printf '[debian13] %s\n' "$*"; }

# The Debian mirror this machine's apt already uses (so no host name is written here).
mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
if [ -z "$mirror" ]; then
  mirror=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
fi
[ -n "$mirror" ] || { echo "debian13.sh: no Debian mirror found in /etc/apt" >&2; exit 2; }

# Debian packages in the chroot; a change here is installed into an existing chroot too.
DEB_PACKAGES="python3 python3-venv python3-dev g++ g++-13 make binutils ca-certificates libgomp1 libgl1 libglib2.0-0t64"

if [ ! -f "$ROOT/.pyposert-ready" ]; then
  if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null
  fi
  log "creating the Debian 13 chroot in $ROOT (first run only)"
  rm -rf "$ROOT"
  mkdir -p "$ROOT"
  debootstrap --variant=minbase --include="${DEB_PACKAGES// /,}" \
    "$SUITE" "$ROOT" "$mirror" >"$ROOT.debootstrap.log" 2>&1 \
    || { tail -20 "$ROOT.debootstrap.log"; exit 1; }
  touch "$ROOT/.pyposert-ready"
fi

# What the chroot needs from the host: name resolution and the CA bundle this network's TLS
# is signed with (pip verifies against it).
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/host-ca-certificates.crt"

if [ "$(cat "$ROOT/.pyposert-packages" 2>/dev/null)" != "$DEB_PACKAGES" ]; then
  log "installing $DEB_PACKAGES"
  chroot "$ROOT" /bin/sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $DEB_PACKAGES" \
    >"$ROOT.apt.log" 2>&1 || { tail -20 "$ROOT.apt.log"; exit 1; }
  echo "$DEB_PACKAGES" >"$ROOT/.pyposert-packages"
fi

mounted=()
cleanup() {
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
for fs in proc sys dev; do
  mkdir -p "$ROOT/$fs"
  if ! mountpoint -q "$ROOT/$fs"; then
    mount --rbind "/$fs" "$ROOT/$fs"
    mounted+=("$ROOT/$fs")
  fi
done

# The working tree as git sees it (tracked and untracked-not-ignored files): no host venv,
# no host build folder.
log "copying the source"
rm -rf "$ROOT/src"
mkdir -p "$ROOT/src"
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
  | tar --null -T - -cf - | tar -xf - -C "$ROOT/src"
# The shared data folder beside the checkout, when there is one (tests that need it skip otherwise).
if [ -d ../shared ]; then
  rm -rf "$ROOT/shared" && mkdir -p "$ROOT/shared"
  cp -a ../shared/data "$ROOT/shared/" 2>/dev/null || true
fi

log "building and testing inside (Python 3.13; GCC 13, then GCC 14)"
chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/venv/bin:/usr/local/bin:/usr/bin:/bin \
  PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
  PIP_DEFAULT_TIMEOUT=180 POSERT_WITH_CUDA=OFF PIP_PACKAGES="${PIP_PACKAGES[*]}" \
  /bin/bash -euo pipefail -c '
    python3 --version; g++ --version | head -1
    [ -x /venv/bin/python ] || python3 -m venv /venv
    # One OpenCV package only (two overwrite each other'"'"'s cv2 module): the contrib build, as pyproject says.
    pip uninstall -y -q opencv-python-headless opencv-python >/dev/null 2>&1 || true
    pip install -q $PIP_PACKAGES
    cd /src
    echo "--- GCC 13: the native core"
    CXX=g++-13 CC=gcc-13 pip install -q --no-build-isolation --no-deps -e . \
      --config-settings=build-dir=build/gcc13
    python -c "import pyposert; print(\"compiler\", pyposert.build_info()[\"compiler\"])"
    CXX=g++-13 CC=gcc-13 python -m pytest -q -p no:cacheprovider tests/test_native_runtime.py tests/test_simd.py \
      tests/test_heatmaps.py tests/test_attention.py tests/test_imageproc.py tests/test_warp.py tests/test_build.py
    echo "--- GCC 14: the runtime test suite"
    pip install -q --no-build-isolation --no-deps -e .
    python -c "import pyposert, json; i = pyposert.build_info(); print(json.dumps({k: i[k] for k in (\"version\", \"compiler\", \"simd\", \"simd_supported\")}))"
    python -c "import numpy, pybind11; print(\"numpy\", numpy.__version__, \"pybind11\", pybind11.__version__)"
    python -m pytest tests -q -p no:cacheprovider --ignore=tests/training  # training imports torch
  '
