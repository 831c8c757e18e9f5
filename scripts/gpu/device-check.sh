#!/usr/bin/env bash
# On a GPU machine with a pip CUDA PyTorch but no Debian dev packages: builds conceptlab against
# that LibTorch with the prefix scripts/gpu/fetch.sh packed, then runs the GPU checks of issue 17
# (the CUDA SAE path against the CPU path, NCCL, 1-GPU SAE throughput vs the GEMM bound in
# fp32/TF32/bf16, embedding export images/s with the real encoder). Logs go to $OUT (or /tmp/out).
# Prepared and checked on a CPU machine only (there: fetch.sh, and this script's configure and
# build against Debian's LibTorch with the prefix); expect to adjust it on its first GPU run.
# The carry limit (64 MiB a call) splits it in two calls on one warm machine:
#   bash scripts/gpu/device-check.sh unpack   (carry .gpu/prefix.tar.xz; ~20 s)
#   bash scripts/gpu/device-check.sh run      (carry .gpu/data; build ~3-5 min on 16 cores, checks ~3 min)
# `run` unpacks too when the prefix is not there yet (a fresh machine), if the tarball came along.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:-/tmp/out}"
BUILD="$ROOT/build-gpu"   # git-ignored, so kept between calls on a warm machine
PFX="$BUILD/prefix"
mkdir -p "$OUT"
stage="${1:-run}"

unpack() {
  [[ -d "$PFX/usr" ]] && return 0
  [[ -f "$ROOT/.gpu/prefix.tar.xz" ]] || { echo "device-check: no $PFX and no .gpu/prefix.tar.xz; run 'unpack' first" >&2; return 1; }
  mkdir -p "$PFX" && tar -C "$PFX" -xJf "$ROOT/.gpu/prefix.tar.xz" || return 1
  echo "device-check: unpacked the prefix ($(du -sm "$PFX" | cut -f1) MB)"
}
unpack || exit 1
[[ "$stage" == unpack ]] && exit 0

ML="$PFX/usr/lib/x86_64-linux-gnu"
# After the system's own folders, so the machine's libraries win and ours fill in what it lacks.
# (The build's RUNPATH covers the libraries linked directly, not what they need in turn.)
if ! { printf '%s\n' "$ML" "$ML/hdf5/serial" > /etc/ld.so.conf.d/zz-conceptlab.conf && ldconfig; } 2>/dev/null; then
  export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$ML:$ML/hdf5/serial"
fi
CUDA_ROOT="${CUDA_HOME:-/usr/local/cuda}"
set -e
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
} 2>&1 | tee "$OUT/env.txt"
TORCH_CMAKE="$(python3 -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCONCEPTLAB_BUILD_VIEWER=OFF \
  -DCMAKE_PREFIX_PATH="$TORCH_CMAKE;$PFX/usr;$ML/cmake" -DCUDAToolkit_ROOT="$CUDA_ROOT" \
  -DHDF5_C_COMPILER_EXECUTABLE=/nonexistent/h5cc \
  -DHDF5_C_INCLUDE_DIR="$PFX/usr/include/hdf5/serial" -DHDF5_hdf5_LIBRARY_RELEASE="$ML/hdf5/serial/libhdf5.so" \
  -DCMAKE_CXX_FLAGS="-isystem $PFX/usr/include" \
  -DCMAKE_EXE_LINKER_FLAGS="-Wl,-rpath-link,$ML -Wl,-rpath-link,$ML/hdf5/serial" 2>&1 | tee "$OUT/configure.txt" |
  grep -E "conceptlab|Error|error" || true
[[ -f "$BUILD/build.ninja" ]] || { echo "device-check: configure failed (see configure.txt)"; exit 1; }
cmake --build "$BUILD" -j "$(nproc)" --target conceptlab test_sae sae_bench embed_bench \
  > "$OUT/build.txt" 2>&1 || { grep -E "error|FAILED" "$OUT/build.txt" | head -40; exit 1; }
echo "device-check: built"
set +e
# The CUDA SAE path against the CPU path; the distributed tests (NCCL on cuda:0, one rank).
"$BUILD/tests/test_sae" -tc="*CUDA*,sae dist*" -s 2>&1 | tee "$OUT/test_sae.txt" | grep -E "MESSAGE|ERROR|test cases" | head -40
# 1-GPU throughput: steps/s and the matmul/step ratio (the fraction of the GEMM bound), fp32/TF32/bf16.
"$BUILD/bench/sae_bench" --device cuda --reps 10 --dims 768,1024 --precision all 2>&1 | tee "$OUT/sae_bench.txt"
# Embedding export with the real encoder (carried in .gpu/data by fetch.sh): the model alone, then
# the whole command (decode + preprocess + model + HDF5), fp32 and fp16.
D="$ROOT/.gpu/data"
rm -f "$BUILD"/e*.h5
if [[ -f "$D/mobilenet_v1_224_embed.pt" ]]; then
  "$BUILD/bench/embed_bench" "$D/mobilenet_v1_224_embed.pt" "$D/images" 256 2>&1 | tee "$OUT/embed_bench.txt"
  for fp in "" --fp16; do
    # --json reports images_per_s; -q keeps the progress bar out of the log.
    "$BUILD/tools/conceptlab" -q embed --model "$D/mobilenet_v1_224_embed.pt" --images "$D/images" \
      --out "$BUILD/e$fp.h5" --device cuda --batch 64 $fp --json 2>&1 | tee -a "$OUT/embed.txt"
  done
fi
echo "device-check: done"
