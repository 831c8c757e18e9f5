// Batch sources for SAE training: in-memory rows, or a file streamed in shuffled blocks; either
// may hold one shard of the rows of a data-parallel run.
#include "sae/batch_source.h"

#include <algorithm>
#include <chrono>
#include <future>

namespace cl::sae {

using torch::Tensor;

Shard shard_of(int64_t n_rows, int rank, int world_size) {
  const int64_t w = std::max(1, world_size);
  return Shard{n_rows * rank / w, n_rows * (rank + 1) / w, n_rows};
}

namespace {

// Sums a [m, d] tensor that each rank filled with the rows it holds (zeros elsewhere): every rank
// then has all m rows, exactly (x + 0 = x).
Tensor sum_over_ranks(Tensor t, Comm* comm) {
  if (comm != nullptr && comm->size() > 1) comm->all_reduce(t, ReduceOp::sum);
  return t;
}

class MemorySource : public BatchSource {
 public:
  MemorySource(const float* x_nd, Shard sh, int64_t d, int64_t batch, torch::Device dev, Comm* comm)
      : sh_(sh), n_(sh.n_rows), d_(d), batch_(batch), dev_(dev), comm_(comm) {
    X_ = torch::from_blob(const_cast<float*>(x_nd), {sh.hi - sh.lo, d}, torch::kFloat32);
    if (dev.type() != torch::kCPU) X_ = X_.to(dev);
  }
  int64_t rows() const override { return n_; }
  int64_t dim() const override { return d_; }
  void start_epoch(Rng& rng) override {
    perm_ = iota_indices(n_);
    rng.shuffle(perm_);
    if (sh_.all()) perm_t_ = torch::tensor(perm_, torch::kLong).to(dev_);
    pos_ = 0;
  }
  int64_t next(Tensor& x, std::vector<int64_t>* pos) override {
    if (pos_ >= n_) return 0;
    const int64_t B = std::min(batch_, n_ - pos_);
    if (pos != nullptr) pos->clear();
    if (sh_.all()) {
      x = X_.index_select(0, perm_t_.slice(0, pos_, pos_ + B));
      if (pos != nullptr) *pos = iota_indices(B);
    } else {
      std::vector<int64_t> local;
      for (int64_t i = 0; i < B; ++i) {
        const int64_t id = perm_[static_cast<size_t>(pos_ + i)];
        if (id < sh_.lo || id >= sh_.hi) continue;
        local.push_back(id - sh_.lo);
        if (pos != nullptr) pos->push_back(i);
      }
      x = X_.index_select(0, torch::tensor(local, torch::kLong).to(dev_));
    }
    pos_ += B;
    return B;
  }
  Tensor sample(int64_t m, Rng& rng) override {
    std::vector<int64_t> idx = iota_indices(n_);
    rng.shuffle(idx);
    idx.resize(static_cast<size_t>(std::min(m, n_)));
    if (sh_.all()) return X_.index_select(0, torch::tensor(idx, torch::kLong).to(dev_));
    std::vector<int64_t> at, local;
    for (size_t i = 0; i < idx.size(); ++i)
      if (idx[i] >= sh_.lo && idx[i] < sh_.hi) {
        at.push_back(static_cast<int64_t>(i));
        local.push_back(idx[i] - sh_.lo);
      }
    auto out = torch::zeros({static_cast<int64_t>(idx.size()), d_}, X_.options());
    out.index_copy_(0, torch::tensor(at, torch::kLong).to(dev_),
                    X_.index_select(0, torch::tensor(local, torch::kLong).to(dev_)));
    return sum_over_ranks(out, comm_);
  }
  Tensor mean_f64() override {
    const int64_t nl = X_.size(0);
    auto s = torch::zeros({d_}, torch::TensorOptions().dtype(torch::kFloat64).device(dev_));
    for (int64_t i = 0; i < nl; i += 65536) s += X_.slice(0, i, std::min(nl, i + 65536)).sum(0, false, torch::kFloat64);
    s = sum_over_ranks(s, comm_);
    return s / static_cast<double>(std::max<int64_t>(n_, 1));
  }
  std::vector<int64_t> order() const override { return perm_; }

