#!/usr/bin/env bash
# Here (a Debian 12 machine after scripts/setup-deps.sh): packs what a GPU machine without Debian's
# dev packages needs to build conceptlab against its own pip CUDA LibTorch, into .gpu/ (git-ignored,
# carried to the device): prefix.tar.xz (the -dev packages' headers and CMake files, and the shared
# libraries they need, found by ldd rather than by package dependencies, which pull in ~130 MB of
# data and drivers), and data/ (the real encoder and some derm7pt images, when ../shared exists).
# Then, on the device: bash scripts/gpu/device-check.sh (see there).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$ROOT/.gpu"
WORK="$ROOT/.debs/gpu"
N_IMAGES="${CONCEPTLAB_GPU_IMAGES:-256}"
L=/usr/lib/x86_64-linux-gnu
rm -rf "$WORK/prefix" && mkdir -p "$WORK/debs" "$WORK/prefix" "$OUT"

# Headers, .so links and CMake files of what CMakeLists.txt finds (not LibTorch: the device has it).
DEV=(libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev libhdf5-dev libeigen3-dev
     nlohmann-json3-dev libfmt-dev libspdlog-dev libcli11-dev doctest-dev)
# Not libgloo-dev: Gloo's headers must be those of the LibTorch's own Gloo; CMake builds the Gloo
# path only where they come with it (NCCL serves CUDA either way).
# The shared libraries those need at link and run time; the C and C++ runtimes are the device's own.
LIBS=("$L"/libopencv_imgcodecs.so.406 "$L"/libopencv_imgproc.so.406 "$L"/libopencv_core.so.406
      "$L"/hdf5/serial/libhdf5.so "$L"/libfmt.so "$L"/libspdlog.so)
BASE='^(libc6|libstdc\+\+6|libgcc-s1|zlib1g|libzstd1|liblzma5|libbz2-1.0|libcrypt1|libopenblas0-pthread)$'
mapfile -t RUNTIME < <(
  { for f in "${LIBS[@]}"; do readlink -f "$f"; ldd "$f" | awk '/=>/ {print $3}'; done; } | sort -u |
    while read -r f; do
      f="$(readlink -f "$f")"  # usrmerge: dpkg may know the file as /lib/... or /usr/lib/...
      dpkg -S "$f" 2>/dev/null || dpkg -S "${f#/usr}" 2>/dev/null || echo "fetch: no package owns $f" >&2
    done |
    cut -d: -f1 | sort -u | grep -Ev "$BASE")
