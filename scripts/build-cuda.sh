#!/usr/bin/env bash
# Builds the CUDA binary target/cuda/release/aha on any Linux machine, GPU or not.
#
# The CUDA 13.0 toolkit comes from pinned PyPI wheels in a local venv (.venv-cuda). The link step
# needs libcuda, which only a GPU driver provides, so a stub libcuda.so (soname libcuda.so.1, one
# empty function per driver symbol cudarc loads) stands in for it; the binary loads the real
# driver at run time. Facts behind the pins: nvcc newer than 13.0 emits PTX that driver 580
# rejects; CUDA_COMPUTE_CAP=90 (H100/H200, sm_90a) because no nvidia-smi is there to ask.
# Override with CUDA_COMPUTE_CAP=80 etc. for other GPUs.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${AHA_CUDA_VENV:-.venv-cuda}
pins=(nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88
      nvidia-cuda-cccl==13.0.85 nvidia-cuda-runtime==13.0.96 nvidia-cublas==13.1.0.3
      nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88)

# 1. The toolkit, installed once; the stamp holds the pins so changing them reinstalls.
if [[ "$(cat "$venv/pins" 2>/dev/null)" != "${pins[*]}" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
  echo "${pins[*]}" > "$venv/pins"
fi
cuda_home=$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')

# 2. Link directory: unversioned names for the wheels' versioned libraries, plus the stub.
link="$venv/link"
mkdir -p "$link"
for lib in cublas cublasLt curand nvrtc cudart; do
  so=$(ls "$cuda_home/lib/lib$lib.so."* | sort | head -n 1)
  ln -sf "$so" "$link/lib$lib.so"
done
if [[ ! -f "$link/libcuda.so" ]]; then
  cargo fetch --quiet
  cudarc=$(cargo metadata --format-version 1 --features aha/cuda 2>/dev/null |
    "$venv/bin/python" -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "cudarc"))')
  grep -oh 'load::<_F>("cu[A-Za-z0-9_]*")' "$(dirname "$cudarc")/src/driver/sys/mod.rs" |
    sed 's/.*("\(cu[A-Za-z0-9_]*\)")/void \1(void) {}/' | sort -u > "$link/stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$link/libcuda.so" "$link/stub.c"
fi

# 3. The build, in its own target dir so it never invalidates the CPU build's cache.
export CUDA_HOME="$cuda_home" PATH="$cuda_home/bin:$PATH"
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} CUDARC_CUDA_VERSION=13000
export RUSTFLAGS="${RUSTFLAGS:-} -L native=$PWD/$link"
cargo build --release --features cuda --target-dir target/cuda -p aha
ls -l target/cuda/release/aha