 private:
  Shard sh_;
  int64_t n_, d_, batch_;
  torch::Device dev_;
  Comm* comm_;
  Tensor X_, perm_t_;
  std::vector<int64_t> perm_;
  int64_t pos_ = 0;
};

// Streams an embeddings file: per epoch a shuffled order of blocks is read into a bounded
// buffer whose rows are shuffled again; leftover rows (< batch) carry into the next buffer.
// Sharded, the buffer is virtual: every rank shuffles the same block ids and positions, and
// reads and keeps only the rows of its shard (in buffer order).
// While training consumes one buffer, a prefetch thread reads the blocks of the next (the
// order is fixed at the epoch's start, and the shuffles stay on the training thread, so the
// batches are those of a run without prefetch). The file is read by one thread at a time:
// the training thread touches it only when no read is in flight (start_epoch, stop).
class StreamSource : public BatchSource {
 public:
  StreamSource(const EmbeddingsReader& r, Shard sh, int64_t batch, double memory_gb, torch::Device dev, Comm* comm)
      : r_(r), sh_(sh), n_(r.rows()), d_(r.dim()), batch_(batch), dev_(dev), comm_(comm) {
    buffer_rows_ = stream_buffer_rows(r, batch, memory_gb);
    block_rows_ = std::max<int64_t>(1, std::min<int64_t>(batch, buffer_rows_ / 8));
    n_blocks_ = (n_ + block_rows_ - 1) / block_rows_;
  }
  ~StreamSource() override { stop(); }
  int64_t rows() const override { return n_; }
  int64_t dim() const override { return d_; }
  void start_epoch(Rng& rng) override {
    stop();
    blocks_ = iota_indices(n_blocks_);
    rng.shuffle(blocks_);
    next_block_ = 0;
    cur_ = Tensor();
    local_.clear();
    pos_ = lpos_ = 0;
    rng_ = &rng;
  }
  int64_t next(Tensor& x, std::vector<int64_t>* pos) override {
    const int64_t have = static_cast<int64_t>(local_.size()) - pos_;
    if (have < batch_ && (pending_.valid() || next_block_ < n_blocks_)) {
      refill();
      return next(x, pos);
    }
    if (have == 0) return 0;
    const int64_t B = std::min(batch_, have);
    if (pos != nullptr) pos->clear();
    int64_t c = 0;
    for (int64_t i = 0; i < B; ++i)
      if (local_[static_cast<size_t>(pos_ + i)]) {
        ++c;
        if (pos != nullptr) pos->push_back(i);
      }
    x = cur_.slice(0, lpos_, lpos_ + c);
    pos_ += B;
    lpos_ += c;
    return B;
  }
  Tensor sample(int64_t m, Rng& rng) override {
    stop();
    // Rows from a few random blocks: cheap and spread over the file.
    std::vector<int64_t> b = iota_indices(n_blocks_);
    rng.shuffle(b);
    std::vector<std::pair<int64_t, int64_t>> runs;  // (first row, count) in sample order
    int64_t got = 0;
    for (int64_t bi : b) {
      if (got >= m) break;
      const int64_t s = bi * block_rows_, c = std::min({block_rows_, n_ - s, m - got});
      runs.emplace_back(s, c);
      got += c;
    }
    auto out = torch::zeros({got, d_}, torch::kFloat32);
    int64_t at = 0;
    for (auto [s, c] : runs) {
      const int64_t a = std::max(s, sh_.lo), e = std::min(s + c, sh_.hi);
      if (e > a) r_.read_rows(a, e - a, out.data_ptr<float>() + (at + a - s) * d_);
      at += c;
    }
    return sum_over_ranks(out, comm_).to(dev_);
  }
  Tensor mean_f64() override {
    stop();
    auto s = torch::zeros({d_}, torch::kFloat64);
    std::vector<float> buf;
    for (int64_t i = sh_.lo; i < sh_.hi; i += block_rows_) {
      const int64_t c = std::min(block_rows_, sh_.hi - i);
      buf.resize(static_cast<size_t>(c * d_));
      r_.read_rows(i, c, buf.data());
      s += torch::from_blob(buf.data(), {c, d_}, torch::kFloat32).sum(0, false, torch::kFloat64);
    }
    s = sum_over_ranks(s, comm_);
    return (s / static_cast<double>(std::max<int64_t>(n_, 1))).to(dev_);
  }
  std::vector<int64_t> order() const override { return blocks_; }
  void stop() override {
    if (!pending_.valid()) return;
    pending_.wait();  // its rows are dropped; a read error no longer matters
    pending_ = {};
  }
  InputStats input_stats() const override { return stats_; }