# OpenCV's BLAS/LAPACK: the reference libraries are enough for its few calls, and 6 MB smaller.
RUNTIME+=(libblas3 liblapack3)
echo "fetch: ${#DEV[@]} dev packages, ${#RUNTIME[@]} runtime packages"
(cd "$WORK/debs" && apt-get download -q "${DEV[@]}" "${RUNTIME[@]}" > /dev/null)
for d in "$WORK"/debs/*.deb; do dpkg -x "$d" "$WORK/prefix"; done
# Only headers, libraries and CMake/pkg-config files are needed; the rest is documentation.
rm -rf "$WORK/prefix"/usr/share/{doc,man,locale,lintian,bug} "$WORK/prefix"/usr/bin "$WORK/prefix"/usr/sbin
find "$WORK/prefix" -name '*.a' -delete
# Debian's BLAS/LAPACK live under alternatives folders; give their sonames the plain path.
for lib in blas/libblas.so.3 lapack/liblapack.so.3; do
  ln -sf "$lib" "$WORK/prefix/usr/lib/x86_64-linux-gnu/$(basename "$lib")"
done
# libopencv-dev's OpenCVConfig.cmake names all ~30 modules and fails when one is missing; this one
# names the three conceptlab uses, relative to where the prefix is unpacked.
mkdir -p "$WORK/prefix/usr/lib/x86_64-linux-gnu/cmake/opencv4"
cat > "$WORK/prefix/usr/lib/x86_64-linux-gnu/cmake/opencv4/OpenCVConfig.cmake" <<'CFG'
# Written by conceptlab's scripts/gpu/fetch.sh: Debian's OpenCV core, imgproc and imgcodecs only.
get_filename_component(_cl_prefix "${CMAKE_CURRENT_LIST_DIR}/../../../../.." ABSOLUTE)
set(OpenCV_VERSION 4.6.0)
set(OpenCV_INCLUDE_DIRS "${_cl_prefix}/usr/include/opencv4")
set(OpenCV_LIBS "")
foreach(_cl_m core imgproc imgcodecs)
  if(NOT TARGET opencv_${_cl_m})
    add_library(opencv_${_cl_m} SHARED IMPORTED)
    set_target_properties(opencv_${_cl_m} PROPERTIES
      IMPORTED_LOCATION "${_cl_prefix}/usr/lib/x86_64-linux-gnu/libopencv_${_cl_m}.so.406"
      INTERFACE_INCLUDE_DIRECTORIES "${OpenCV_INCLUDE_DIRS}")
  endif()
  list(APPEND OpenCV_LIBS opencv_${_cl_m})
endforeach()
set(OpenCV_FOUND TRUE)
CFG
echo 'set(PACKAGE_VERSION 4.6.0)
set(PACKAGE_VERSION_COMPATIBLE TRUE)' > "$WORK/prefix/usr/lib/x86_64-linux-gnu/cmake/opencv4/OpenCVConfigVersion.cmake"
# Every library the ones we link need, transitively, must be packed too, or be one of the C/C++
# runtime's (libraries packed but not reached, e.g. gdcm's MEX plug-in, may need what is not).
/usr/bin/python3 - "$WORK/prefix" "${LIBS[@]}" <<'PY'
import os, re, subprocess, sys
prefix, roots = sys.argv[1], [os.path.basename(r) for r in sys.argv[2:]]
runtime = re.compile(r"^(ld-linux-x86-64\.so\.2|lib(c|m|dl|rt|pthread|resolv|stdc\+\+|gcc_s|z|zstd|lzma|bz2|crypt)\.so.*)$")
where = {}
for d, _, files in os.walk(prefix):
    for f in files:
        where.setdefault(f, os.path.join(d, f))
todo, seen, missing = list(roots), set(), set()
while todo:
    name = todo.pop()
    if name in seen:
        continue
    seen.add(name)
    if name not in where:
        if not runtime.match(name):
            missing.add(name)
        continue
    out = subprocess.run(["readelf", "-d", where[name]], capture_output=True, text=True).stdout
    todo += re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", out)
if missing:
    sys.exit("fetch: the linked libraries need, and the prefix lacks: " + " ".join(sorted(missing)))
print(f"fetch: {len(seen)} libraries reached from {len(roots)} roots, all packed or the C/C++ runtime's")
PY
tar -C "$WORK/prefix" -cf - usr | xz -T0 -6 > "$OUT/prefix.tar.xz"
echo "fetch: $OUT/prefix.tar.xz $(du -m "$OUT/prefix.tar.xz" | cut -f1) MB"

SHARED="$ROOT/../shared/derm7pt"
if [[ -d "$SHARED" ]]; then
  rm -rf "$OUT/data" && mkdir -p "$OUT/data/images"
  cp "$SHARED"/encoder/mobilenet_v1_224_embed.{pt,json} "$OUT/data/"
  (cd "$SHARED/images" && find . -type f -name '*.jpg' | sort | head -n "$N_IMAGES" |
     while read -r f; do mkdir -p "$OUT/data/images/$(dirname "$f")"; cp "$f" "$OUT/data/images/$f"; done)
  echo "fetch: $OUT/data: encoder and $(find "$OUT/data/images" -type f | wc -l) images, $(du -sm "$OUT/data" | cut -f1) MB"
fi
echo "fetch: carry .gpu (with the working tree, 64 MiB in all): $(du -sm "$OUT" | cut -f1) MB"
