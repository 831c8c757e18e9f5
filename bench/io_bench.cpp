// Throughput of the HDF5 formats: writes and reads a N x D float32 embeddings file and an
// N-row CSR activations file with K non-zeros per row, in chunks, printing MB/s for each.
// The write includes HDF5 chunking and id strings; reads start from a dropped page cache.
// Usage: io_bench [--rows 1000000] [--dim 768] [--nnz 64] [--latents 8192] [--dir /tmp]
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>

#include "core/activations.h"
#include "core/embeddings.h"

using namespace cl;
using clk = std::chrono::steady_clock;

// Flushes a file and drops it from the page cache so the next read measures the disk.
static void evict_from_cache(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

static double seconds_since(clk::time_point t) { return std::chrono::duration<double>(clk::now() - t).count(); }

int main(int argc, char** argv) {
  int64_t rows = 1000000, dim = 768, nnz = 64, latents = 8192;
  std::string dir = std::filesystem::temp_directory_path().string();
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--rows") rows = std::stoll(argv[i + 1]);
    else if (a == "--dim") dim = std::stoll(argv[i + 1]);
    else if (a == "--nnz") nnz = std::stoll(argv[i + 1]);
    else if (a == "--latents") latents = std::stoll(argv[i + 1]);
    else if (a == "--dir") dir = argv[i + 1];
  }
  const int64_t chunk = 16384;
  std::mt19937 rng(0);
  std::uniform_real_distribution<float> u(-1.f, 1.f);

  // ---- embeddings ----
  std::string e_path = dir + "/io_bench_embeddings.h5";
  std::vector<float> block(static_cast<size_t>(chunk * dim));
  for (auto& v : block) v = u(rng);
  std::vector<std::string> ids(static_cast<size_t>(chunk));
  auto t0 = clk::now();
  {
    EmbeddingsWriter w(e_path, dim, {{"bench", true}});
    for (int64_t s = 0; s < rows; s += chunk) {
      int64_t c = std::min(chunk, rows - s);
      for (int64_t i = 0; i < c; ++i) ids[static_cast<size_t>(i)] = "img_" + std::to_string(s + i);
      ids.resize(static_cast<size_t>(c));
      w.append(block.data(), c, ids);
      ids.resize(static_cast<size_t>(chunk));
    }
    w.commit();
  }
  double tw = seconds_since(t0);
  double e_mb = static_cast<double>(rows * dim * 4) / 1e6;
  evict_from_cache(e_path);
  t0 = clk::now();
  double checksum = 0;
  {
    EmbeddingsReader r(e_path);
    for (int64_t s = 0; s < rows; s += chunk) {
      int64_t c = std::min(chunk, rows - s);
      r.read_rows(s, c, block.data(), true);
      checksum += block[0];
    }
  }
  double tr = seconds_since(t0);
  std::printf("embeddings %lld x %lld float32 (%.0f MB payload, file %.0f MB)\n", (long long)rows, (long long)dim, e_mb,
              std::filesystem::file_size(e_path) / 1e6);
  std::printf("  write: %.2f s  %.0f MB/s\n  read, page cache dropped (ids + rows, NaN check): %.2f s  %.0f MB/s\n", tw, e_mb / tw, tr,
              e_mb / tr);
  std::filesystem::remove(e_path);

  // ---- CSR activations ----
  std::string a_path = dir + "/io_bench_activations.h5";
  std::uniform_int_distribution<int32_t> col(0, static_cast<int32_t>(latents - 1));
  CsrMatrix m;
  m.n_cols = latents;
  std::vector<int32_t> cols;
  std::vector<float> vals(static_cast<size_t>(nnz));
  for (int64_t i = 0; i < chunk; ++i) {
    cols.clear();
    while (static_cast<int64_t>(cols.size()) < nnz) {
      int32_t c = col(rng);
      if (std::find(cols.begin(), cols.end(), c) == cols.end()) cols.push_back(c);
    }
    for (auto& v : vals) v = 0.1f + std::abs(u(rng));
    m.append_row(cols.data(), vals.data(), nnz);
  }
  t0 = clk::now();
  {
    ActivationsWriter w(a_path, latents, {{"bench", true}});
    for (int64_t s = 0; s < rows; s += chunk) {
      int64_t c = std::min(chunk, rows - s);
      ids.resize(static_cast<size_t>(c));
      for (int64_t i = 0; i < c; ++i) ids[static_cast<size_t>(i)] = "img_" + std::to_string(s + i);
      w.append(ids, c == chunk ? m : m.slice_rows(0, c));
    }
    w.commit();
  }
  tw = seconds_since(t0);
  double a_mb = static_cast<double>(rows * nnz * 8 + (rows + 1) * 8) / 1e6;
  evict_from_cache(a_path);
  t0 = clk::now();
  int64_t total_nnz = 0;
  {
    ActivationsReader r(a_path);
    for (int64_t s = 0; s < rows; s += chunk) total_nnz += r.read_rows(s, std::min(chunk, rows - s)).nnz();
  }
  tr = seconds_since(t0);
  std::printf("activations CSR %lld rows x %lld latents, %lld nnz/row (%.0f MB payload, file %.0f MB)\n",
              (long long)rows, (long long)latents, (long long)nnz, a_mb, std::filesystem::file_size(a_path) / 1e6);
  std::printf("  write: %.2f s  %.0f MB/s\n  read from disk, page cache dropped (validated): %.2f s  %.0f MB/s  (nnz %lld)\n", tw, a_mb / tw, tr,
              a_mb / tr, (long long)total_nnz);
  std::filesystem::remove(a_path);
  std::printf("checksum %.3f\n", checksum);
  return 0;
}