 private:
  // Consecutive blocks of the epoch's order, as read: this rank's rows of them.
  struct Chunk {
    std::vector<float> buf;        // [held, d]
    std::vector<int64_t> index;    // per row of the blocks, in block order: its row in buf, or -1
    int64_t got = 0, held = 0;     // rows of the blocks; rows held here
    double read_s = 0;
  };
  // The next blocks of the order, about one buffer of rows (training thread).
  std::vector<int64_t> take_blocks() {
    std::vector<int64_t> starts;
    int64_t got = 0;
    while (next_block_ < n_blocks_ && got < buffer_rows_) {
      const int64_t s = blocks_[static_cast<size_t>(next_block_++)] * block_rows_;
      starts.push_back(s);
      got += std::min(block_rows_, n_ - s);
    }
    return starts;
  }
  // Reads the shard's rows of the blocks starting at `starts` (either thread; touches no member
  // that changes during an epoch).
  Chunk read_blocks(const std::vector<int64_t>& starts) const {
    const auto t0 = std::chrono::steady_clock::now();
    Chunk c;
    for (int64_t s : starts) {
      const int64_t rows = std::min(block_rows_, n_ - s);
      const int64_t a = std::max(s, sh_.lo), e = std::min(s + rows, sh_.hi);
      for (int64_t j = s; j < s + rows; ++j) c.index.push_back(j >= a && j < e ? c.held + (j - a) : -1);
      if (e > a) {
        c.buf.resize(static_cast<size_t>((c.held + e - a) * d_));
        r_.read_rows(a, e - a, c.buf.data() + c.held * d_);
        c.held += e - a;
      }
      c.got += rows;
    }
    c.read_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return c;
  }
  void refill() {
    const auto t0 = std::chrono::steady_clock::now();
    Chunk c = pending_.valid() ? pending_.get() : read_blocks(take_blocks());
    pending_ = {};
    stats_.wait_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    stats_.read_s += c.read_s;
    stats_.rows_read += c.held;
    std::vector<int64_t> perm = iota_indices(c.got);
    rng_->shuffle(perm);
    std::vector<int64_t> sel;
    std::vector<char> fresh_local(static_cast<size_t>(c.got));
    for (int64_t i = 0; i < c.got; ++i) {
      const int64_t bi = c.index[static_cast<size_t>(perm[static_cast<size_t>(i)])];
      fresh_local[static_cast<size_t>(i)] = bi >= 0;
      if (bi >= 0) sel.push_back(bi);
    }
    auto fresh = torch::from_blob(c.buf.data(), {c.held, d_}, torch::kFloat32)
                     .index_select(0, torch::tensor(sel, torch::kLong))
                     .to(dev_);
    c = Chunk{};  // the raw rows go before the next read allocates its own
    if (next_block_ < n_blocks_)
      pending_ = std::async(std::launch::async, [this, starts = take_blocks()] { return read_blocks(starts); });
    if (cur_.defined() && pos_ < static_cast<int64_t>(local_.size())) {
      cur_ = torch::cat({cur_.slice(0, lpos_), fresh}, 0);
      local_.erase(local_.begin(), local_.begin() + pos_);
      local_.insert(local_.end(), fresh_local.begin(), fresh_local.end());
    } else {
      cur_ = fresh;
      local_ = std::move(fresh_local);
    }
    pos_ = lpos_ = 0;
  }
  const EmbeddingsReader& r_;
  Shard sh_;
  int64_t n_, d_, batch_, buffer_rows_, block_rows_, n_blocks_;
  torch::Device dev_;
  Comm* comm_;
  std::vector<int64_t> blocks_;
  int64_t next_block_ = 0;   // first block not yet handed to a read
  std::future<Chunk> pending_;  // the read of the next buffer's blocks, in flight
  Tensor cur_;               // the rows of the buffer this rank holds, in buffer order
  std::vector<char> local_;  // per buffer position: held here
  int64_t pos_ = 0, lpos_ = 0;  // next buffer position; next row of cur_
  Rng* rng_ = nullptr;
  InputStats stats_;
};

}  // namespace

int64_t stream_buffer_rows(const EmbeddingsReader& reader, int64_t batch, double memory_gb) {
  const double budget_rows = memory_gb * 1073741824.0 * 0.5 / (4.0 * static_cast<double>(reader.dim()));
  return std::max<int64_t>(batch, static_cast<int64_t>(budget_rows));
}

std::unique_ptr<BatchSource> memory_source(const float* x_nd, Shard shard, int64_t d, int64_t batch,
                                           torch::Device device, Comm* comm) {
  return std::make_unique<MemorySource>(x_nd, shard, d, batch, device, comm);
}

std::unique_ptr<BatchSource> stream_source(const EmbeddingsReader& reader, Shard shard, int64_t batch,
                                           double memory_gb, torch::Device device, Comm* comm) {
  return std::make_unique<StreamSource>(reader, shard, batch, memory_gb, device, comm);
}

}  // namespace cl::sae
