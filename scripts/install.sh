#!/usr/bin/env bash
# Installs the whole serving stack into ./.venv from requirements/constraints.txt.
#
# Idempotent: when the constraints, the requirement lists and this script are unchanged
# since the last successful run, it checks the environment and returns in seconds.
# The mmcv-full wheel (about 15 minutes to build on 2 cores) is cached outside the project, in
# $MMOCR_SERVE_CACHE (default ~/.cache/mmocr-serve), so fresh clones reuse it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMOCR_SERVE_VENV:-$ROOT/.venv}"
CACHE="${MMOCR_SERVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmocr-serve}"
CONSTRAINTS="$ROOT/requirements/constraints.txt"
PY="${PYTHON:-python3.11}"
STAMP="$VENV/.mmocr-serve-installed"
# Which requirement lists to install: the serving images take "runtime" (and "triton").
read -r -a PACKAGES <<<"${MMOCR_SERVE_PACKAGES:-runtime triton aiges test}"

step() { printf '\n[install %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
pin() { sed -n "s/^$1==//p" "$CONSTRAINTS"; }

inputs_digest() {
    { cat "$CONSTRAINTS" "$ROOT"/requirements/*.txt "$ROOT/scripts/install.sh"
      echo "${PACKAGES[*]}"; } | sha256sum | cut -d' ' -f1
}

ensure_java() {
    if java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])'; then
        return
    fi
    step "Java 17 not found: installing openjdk-17-jre-headless (Debian package)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q openjdk-17-jre-headless
}

# Debian's font packages that the demo models' training and evaluation render with
# (mmocr_serve_tools/synth.py); Liberation, Caladea and Lato are the held-out families.
FONTS=(fonts-urw-base35 fonts-freefont-ttf fonts-crosextra-carlito fonts-go fonts-hack
       fonts-cantarell fonts-open-sans fonts-roboto-unhinted fonts-ebgaramond fonts-linuxlibertine
       fonts-sil-gentium fonts-inconsolata fonts-dejavu-extra
       fonts-liberation fonts-crosextra-caladea fonts-lato)

ensure_fonts() {
    # The serving image renders nothing: only the test and training environments need them.
    [[ " ${PACKAGES[*]} " == *" test "* ]] || return 0
    local missing=()
    for pkg in "${FONTS[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return
    step "fonts for the demo models' training and evaluation: ${missing[*]} (Debian packages)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

ensure_libpython() {
    # Triton's Python backend stub embeds the system's shared libpython of the venv's
    # version (Debian's libpython3.X), not the virtual environment's interpreter.
    [[ " ${PACKAGES[*]} " == *" triton "* ]] || return 0
    local lib
    lib="libpython$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    grep -q "$lib.so.1.0" < <(/sbin/ldconfig -p) && return
    step "$lib (Debian package): Triton's Python backend stub links it"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "$lib"
}

ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        step "creating virtual environment $VENV"
        "$PY" -m venv "$VENV"
    fi
    PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
    "${PIP[@]}" install -q -c "$CONSTRAINTS" setuptools wheel
}

install_torch() {
    local torch tv
    torch="$(pin torch)"
    tv="$(pin torchvision)"
    # '===' matches the version string exactly, so pip skips a local CPU-only build
    # (2.13.0+cpu) beside which the index's torchvision cannot import (docs/stack.md).
    step "torch $torch and torchvision $tv from the package index (large download, once)"
    "${PIP[@]}" install --progress-bar off -c "$CONSTRAINTS" "torch===$torch" "torchvision===$tv"
}

mmcv_wheel_dir() {  # CUDA ops (MMCV_CUDA=1, for the GPU image) get a cache of their own
    echo "$CACHE/wheels/torch-$(pin torch)$([ "${MMCV_CUDA:-0}" = 1 ] && echo -cuda)"
}

build_mmcv() {
    local dir mmcv
    dir="$(mmcv_wheel_dir)"
    mmcv="$(pin mmcv-full)"
    if ls "$dir"/mmcv_full-"$mmcv"-*.whl >/dev/null 2>&1; then
        step "mmcv-full $mmcv: reusing cached wheel in $dir"
        return
    fi
    mkdir -p "$dir"
    step "mmcv-full $mmcv: building from source (CPU ops: about 15 minutes on 2 cores, once)"
    "${PIP[@]}" install -q -c "$CONSTRAINTS" ninja  # parallel compilation (MAX_JOBS)
    # setup.py imports torch and pkg_resources: no build isolation, setuptools 80 (pinned).
    # MMCV_CUDA=1 compiles the CUDA ops too, without a visible GPU (docker build).
    [ "${MMCV_CUDA:-0}" = 1 ] && export FORCE_CUDA=1
    # torch's extension builder compiles in parallel only with a ninja on PATH: the venv's.
    PATH="$VENV/bin:$PATH" MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" "${PIP[@]}" wheel -v \
        --no-build-isolation --no-deps -c "$CONSTRAINTS" -w "$dir.partial" "mmcv-full==$mmcv" \
        2>&1 | grep -E --line-buffered '^ *\[[0-9]+/[0-9]+\]|Created wheel|[Ee]rror:' \
        | sed -u -E 's/^ *(\[[0-9]+\/[0-9]+\]).*/  compiling mmcv ops \1/; s/^(.{160}).*/\1/' || true
    ls "$dir.partial"/mmcv_full-*.whl >/dev/null 2>&1 || { echo "mmcv-full build failed" >&2; exit 1; }
    mv "$dir.partial"/mmcv_full-*.whl "$dir"/ && rmdir "$dir.partial"
}

install_stack() {
    step "MMOCR stack and TorchServe (requirements: ${PACKAGES[*]})"
    local lists=()
    for name in "${PACKAGES[@]}"; do lists+=(-r "$ROOT/requirements/$name.txt"); done
    "${PIP[@]}" install --progress-bar off -c "$CONSTRAINTS" --find-links "$(mmcv_wheel_dir)" \
        "${lists[@]}"
    if [[ " ${PACKAGES[*]} " == *" test "* ]]; then
        "${PIP[@]}" install -q --no-deps -c "$CONSTRAINTS" -r "$ROOT/requirements/schemas.txt"
    fi
}

headless_opencv() {
    # mmcv-full asks for opencv-python, whose cv2 needs libGL (absent from a slim image);
    # the headless build of the same version gives the same cv2 without it.
    if "${PIP[@]}" show -q opencv-python 2>/dev/null; then
        "${PIP[@]}" uninstall -y -q opencv-python
        "${PIP[@]}" install -q --no-deps --force-reinstall -c "$CONSTRAINTS" opencv-python-headless
    fi
}

check_stack() {
    "$VENV/bin/python" - <<'EOF'
import mmcv, mmdet, mmocr, torch, torchvision, numpy, ts, model_archiver  # noqa: F401
from mmcv.ops import nms  # noqa: F401  (compiled ops present)
print(f"torch {torch.__version__}, mmcv-full {mmcv.__version__}, mmdet {mmdet.__version__}, "
      f"mmocr {mmocr.__version__}, numpy {numpy.__version__}")
EOF
}

main() {
    ensure_java
    ensure_fonts
    ensure_libpython
    local digest
    digest="$(inputs_digest)"
    if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$digest" ] && check_stack >/dev/null 2>&1; then
        echo "[install] up to date ($VENV)"
        return
    fi
    ensure_venv
    install_torch
    build_mmcv
    install_stack
    headless_opencv
    step "checking imports"
    check_stack
    echo "$digest" >"$STAMP"
    step "done: $VENV"
}

main "$@"
