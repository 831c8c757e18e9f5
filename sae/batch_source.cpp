// Batch sources for SAE training: in-memory rows, or a file streamed in shuffled blocks.
#include "sae/batch_source.h"

#include <algorithm>

namespace cl::sae {

using torch::Tensor;

namespace {

class MemorySource : public BatchSource {
 public:
  MemorySource(const float* x_nd, int64_t n, int64_t d, int64_t batch, torch::Device dev)
      : n_(n), d_(d), batch_(batch), dev_(dev) {
    X_ = torch::from_blob(const_cast<float*>(x_nd), {n, d}, torch::kFloat32);
    if (dev.type() != torch::kCPU) X_ = X_.to(dev);
  }
  int64_t rows() const override { return n_; }
  int64_t dim() const override { return d_; }
  void start_epoch(Rng& rng) override {
    perm_ = iota_indices(n_);
    rng.shuffle(perm_);
    perm_t_ = torch::tensor(perm_, torch::kLong).to(dev_);
    pos_ = 0;
  }
  bool next(Tensor& x) override {
    if (pos_ >= n_) return false;
    const int64_t B = std::min(batch_, n_ - pos_);
    x = X_.index_select(0, perm_t_.slice(0, pos_, pos_ + B));
    pos_ += B;
    return true;
  }
  Tensor sample(int64_t m, Rng& rng) override {
    std::vector<int64_t> idx = iota_indices(n_);
    rng.shuffle(idx);
    idx.resize(static_cast<size_t>(std::min(m, n_)));
    return X_.index_select(0, torch::tensor(idx, torch::kLong).to(dev_));
  }
  Tensor mean_f64() override {
    auto s = torch::zeros({d_}, torch::TensorOptions().dtype(torch::kFloat64).device(dev_));
    for (int64_t i = 0; i < n_; i += 65536) s += X_.slice(0, i, std::min(n_, i + 65536)).sum(0, false, torch::kFloat64);
    return s / static_cast<double>(std::max<int64_t>(n_, 1));
  }
  std::vector<int64_t> order() const override { return perm_; }

 private:
  int64_t n_, d_, batch_;
  torch::Device dev_;
  Tensor X_, perm_t_;
  std::vector<int64_t> perm_;
  int64_t pos_ = 0;
};

// Streams an embeddings file: per epoch a shuffled order of blocks is read into a bounded
// buffer whose rows are shuffled again; leftover rows (< batch) carry into the next buffer.
class StreamSource : public BatchSource {
 public:
  StreamSource(const EmbeddingsReader& r, int64_t batch, double memory_gb, torch::Device dev)
      : r_(r), n_(r.rows()), d_(r.dim()), batch_(batch), dev_(dev) {
    buffer_rows_ = stream_buffer_rows(r, batch, memory_gb);
    block_rows_ = std::max<int64_t>(1, std::min<int64_t>(batch, buffer_rows_ / 8));
    n_blocks_ = (n_ + block_rows_ - 1) / block_rows_;
  }
  int64_t rows() const override { return n_; }
  int64_t dim() const override { return d_; }
  int64_t buffer_rows() const { return buffer_rows_; }
  void start_epoch(Rng& rng) override {
    blocks_ = iota_indices(n_blocks_);
    rng.shuffle(blocks_);
    next_block_ = 0;
    cur_ = Tensor();
    pos_ = 0;
    rng_ = &rng;
  }
  bool next(Tensor& x) override {
    const int64_t have = cur_.defined() ? cur_.size(0) - pos_ : 0;
    if (have < batch_ && next_block_ < n_blocks_) {
      refill();
      return next(x);
    }
    if (have == 0) return false;
    const int64_t B = std::min(batch_, have);
    x = cur_.slice(0, pos_, pos_ + B);
    pos_ += B;
    return true;
  }
  Tensor sample(int64_t m, Rng& rng) override {
    // Rows from a few random blocks: cheap and spread over the file.
    std::vector<int64_t> b = iota_indices(n_blocks_);
    rng.shuffle(b);
    std::vector<float> buf;
    int64_t got = 0;
    for (int64_t bi : b) {
      if (got >= m) break;
      const int64_t s = bi * block_rows_, c = std::min({block_rows_, n_ - s, m - got});
      buf.resize(static_cast<size_t>((got + c) * d_));
      r_.read_rows(s, c, buf.data() + got * d_);
      got += c;
    }
    return torch::from_blob(buf.data(), {got, d_}, torch::kFloat32).clone().to(dev_);
  }
  Tensor mean_f64() override {
    auto s = torch::zeros({d_}, torch::kFloat64);
    std::vector<float> buf;
    for (int64_t i = 0; i < n_; i += block_rows_) {
      const int64_t c = std::min(block_rows_, n_ - i);
      buf.resize(static_cast<size_t>(c * d_));
      r_.read_rows(i, c, buf.data());
      s += torch::from_blob(buf.data(), {c, d_}, torch::kFloat32).sum(0, false, torch::kFloat64);
    }
    return (s / static_cast<double>(std::max<int64_t>(n_, 1))).to(dev_);
  }
  std::vector<int64_t> order() const override { return blocks_; }

 private:
  void refill() {
    std::vector<float> buf;
    int64_t got = 0;
    while (next_block_ < n_blocks_ && got < buffer_rows_) {
      const int64_t s = blocks_[static_cast<size_t>(next_block_++)] * block_rows_;
      const int64_t c = std::min(block_rows_, n_ - s);
      buf.resize(static_cast<size_t>((got + c) * d_));
      r_.read_rows(s, c, buf.data() + got * d_);
      got += c;
    }
    std::vector<int64_t> perm = iota_indices(got);
    rng_->shuffle(perm);
    auto fresh = torch::from_blob(buf.data(), {got, d_}, torch::kFloat32)
                     .index_select(0, torch::tensor(perm, torch::kLong))
                     .to(dev_);
    if (cur_.defined() && pos_ < cur_.size(0))
      cur_ = torch::cat({cur_.slice(0, pos_), fresh}, 0);
    else
      cur_ = fresh;
    pos_ = 0;
  }
  const EmbeddingsReader& r_;
  int64_t n_, d_, batch_, buffer_rows_, block_rows_, n_blocks_;
  torch::Device dev_;
  std::vector<int64_t> blocks_;
  int64_t next_block_ = 0;
  Tensor cur_;
  int64_t pos_ = 0;
  Rng* rng_ = nullptr;
};


}  // namespace

int64_t stream_buffer_rows(const EmbeddingsReader& reader, int64_t batch, double memory_gb) {
  const double budget_rows = memory_gb * 1073741824.0 * 0.5 / (4.0 * static_cast<double>(reader.dim()));
  return std::max<int64_t>(batch, static_cast<int64_t>(budget_rows));
}

std::unique_ptr<BatchSource> memory_source(const float* x_nd, int64_t n, int64_t d, int64_t batch,
                                           torch::Device device) {
  return std::make_unique<MemorySource>(x_nd, n, d, batch, device);
}

std::unique_ptr<BatchSource> stream_source(const EmbeddingsReader& reader, int64_t batch, double memory_gb,
                                           torch::Device device) {
  return std::make_unique<StreamSource>(reader, batch, memory_gb, device);
}

}  // namespace cl::sae
