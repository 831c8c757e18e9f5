// The streamed batch source, whose next buffer is read by a prefetch thread: every row once per
// epoch, in exactly the order docs/sae.md describes (shuffled block order, buffers of whole
// blocks, rows shuffled per buffer, leftovers first), shards that add up to the whole batch,
// its read statistics, and the file free for other reads once stop() returns.
#include "tests/torch_doctest.h"

#include <algorithm>
#include <numeric>

#include "core/embeddings.h"
#include "core/random.h"
#include "sae/batch_source.h"
#include "tests/test_util.h"

using namespace cl;

namespace {

const torch::Device kCpu(torch::kCPU);

// Row r of the file is (r, -r, 0.5, 1): a batch's first column names its rows.
std::string write_numbered(const test::TempDir& tmp, int64_t n, int64_t d) {
  Embeddings e;
  e.n = n;
  e.dim = d;
  e.data.assign(static_cast<size_t>(n * d), 0.5f);
  for (int64_t r = 0; r < n; ++r) {
    e.data[static_cast<size_t>(r * d)] = static_cast<float>(r);
    e.data[static_cast<size_t>(r * d + 1)] = -static_cast<float>(r);
    e.ids.push_back("r" + std::to_string(r));
  }
  const auto path = tmp.file("e.h5");
  write_embeddings(path, e);
  return path;
}

std::vector<int64_t> row_ids(const torch::Tensor& x) {
  auto c = x.select(1, 0).to(torch::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

// One epoch's rows in order, as the documented algorithm draws them from rng (no threads):
// blocks of block_rows rows in a shuffled order; each buffer takes whole blocks until it holds
// buffer_rows rows and shuffles them; unconsumed rows stay in front of the next buffer, so the
// rows in order are the shuffled buffers one after the other.
std::vector<int64_t> expected_epoch(Rng& rng, int64_t n, int64_t block_rows, int64_t buffer_rows) {
  const int64_t n_blocks = (n + block_rows - 1) / block_rows;
  std::vector<int64_t> blocks(static_cast<size_t>(n_blocks));
  std::iota(blocks.begin(), blocks.end(), 0);
  rng.shuffle(blocks);
  std::vector<int64_t> out;
  size_t b = 0;
  while (b < blocks.size()) {
    std::vector<int64_t> rows;
    while (b < blocks.size() && static_cast<int64_t>(rows.size()) < buffer_rows) {
      const int64_t s = blocks[b++] * block_rows;
      for (int64_t r = s; r < std::min(n, s + block_rows); ++r) rows.push_back(r);
    }
    std::vector<int64_t> perm(rows.size());
    std::iota(perm.begin(), perm.end(), 0);
    rng.shuffle(perm);
    for (int64_t i : perm) out.push_back(rows[static_cast<size_t>(i)]);
  }
  return out;
}

}  // namespace

TEST_CASE("stream source: prefetched buffers give the documented order, every row once per epoch") {
  test::TempDir tmp;
  const int64_t n = 1000, d = 4, batch = 64;
  EmbeddingsReader reader(write_numbered(tmp, n, d));
  const double memory_gb = 200.0 * d * 4 * 2 / 1073741824.0;  // buffers of 200 rows: 5+ refills per epoch
  REQUIRE(sae::stream_buffer_rows(reader, batch, memory_gb) == 200);
  const int64_t block_rows = 25;  // min(batch, buffer / 8), as batch_source.cpp picks it
  auto src = sae::stream_source(reader, sae::Shard{0, n, n}, batch, memory_gb, kCpu);
  Rng rng(5), ref(5);
  for (int epoch = 0; epoch < 3; ++epoch) {
    CAPTURE(epoch);
    src->start_epoch(rng);
    std::vector<int64_t> got, sizes;
    torch::Tensor x;
    int64_t rows = 0;
    while ((rows = src->next(x)) > 0) {
      REQUIRE(x.size(0) == rows);
      sizes.push_back(rows);
      for (int64_t id : row_ids(x)) got.push_back(id);
      CHECK(x.select(1, 1).neg().equal(x.select(1, 0)));  // whole rows, not mixed
    }
    CHECK(got == expected_epoch(ref, n, block_rows, 200));
    CHECK(sizes.size() == 16);  // ceil(1000 / 64): full batches, 40 rows last
    CHECK(sizes.back() == 40);
    auto sorted = got;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int64_t> all(static_cast<size_t>(n));
    std::iota(all.begin(), all.end(), 0);
    CHECK(sorted == all);
  }
  const auto io = src->input_stats();
  CHECK(io.rows_read == 3 * n);
  CHECK(io.read_s > 0);
  CHECK(io.wait_s >= 0);
}

TEST_CASE("stream source: shards hold their rows of every global batch") {
  test::TempDir tmp;
  const int64_t n = 777, d = 4, batch = 50;
  const auto path = write_numbered(tmp, n, d);
  EmbeddingsReader reader(path);
  const double memory_gb = 120.0 * d * 4 * 2 / 1073741824.0;
  auto whole = sae::stream_source(reader, sae::Shard{0, n, n}, batch, memory_gb, kCpu);
  // Each rank has its own reader, as processes do.
  std::vector<std::unique_ptr<EmbeddingsReader>> readers;
  std::vector<std::unique_ptr<sae::BatchSource>> parts;
  for (int r = 0; r < 3; ++r) {
    readers.push_back(std::make_unique<EmbeddingsReader>(path));
    parts.push_back(sae::stream_source(*readers.back(), sae::shard_of(n, r, 3), batch, memory_gb, kCpu));
  }
  for (int epoch = 0; epoch < 2; ++epoch) {
    Rng rw(11 + epoch);
    whole->start_epoch(rw);
    std::vector<Rng> rp(3, Rng(11 + epoch));
    for (int r = 0; r < 3; ++r) parts[static_cast<size_t>(r)]->start_epoch(rp[static_cast<size_t>(r)]);
    torch::Tensor x;
    int64_t rows = 0, n_batches = 0;
    while ((rows = whole->next(x)) > 0) {
      const auto ids = row_ids(x);
      std::vector<int64_t> seen(static_cast<size_t>(rows), -1);
      for (int r = 0; r < 3; ++r) {
        torch::Tensor xr;
        std::vector<int64_t> pos;
        REQUIRE(parts[static_cast<size_t>(r)]->next(xr, &pos) == rows);
        const auto sh = sae::shard_of(n, r, 3);
        const auto rids = row_ids(xr);
        REQUIRE(rids.size() == pos.size());
        for (size_t i = 0; i < pos.size(); ++i) {
          CHECK(rids[i] >= sh.lo);
          CHECK(rids[i] < sh.hi);
          CHECK(seen[static_cast<size_t>(pos[i])] == -1);
          seen[static_cast<size_t>(pos[i])] = rids[i];
        }
      }
      CHECK(seen == ids);  // the shards' rows, at their positions, are the whole batch
      ++n_batches;
    }
    CHECK(n_batches == 16);
    for (auto& part : parts) {
      torch::Tensor xr;
      CHECK(part->next(xr) == 0);
    }
  }
}

TEST_CASE("stream source: stop() mid-epoch leaves the file to other readers and the next epoch whole") {
  test::TempDir tmp;
  const int64_t n = 600, d = 4, batch = 32;
  EmbeddingsReader reader(write_numbered(tmp, n, d));
  const double memory_gb = 64.0 * d * 4 * 2 / 1073741824.0;
  auto src = sae::stream_source(reader, sae::Shard{0, n, n}, batch, memory_gb, kCpu);
  Rng rng(3);
  for (int round = 0; round < 20; ++round) {
    src->start_epoch(rng);
    torch::Tensor x;
    for (int i = 0; i <= round % 5; ++i) REQUIRE(src->next(x) == batch);  // a read is in flight now
    src->stop();
    std::vector<float> row(static_cast<size_t>(d));
    reader.read_rows(n - 1, 1, row.data());  // the file is this thread's again
    CHECK(row[0] == static_cast<float>(n - 1));
    CHECK(src->sample(10, rng).size(0) == 10);
  }
  src->start_epoch(rng);
  torch::Tensor x;
  int64_t total = 0, rows = 0;
  while ((rows = src->next(x)) > 0) total += rows;
  CHECK(total == n);
  CHECK(src->mean_f64()[0].item<double>() == doctest::Approx((n - 1) / 2.0));
}
