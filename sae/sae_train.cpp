// SAE training: the manual training step (relu-l1 / topk / batchtopk), in-memory and streamed
// data, per-epoch logs, checkpoints with bitwise resume on CPU, and folding of the input scale
// into the saved weights.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/progress.h"
#include "sae/sae.h"
#include "sae/sae_model.h"

namespace cl {
namespace sae {

using torch::Tensor;

namespace {
// Shuffles with the project's own Fisher-Yates so the order depends only on the engine state.
void shuffle_indices(std::vector<int64_t>& v, std::mt19937_64& rng) {
  for (int64_t i = static_cast<int64_t>(v.size()) - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
    std::swap(v[static_cast<size_t>(i)], v[static_cast<size_t>(j)]);
  }
}
double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }
}  // namespace

Trainer::Trainer(const SaeParams& p, int64_t d_in, int64_t n_rows, torch::Device device)
    : p_(p), D_(d_in), n_(p.n_latents > 0 ? p.n_latents : p.expansion * d_in), n_rows_(n_rows),
      window_(std::max<int64_t>(1, std::min(p.dead_window, n_rows))), device_(device) {
  t.arch = parse_arch(p.arch);
  t.k = t.arch == Arch::relu_l1 ? 0 : std::min(p.k, n_);
  auto f = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  since_fired = torch::zeros({n_}, torch::TensorOptions().dtype(torch::kLong).device(device));
  threshold = torch::zeros({}, f);
  data_mean = torch::zeros({D_}, f);
  reset_epoch_metrics();
}

void Trainer::init(const Tensor& sample_md) {
  auto f = torch::TensorOptions().dtype(torch::kFloat32);
  // Weights are drawn on the CPU from the seeded global generator, then moved, so CPU and
  // CUDA runs start from the same point.
  torch::manual_seed(static_cast<uint64_t>(p_.seed));
  auto W_dec = torch::randn({n_, D_}, f);
  W_dec = W_dec / W_dec.norm(2, {1}, true).clamp_min(1e-12);
  const bool transpose = p_.encoder_init == "transpose" || (p_.encoder_init == "auto" && t.arch != Arch::relu_l1);
  Tensor W_enc, b_enc;
  const double bound = 1.0 / std::sqrt(static_cast<double>(D_));
  if (transpose) {
    W_enc = W_dec.t().contiguous();
    b_enc = torch::zeros({n_}, f);
  } else {
    // The reference's nn.Linear-style kaiming-uniform init (bound 1/sqrt(fan_in)).
    W_enc = torch::rand({D_, n_}, f) * (2 * bound) - bound;
    b_enc = torch::rand({n_}, f) * (2 * bound) - bound;
  }
  auto xs = sample_md.to(torch::kCPU, torch::kFloat64);
  Tensor b_dec;
  if (p_.pre_bias_init == "zero" || xs.size(0) == 0) {
    b_dec = torch::zeros({D_}, torch::kFloat64);
  } else {
    b_dec = xs.mean(0);
    if (p_.pre_bias_init == "geometric_median") {
      // Weiszfeld iterations from the mean; a fixed count keeps the result reproducible.
      for (int it = 0; it < 100; ++it) {
        auto w = 1.0 / (xs - b_dec).norm(2, {1}).clamp_min(1e-8);
        auto next = (xs * w.unsqueeze(1)).sum(0) / w.sum();
        const double change = (next - b_dec).norm().item<double>();
        b_dec = next;
        if (change < 1e-7) break;
      }
    }
  }
  t.W_enc = W_enc.to(device_);
  t.b_enc = b_enc.to(device_);
  t.W_dec = W_dec.to(device_);
  t.b_dec = b_dec.to(torch::kFloat32).to(device_);
  Tensor* params[4] = {&t.W_enc, &t.b_enc, &t.W_dec, &t.b_dec};
  for (int i = 0; i < 4; ++i) {
    m[i] = torch::zeros_like(*params[i]);
    v[i] = torch::zeros_like(*params[i]);
  }
  step_count = 0;
  since_fired.zero_();
  threshold.zero_();
}

Tensor Trainer::mm(const Tensor& a, const Tensor& b) const {
  if (p_.bf16) return torch::mm(a.to(torch::kBFloat16), b.to(torch::kBFloat16)).to(torch::kFloat32);
  return torch::mm(a, b);
}

void Trainer::refresh_dead() {
  dead_idx_ = (since_fired >= window_).nonzero().reshape({-1});
  dead_fresh_ = true;
}

void Trainer::reset_epoch_metrics() {
  auto o = torch::TensorOptions().dtype(torch::kFloat64).device(device_);
  acc_loss_ = torch::zeros({}, o);
  acc_sse_ = torch::zeros({}, o);
  acc_var_ = torch::zeros({}, o);
  acc_l0_ = torch::zeros({}, o);
  acc_l1_ = torch::zeros({}, o);
  acc_rows_ = 0;
}

double Trainer::max_norm_dev() const { return (t.W_dec.norm(2, {1}) - 1.0).abs().max().item<double>(); }

nlohmann::json Trainer::epoch_metrics() {
  const double N = static_cast<double>(std::max<int64_t>(acc_rows_, 1));
  const int64_t n_dead = (since_fired >= window_).sum().item<int64_t>();
  const double var = acc_var_.item<double>();
  nlohmann::json j;
  j["loss"] = acc_loss_.item<double>() / N;
  j["mse"] = acc_sse_.item<double>() / (N * static_cast<double>(D_));
  j["fvu"] = var > 0 ? acc_sse_.item<double>() / var : 0.0;
  j["l0"] = acc_l0_.item<double>() / N;
  j["l1"] = acc_l1_.item<double>() / N;
  j["dead_fraction"] = static_cast<double>(n_dead) / static_cast<double>(n_);
  j["decoder_norm_max_dev"] = max_norm_dev();
  if (t.arch == Arch::batchtopk) j["threshold"] = threshold.item<double>();
  return j;
}

Tensor Trainer::min_kept(const Tensor& x) const {
  torch::NoGradGuard ng;
  auto flat = torch::addmm(t.b_enc, x - t.b_dec, t.W_enc).relu_().reshape({-1});
  const int64_t K = std::min<int64_t>(t.k * x.size(0), flat.numel());
  auto vals = std::get<0>(flat.topk(K, 0, true, false));
  return torch::where(vals > 0, vals, torch::full_like(vals, INFINITY)).min();
}

void Trainer::mm_into(Tensor& out, const Tensor& a, const Tensor& b) const {
  if (p_.bf16)
    out.copy_(mm(a, b));
  else
    at::mm_out(out, a, b);
}

Tensor Trainer::rows(Tensor& buf, int64_t b, int64_t cols) {
  if (!buf.defined() || buf.size(0) < b)
    buf = torch::empty({b, cols}, torch::TensorOptions().dtype(torch::kFloat32).device(device_));
  return buf.narrow(0, 0, b);
}

void Trainer::step(const Tensor& x, int64_t total_steps) {
  torch::NoGradGuard ng;
  const int64_t B = x.size(0);
  const double inv_bd = 1.0 / static_cast<double>(B * D_);

  // Forward. The [B, n] matrices live in reused buffers (allocation of fresh pages costs as
  // much as the element-wise work on the CPU).
  Tensor xc = x - t.b_dec;
  Tensor pre = rows(buf_pre_, B, n_);  // the first batch is the largest one
  if (p_.bf16)
    pre.copy_(mm(xc, t.W_enc).add_(t.b_enc));
  else
    at::addmm_out(pre, t.b_enc, xc, t.W_enc);
  Tensor z;
  if (t.arch == Arch::relu_l1) {
    z = pre.relu_();  // relu-l1 needs no pre-activations after this
  } else if (t.arch == Arch::topk) {
    auto [vals, idx] = pre.topk(t.k, 1, true, false);
    z = rows(buf_z_, B, n_).zero_().scatter_(1, idx, vals.relu_());
  } else {
    const int64_t K = std::min<int64_t>(t.k * B, B * n_);
    Tensor vals, idx;
    bool done = false;
    const int64_t kc = 4 * t.k;
    if (device_.is_cpu() && kc < n_) {
      // A global top-k over B*n values is slow on the CPU; the per-row top 4k candidates hold
      // it unless some row's smallest positive candidate still reaches the global cut (then
      // that row could have more, and the exact full selection runs instead).
      auto [cv, ci] = pre.topk(kc, 1, true, false);
      cv.relu_();
      auto [gv, gp] = cv.reshape({-1}).topk(std::min<int64_t>(K, B * kc), 0, true, false);
      auto row_min = cv.amin(1);
      if (!((row_min >= gv.min()) & (row_min > 0)).any().item<bool>()) {
        vals = gv;
        idx = torch::div(gp, kc, "floor") * n_ + ci.reshape({-1}).index_select(0, gp);
        done = true;
      }
    }
    auto flat = rows(buf_z_, B, n_).reshape({-1});
    if (!done) std::tie(vals, idx) = flat.copy_(pre.reshape({-1})).relu_().topk(K, 0, true, false);
    z = flat.zero_().scatter_(0, idx, vals).view({B, n_});
    // The smallest activation kept in this batch; its running mean is the inference threshold.
    auto minpos = torch::where(vals > 0, vals, torch::full_like(vals, INFINITY)).min();
    minpos = torch::where(torch::isinf(minpos), threshold, minpos);
    if (step_count == 0)
      threshold.copy_(minpos);
    else
      threshold.mul_(p_.threshold_momentum).add_(minpos * (1.0 - p_.threshold_momentum));
  }
  Tensor xhat = torch::addmm(t.b_dec, z, t.W_dec);
  Tensor e = xhat - x;  // [B, D]

  // Loss = sum e^2 / (B D) + l1 * sum z / B (+ AuxK); accumulated for the epoch log.
  double l1_eff = 0.0;
  if (t.arch == Arch::relu_l1) {
    l1_eff = p_.l1;
    if (p_.l1_warmup_steps > 0)
      l1_eff *= std::min(1.0, static_cast<double>(step_count + 1) / static_cast<double>(p_.l1_warmup_steps));
  }
  auto sse = e.pow(2).sum(torch::kFloat64);
  auto zsum = z.sum(torch::kFloat64);  // z >= 0, so this is sum |z|
  auto loss = sse * inv_bd + zsum * (l1_eff / static_cast<double>(B));
  acc_sse_ += sse;
  acc_var_ += (x - data_mean).pow(2).sum(torch::kFloat64);
  acc_l0_ += torch::count_nonzero(z).to(torch::kFloat64);
  acc_l1_ += zsum;
  acc_rows_ += B;
  auto fired = z.amax(0) > 0;  // [n]

  // Backward.
  Tensor g = e * (2.0 * inv_bd);
  Tensor gW_dec = rows(buf_gW_dec_, n_, D_);
  mm_into(gW_dec, z.t(), g);  // [n, D]
  Tensor gb_dec = g.sum(0);
  Tensor dpre = rows(buf_dpre_, B, n_);
  mm_into(dpre, g, t.W_dec.t());  // [B, n]
  if (l1_eff > 0) dpre.add_(l1_eff / static_cast<double>(B));
  at::threshold_backward_out(dpre, dpre, z, 0);  // gradient only through active latents

  if (t.arch != Arch::relu_l1 && p_.aux_alpha > 0 && p_.aux_k > 0) {
    if (!dead_fresh_ || step_count % 50 == 0) refresh_dead();
    const int64_t nd = dead_idx_.numel();
    if (nd > 0) {
      // AuxK: the top aux_k dead latents reconstruct the residual (a constant), normalised by
      // its variance, so dead latents get gradient towards what the live ones miss.
      const int64_t ka = std::min(p_.aux_k, nd);
      auto pre_dead = pre.index_select(1, dead_idx_);
      auto [av, ai] = pre_dead.topk(ka, 1, true, false);
      auto z_aux = torch::zeros_like(pre_dead).scatter_(1, ai, av.relu_());
      auto W_dead = t.W_dec.index_select(0, dead_idx_);
      auto r = -e;
      auto diff = mm(z_aux, W_dead) - r;
      auto denom = (r - r.mean(0)).pow(2).sum().clamp_min(1e-12);
      auto aux = diff.pow(2).sum() / denom;
      loss = loss + aux.to(torch::kFloat64) * p_.aux_alpha;
      auto g_aux = diff * (2.0 * p_.aux_alpha / denom);
      gW_dec.index_add_(0, dead_idx_, mm(z_aux.t(), g_aux));
      auto dz_aux = mm(g_aux, W_dead.t()).mul_(z_aux > 0);
      dpre.index_add_(1, dead_idx_, dz_aux);
    }
  }
  acc_loss_ += loss * static_cast<double>(B);

  Tensor gW_enc = rows(buf_gW_enc_, D_, n_);
  mm_into(gW_enc, xc.t(), dpre);  // [D, n]
  Tensor gb_enc = dpre.sum(0);
  // The tied bias enters as x - b_dec: its encoder-side gradient is -W_enc sum_b dpre.
  gb_dec.sub_(torch::mv(t.W_enc, gb_enc));

  // Unit-norm decoder rows: drop the gradient component parallel to each row.
  gW_dec.sub_((gW_dec * t.W_dec).sum(1, true) * t.W_dec);

  Tensor* grads[4] = {&gW_enc, &gb_enc, &gW_dec, &gb_dec};
  if (p_.grad_clip > 0) {
    auto total = torch::zeros({}, gW_enc.options());
    for (auto* gr : grads) total += gr->pow(2).sum();
    auto coef = (p_.grad_clip / (total.sqrt() + 1e-6)).clamp_max(1.0);
    for (auto* gr : grads) gr->mul_(coef);
  }

  // Adam (torch.optim.Adam's formula) with the warm-up / decay schedule.
  double lr = p_.lr;
  if (p_.lr_warmup_steps > 0)
    lr *= std::min(1.0, static_cast<double>(step_count + 1) / static_cast<double>(p_.lr_warmup_steps));
  if (p_.lr_decay_frac > 0 && total_steps > 0) {
    const double start = static_cast<double>(total_steps) * (1.0 - p_.lr_decay_frac);
    const double s = static_cast<double>(step_count);
    if (s >= start) lr *= std::max(0.0, (static_cast<double>(total_steps) - s) / (static_cast<double>(total_steps) - start));
  }
  ++step_count;
  const double bc1 = 1.0 - std::pow(p_.adam_beta1, static_cast<double>(step_count));
  const double bc2 = 1.0 - std::pow(p_.adam_beta2, static_cast<double>(step_count));
  Tensor* params[4] = {&t.W_enc, &t.b_enc, &t.W_dec, &t.b_dec};
  for (int i = 0; i < 4; ++i) {
    m[i].mul_(p_.adam_beta1).add_(*grads[i], 1.0 - p_.adam_beta1);
    v[i].mul_(p_.adam_beta2).addcmul_(*grads[i], *grads[i], 1.0 - p_.adam_beta2);
    auto denom = (v[i].sqrt() / std::sqrt(bc2)).add_(p_.adam_eps);
    params[i]->addcdiv_(m[i], denom, -lr / bc1);
  }
  t.W_dec.div_(t.W_dec.norm(2, {1}, true).clamp_min(1e-12));

  // Dead-latent bookkeeping: inputs since each latent last fired.
  since_fired = torch::where(fired, torch::zeros_like(since_fired), since_fired + B);

  if (t.arch == Arch::relu_l1 && p_.resample_every > 0 && step_count % p_.resample_every == 0) resample(x, e);
}

void Trainer::resample(const Tensor& x, const Tensor& e) {
  // Anthropic's resampling: dead latents get directions of badly reconstructed inputs, drawn
  // with probability proportional to the squared loss; their Adam state is reset.
  auto dead = (since_fired >= window_).nonzero().reshape({-1}).to(torch::kCPU);
  const int64_t nd = dead.numel();
  if (nd == 0 || rng == nullptr) return;
  auto loss2 = e.pow(2).sum(1).pow(2).to(torch::kCPU, torch::kFloat64).contiguous();
  const int64_t B = loss2.size(0);
  std::vector<double> cdf(static_cast<size_t>(B));
  double acc = 0;
  for (int64_t i = 0; i < B; ++i) cdf[static_cast<size_t>(i)] = (acc += loss2.data_ptr<double>()[i]);
  std::vector<int64_t> pick(static_cast<size_t>(nd));
  for (auto& pk : pick) {
    const double u = uniform01(*rng) * acc;
    pk = std::min<int64_t>(B - 1, std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
  }
  auto pick_t = torch::tensor(pick, torch::kLong).to(device_);
  auto dead_d = dead.to(device_);
  auto dirs = x.index_select(0, pick_t) - t.b_dec;
  dirs = dirs / dirs.norm(2, {1}, true).clamp_min(1e-12);  // [nd, D]
  auto alive = since_fired < window_;
  auto enc_norms = t.W_enc.norm(2, {0});
  auto n_alive = alive.sum().clamp_min(1);
  auto mean_alive = (enc_norms * alive).sum() / n_alive;
  t.W_dec.index_copy_(0, dead_d, dirs);
  t.W_enc.index_copy_(1, dead_d, (dirs * (mean_alive * 0.2)).t().contiguous());
  t.b_enc.index_fill_(0, dead_d, 0.0);
  m[0].index_fill_(1, dead_d, 0.0);
  v[0].index_fill_(1, dead_d, 0.0);
  m[1].index_fill_(0, dead_d, 0.0);
  v[1].index_fill_(0, dead_d, 0.0);
  m[2].index_fill_(0, dead_d, 0.0);
  v[2].index_fill_(0, dead_d, 0.0);
  since_fired.index_fill_(0, dead_d, 0);
  spdlog::debug("sae: resampled {} dead latents at step {}", nd, step_count);
}

// ---------------------------------------------------------------------------------------------
// Data sources

namespace {

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual int64_t rows() const = 0;
  virtual int64_t dim() const = 0;
  virtual void start_epoch(std::mt19937_64& rng) = 0;
  virtual bool next(Tensor& x) = 0;  // next batch on the device, unscaled
  virtual Tensor sample(int64_t m, std::mt19937_64& rng) = 0;
  virtual Tensor mean_f64() = 0;  // [D] float64 on the device
  virtual std::vector<int64_t> order() const = 0;
};

class MemorySource : public BatchSource {
 public:
  MemorySource(const float* x_nd, int64_t n, int64_t d, int64_t batch, torch::Device dev)
      : n_(n), d_(d), batch_(batch), dev_(dev) {
    X_ = torch::from_blob(const_cast<float*>(x_nd), {n, d}, torch::kFloat32);
    if (dev.type() != torch::kCPU) X_ = X_.to(dev);
  }
  int64_t rows() const override { return n_; }
  int64_t dim() const override { return d_; }
  void start_epoch(std::mt19937_64& rng) override {
    perm_.resize(static_cast<size_t>(n_));
    for (int64_t i = 0; i < n_; ++i) perm_[static_cast<size_t>(i)] = i;
    shuffle_indices(perm_, rng);
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
  Tensor sample(int64_t m, std::mt19937_64& rng) override {
    std::vector<int64_t> idx(static_cast<size_t>(n_));
    for (int64_t i = 0; i < n_; ++i) idx[static_cast<size_t>(i)] = i;
    shuffle_indices(idx, rng);
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
    const double budget_rows = memory_gb * 1073741824.0 * 0.5 / (4.0 * static_cast<double>(d_));
    buffer_rows_ = std::max<int64_t>(batch, static_cast<int64_t>(budget_rows));
    block_rows_ = std::max<int64_t>(1, std::min<int64_t>(batch, buffer_rows_ / 8));
    n_blocks_ = (n_ + block_rows_ - 1) / block_rows_;
  }
  int64_t rows() const override { return n_; }
  int64_t dim() const override { return d_; }
  int64_t buffer_rows() const { return buffer_rows_; }
  void start_epoch(std::mt19937_64& rng) override {
    blocks_.resize(static_cast<size_t>(n_blocks_));
    for (int64_t i = 0; i < n_blocks_; ++i) blocks_[static_cast<size_t>(i)] = i;
    shuffle_indices(blocks_, rng);
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
  Tensor sample(int64_t m, std::mt19937_64& rng) override {
    // Rows from a few random blocks: cheap and spread over the file.
    std::vector<int64_t> b(static_cast<size_t>(n_blocks_));
    for (int64_t i = 0; i < n_blocks_; ++i) b[static_cast<size_t>(i)] = i;
    shuffle_indices(b, rng);
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
    std::vector<int64_t> perm(static_cast<size_t>(got));
    for (int64_t i = 0; i < got; ++i) perm[static_cast<size_t>(i)] = i;
    shuffle_indices(perm, *rng_);
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
  std::mt19937_64* rng_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// Checkpoints: every tensor of the state plus the RNG engine and the epoch, in one archive.

Tensor bytes_tensor(const std::string& s) {
  auto t = torch::empty({static_cast<int64_t>(s.size())}, torch::kUInt8);
  std::memcpy(t.data_ptr<uint8_t>(), s.data(), s.size());
  return t;
}
std::string tensor_bytes(const Tensor& t) {
  auto c = t.to(torch::kCPU).contiguous();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), static_cast<size_t>(c.numel()));
}

struct RunState {
  int64_t epoch = 0;  // epochs completed
  double scale = 1.0;
};

void save_checkpoint(const std::string& path, const Trainer& tr, const RunState& rs, const std::mt19937_64& rng,
                     const SaeParams& p, int64_t d, const std::vector<int64_t>& order) {
  torch::serialize::OutputArchive ar;
  ar.write("W_enc", tr.t.W_enc);
  ar.write("b_enc", tr.t.b_enc);
  ar.write("W_dec", tr.t.W_dec);
  ar.write("b_dec", tr.t.b_dec);
  const char* names[4] = {"W_enc", "b_enc", "W_dec", "b_dec"};
  for (int i = 0; i < 4; ++i) {
    ar.write(std::string("adam_m_") + names[i], tr.m[i]);
    ar.write(std::string("adam_v_") + names[i], tr.v[i]);
  }
  ar.write("since_fired", tr.since_fired);
  ar.write("threshold", tr.threshold);
  ar.write("data_mean", tr.data_mean);
  ar.write("step", torch::tensor(std::vector<int64_t>{tr.step_count}, torch::kLong));
  ar.write("epoch", torch::tensor(std::vector<int64_t>{rs.epoch}, torch::kLong));
  ar.write("scale", torch::tensor(std::vector<double>{rs.scale}, torch::kFloat64));
  ar.write("dim", torch::tensor(std::vector<int64_t>{d}, torch::kLong));
  std::ostringstream os;
  os << rng;
  ar.write("rng", bytes_tensor(os.str()));
  ar.write("params", bytes_tensor(nlohmann::json(p).dump()));
  ar.write("data_order", torch::tensor(order, torch::kLong));
  const std::string tmp = path + ".tmp";
  ar.save_to(tmp);
  std::filesystem::rename(tmp, path);
}

void load_checkpoint(const std::string& path, Trainer& tr, RunState& rs, std::mt19937_64& rng, const SaeParams& p,
                     int64_t d, torch::Device dev) {
  if (!std::filesystem::exists(path)) throw_input("{}: checkpoint not found", path);
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(path, dev);
  } catch (const std::exception& e) {
    throw_input("{}: not a conceptlab SAE checkpoint ({})", path, e.what());
  }
  // Read into fresh tensors: InputArchive::read into a defined tensor would try to resize it.
  auto rd = [&](const std::string& key) {
    Tensor x;
    ar.read(key, x);
    return x;
  };
  const int64_t saved_d = rd("dim").item<int64_t>();
  if (saved_d != d) throw_input("{}: checkpoint dim {}, embeddings have dim {}", path, saved_d, d);
  const auto saved = nlohmann::json::parse(tensor_bytes(rd("params"))).get<SaeParams>();
  if (saved.arch != p.arch || saved.expansion != p.expansion || saved.n_latents != p.n_latents || saved.k != p.k)
    throw_input("{}: checkpoint is arch {} expansion {} k {}, run asks arch {} expansion {} k {}", path, saved.arch,
                saved.expansion, saved.k, p.arch, p.expansion, p.k);
  tr.t.W_enc = rd("W_enc");
  tr.t.b_enc = rd("b_enc");
  tr.t.W_dec = rd("W_dec");
  tr.t.b_dec = rd("b_dec");
  const char* names[4] = {"W_enc", "b_enc", "W_dec", "b_dec"};
  for (int i = 0; i < 4; ++i) {
    tr.m[i] = rd(std::string("adam_m_") + names[i]);
    tr.v[i] = rd(std::string("adam_v_") + names[i]);
  }
  tr.since_fired = rd("since_fired");
  tr.threshold = rd("threshold");
  tr.data_mean = rd("data_mean");
  tr.step_count = rd("step").item<int64_t>();
  rs.epoch = rd("epoch").item<int64_t>();
  rs.scale = rd("scale").item<double>();
  Tensor tmp = rd("rng");
  std::istringstream is(tensor_bytes(tmp));
  is >> rng;
}

SaeWeights run_training(BatchSource& src, const SaeParams& p, torch::Device device, const SaeTrainOptions& opt,
                        const std::function<nlohmann::json(const SaeWeights&)>& final_eval) {
  validate_sae_params(p);
  const int64_t N = src.rows(), D = src.dim();
  if (N < 1) throw_input("training data: 0 rows, expected at least 1");
#ifdef CONCEPTLAB_WITH_CUDA
  if (device.is_cuda()) at::globalContext().setAllowTF32CuBLAS(p.tf32);
#endif
  const auto t0 = std::chrono::steady_clock::now();
  Trainer tr(p, D, N, device);
  std::mt19937_64 rng(static_cast<uint64_t>(p.seed));
  tr.rng = &rng;
  RunState rs;
  if (!opt.resume_path.empty()) {
    load_checkpoint(opt.resume_path, tr, rs, rng, p, D, device);
    spdlog::info("sae: resumed from {} at epoch {} (step {})", opt.resume_path, rs.epoch, tr.step_count);
  } else {
    auto sample = src.sample(p.pre_bias_sample, rng);
    if (p.normalize_input) {
      const double msn = sample.pow(2).sum(1).mean().item<double>();
      rs.scale = msn > 0 ? 1.0 / std::sqrt(msn) : 1.0;
    }
    tr.init(sample * rs.scale);
    tr.data_mean = (src.mean_f64() * rs.scale).to(torch::kFloat32);
  }
  const float scale_f = static_cast<float>(rs.scale);
  const int64_t steps_per_epoch = (N + p.batch - 1) / p.batch;
  const int64_t total_steps = steps_per_epoch * p.epochs;

  std::ofstream log;
  const std::string log_path = opt.out_path.empty() ? "" : opt.out_path + ".log.jsonl";
  const std::string ckpt_path = opt.out_path.empty() ? "" : opt.out_path + ".ckpt";
  if (!log_path.empty()) log.open(log_path, opt.resume_path.empty() ? std::ios::trunc : std::ios::app);

  Progress prog("sae train", p.epochs, opt.quiet, "epochs");
  prog.add(rs.epoch);
  nlohmann::json last;
  int64_t run_epochs = 0;
  while (rs.epoch < p.epochs) {
    src.start_epoch(rng);
    tr.reset_epoch_metrics();
    tr.mark_epoch_start();
    Tensor x;
    while (src.next(x)) {
      if (rs.scale != 1.0) x = x * scale_f;
      tr.step(x, total_steps);
      if (opt.on_step) opt.on_step(tr.step_count, tr.max_norm_dev());
    }
    ++rs.epoch;
    ++run_epochs;
    last = tr.epoch_metrics();
    last["epoch"] = rs.epoch;
    last["step"] = tr.step_count;
    last["time_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (log.is_open()) log << last.dump() << '\n' << std::flush;
    prog.set_suffix(fmt::format("loss {:.4g} fvu {:.4f} l0 {:.1f} dead {:.3f}", last["loss"].get<double>(),
                                last["fvu"].get<double>(), last["l0"].get<double>(),
                                last["dead_fraction"].get<double>()));
    prog.add(1);
    const bool stop = opt.stop_after_epochs > 0 && run_epochs >= opt.stop_after_epochs;
    const bool periodic = p.checkpoint_every > 0 && (rs.epoch % p.checkpoint_every == 0 || rs.epoch == p.epochs);
    if (!ckpt_path.empty() && (periodic || stop)) save_checkpoint(ckpt_path, tr, rs, rng, p, D, src.order());
    if (stop) break;
  }
  prog.finish();

  if (tr.t.arch == Arch::batchtopk && rs.epoch == p.epochs) {
    // The running estimate lags behind the weights early on; the saved threshold is the mean
    // over one more pass (up to 64 batches) of the batch minimum kept by the final weights.
    src.start_epoch(rng);
    Tensor x, sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
    int64_t used = 0;
    while (used < 64 && src.next(x)) {
      if (rs.scale != 1.0) x = x * scale_f;
      auto mk = tr.min_kept(x);
      sum += torch::where(torch::isinf(mk), tr.threshold, mk).to(torch::kFloat64);
      ++used;
    }
    if (used > 0) tr.threshold = (sum / static_cast<double>(used)).to(torch::kFloat32);
  }

  // Fold the input scale back: activations in input units, decoder rows still unit norm.
  SaeWeights w;
  {
    SaeTensors folded = tr.t;
    const double inv = 1.0 / rs.scale;
    folded.b_enc = tr.t.b_enc * inv;
    folded.b_dec = tr.t.b_dec * inv;
    folded.threshold = tr.threshold.item<double>() * inv;
    from_tensors(folded, w);
  }
  nlohmann::json cfg = p;
  cfg["d_in"] = D;
  cfg["n_train"] = N;
  cfg["input_scale"] = rs.scale;
  cfg["device"] = device.str();
  cfg["inputs"] = opt.inputs;
  w.config = cfg;
  nlohmann::json metrics = final_eval(w);
  metrics["epochs_trained"] = rs.epoch;
  metrics["steps"] = tr.step_count;
  metrics["last_epoch"] = last;
  metrics["train_time_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  w.metrics = metrics;
  return w;
}

}  // namespace
}  // namespace sae

SaeWeights train_sae(const float* x_nd, int64_t n, int64_t d, const SaeParams& p, torch::Device device,
                     const SaeTrainOptions& opt) {
  sae::MemorySource src(x_nd, n, d, p.batch, device);
  return sae::run_training(src, p, device, opt, [&](const SaeWeights& w) {
    return evaluate_sae(w, x_nd, n, d, device, p.dead_window);
  });
}

SaeWeights train_sae(const EmbeddingsReader& reader, const SaeParams& p, torch::Device device,
                     const SaeTrainOptions& opt) {
  const double bytes = static_cast<double>(reader.rows()) * static_cast<double>(reader.dim()) * 4.0;
  if (bytes <= p.memory_gb * 1073741824.0 * 0.75) {
    std::vector<float> data(static_cast<size_t>(reader.rows() * reader.dim()));
    reader.read_rows(0, reader.rows(), data.data());
    spdlog::info("sae: {} x {} embeddings loaded in memory ({:.2f} GiB)", reader.rows(), reader.dim(), bytes / 1073741824.0);
    return train_sae(data.data(), reader.rows(), reader.dim(), p, device, opt);
  }
  sae::StreamSource src(reader, p.batch, p.memory_gb, device);
  spdlog::info("sae: streaming {} x {} embeddings ({:.2f} GiB > budget), buffer {} rows", reader.rows(), reader.dim(),
               bytes / 1073741824.0, src.buffer_rows());
  return sae::run_training(src, p, device, opt, [&](const SaeWeights& w) {
    return evaluate_sae(w, reader, device, p.dead_window, 8192, opt.quiet);
  });
}

}  // namespace cl
