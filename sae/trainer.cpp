// The SAE optimizer step (relu-l1 / topk / batchtopk / matryoshka) in parts (forward, loss terms,
// backward, AuxK, reduction, clipping, learning rate, Adam), AuxK for top-k architectures and
// Anthropic-style resampling for relu-l1.
#include "sae/trainer.h"

#include <algorithm>
#include <cmath>

#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>

#include "core/error.h"

namespace cl::sae {

using torch::Tensor;

nlohmann::json to_json(const EpochMetrics& m) {
  nlohmann::json j = {{"epoch", m.epoch}, {"step", m.step}, {"loss", m.loss}, {"mse", m.mse}, {"fvu", m.fvu},
                      {"l0", m.l0},       {"l1", m.l1},     {"dead_fraction", m.dead_fraction},
                      {"decoder_norm_max_dev", m.decoder_norm_max_dev}, {"time_s", m.time_s}};
  if (m.has_threshold) j["threshold"] = m.threshold;
  if (!m.prefixes.empty()) {
    nlohmann::json fp = nlohmann::json::object();
    for (size_t i = 0; i < m.prefixes.size(); ++i) fp[std::to_string(m.prefixes[i])] = m.fvu_prefix[i];
    j["fvu_prefix"] = fp;
  }
  return j;
}

Trainer::Trainer(const TrainParams& p, int64_t d_in, int64_t n_rows, torch::Device device)
    : p_(p), D_(d_in), n_(latent_count(p, d_in)), n_rows_(n_rows),
      window_(std::max<int64_t>(1, std::min(p.dead_window, n_rows))), device_(device) {
  t.arch = parse_arch(p.arch);
  t.k = t.arch == Arch::relu_l1 ? 0 : std::min(p.k, n_);
  t.prefixes = nested_sizes(p, n_);
  auto f = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  since_fired = torch::zeros({n_}, torch::TensorOptions().dtype(torch::kLong).device(device));
  threshold = torch::zeros({}, f);
  data_mean = torch::zeros({D_}, f);
  reset_epoch_metrics();
}

void Trainer::init(const Tensor& sample_md) {
  auto f = torch::TensorOptions().dtype(torch::kFloat32);
  // Weights are drawn on the CPU from a generator seeded like torch.manual_seed, then moved, so
  // CPU and CUDA runs start from the same point; a generator of its own leaves LibTorch's global
  // one alone (data-parallel ranks that are threads of one process would race on it).
  at::Generator gen = at::detail::createCPUGenerator(static_cast<uint64_t>(p_.seed));
  auto W_dec = torch::randn({n_, D_}, gen, f);
  W_dec = W_dec / W_dec.norm(2, {1}, true).clamp_min(1e-12);
  const bool transpose = p_.encoder_init == "transpose" || (p_.encoder_init == "auto" && t.arch != Arch::relu_l1);
  Tensor W_enc, b_enc;
  const double bound = 1.0 / std::sqrt(static_cast<double>(D_));
  if (transpose) {
    W_enc = W_dec.t().contiguous();
    b_enc = torch::zeros({n_}, f);
  } else {
    // The reference's nn.Linear-style kaiming-uniform init (bound 1/sqrt(fan_in)).
    W_enc = torch::rand({D_, n_}, gen, f) * (2 * bound) - bound;
    b_enc = torch::rand({n_}, gen, f) * (2 * bound) - bound;
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
  const auto params = t.params();
  for (size_t i = 0; i < params.size(); ++i) {
    adam.exp_avg[i] = torch::zeros_like(*params[i]);
    adam.exp_avg_sq[i] = torch::zeros_like(*params[i]);
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
  acc_sse_prefix_ = torch::zeros({static_cast<int64_t>(t.prefixes.size())}, o);
  acc_rows_ = 0;
  acc_reduced_ = false;
}

bool Trainer::epoch_loss_finite() const {
  if (!distributed() || acc_reduced_) return std::isfinite(acc_loss_.item<double>());
  auto total = acc_loss_.clone();  // NaN or inf on any rank makes the sum so
  comm->all_reduce(total, ReduceOp::sum);
  return std::isfinite(total.item<double>());
}

void Trainer::check_ranks_agree() const {
  if (!distributed()) return;
  // Identical gradients and identical updates keep the ranks' weights bitwise equal; this makes
  // sure (a backend that reduced differently per rank would be caught here, not in the results).
  auto sum = torch::zeros({}, torch::kFloat64);
  for (const Tensor* w : t.params())
    sum += (w->to(torch::kCPU, torch::kFloat64) * torch::arange(w->numel(), torch::kFloat64).view(w->sizes()).remainder(7).add(1)).sum();
  auto lo = sum.reshape({1}).clone(), hi = lo.clone();
  comm->all_reduce(lo, ReduceOp::min);
  comm->all_reduce(hi, ReduceOp::max);
  if (lo.item<double>() != hi.item<double>())
    throw_input("distributed: the ranks' SAE weights differ after step {} (checksums {:.17g} to {:.17g}); the "
                "process group reduced differently per rank",
                step_count, lo.item<double>(), hi.item<double>());
}

bool Trainer::weights_finite() const {
  for (const Tensor* w : t.params())
    if (!w->isfinite().all().item<bool>()) return false;
  return t.activation() != Arch::batchtopk || std::isfinite(threshold.item<double>());
}

double Trainer::max_norm_dev() const { return (t.W_dec.norm(2, {1}) - 1.0).abs().max().item<double>(); }

EpochMetrics Trainer::epoch_metrics() {
  if (distributed() && !acc_reduced_) {
    // Each rank summed its rows; the epoch's figures are the sums over ranks, kept on every rank
    // (a second call, or epoch_loss_finite, must not sum them again).
    auto all = torch::cat({torch::stack({acc_loss_, acc_sse_, acc_var_, acc_l0_, acc_l1_}), acc_sse_prefix_});
    comm->all_reduce(all, ReduceOp::sum);
    acc_loss_ = all[0], acc_sse_ = all[1], acc_var_ = all[2], acc_l0_ = all[3], acc_l1_ = all[4];
    acc_sse_prefix_ = all.slice(0, 5);
    acc_reduced_ = true;
  }
  const Tensor &loss = acc_loss_, &sse = acc_sse_, &var_t = acc_var_, &l0 = acc_l0_, &l1 = acc_l1_,
               &sse_prefix = acc_sse_prefix_;
  const double N = static_cast<double>(std::max<int64_t>(acc_rows_, 1));
  const int64_t n_dead = (since_fired >= window_).sum().item<int64_t>();
  const double var = var_t.item<double>();
  EpochMetrics m;
  m.step = step_count;
  m.loss = loss.item<double>() / N;
  m.mse = sse.item<double>() / (N * static_cast<double>(D_));
  m.fvu = var > 0 ? sse.item<double>() / var : 0.0;
  m.l0 = l0.item<double>() / N;
  m.l1 = l1.item<double>() / N;
  m.dead_fraction = static_cast<double>(n_dead) / static_cast<double>(n_);
  m.decoder_norm_max_dev = max_norm_dev();
  m.has_threshold = t.activation() == Arch::batchtopk;
  if (m.has_threshold) m.threshold = threshold.item<double>();
  if (!t.prefixes.empty()) {
    m.prefixes = t.prefixes;
    auto sp = sse_prefix.to(torch::kCPU);
    for (size_t i = 0; i < t.prefixes.size(); ++i)
      m.fvu_prefix.push_back(var > 0 ? sp[static_cast<int64_t>(i)].item<double>() / var : 0.0);
  }
  return m;
}

Tensor Trainer::global_top_k(const LocalTop& local_top, int64_t K, Tensor& vals, Tensor& idx) const {
  const int64_t W = comm->size();
  // Values spread evenly put K / W of each rank's in the global top K; a quarter more covers the
  // usual imbalance of one batch.
  const int64_t first = std::min<int64_t>(K, (5 * K + 4 * W - 1) / (4 * W));
  for (const int64_t m : {first, K}) {
    std::tie(vals, idx) = local_top(m);
    auto offer = torch::full({m}, -INFINITY, vals.options());  // padded: a rank may have fewer
    offer.narrow(0, 0, vals.numel()).copy_(vals);
    auto all = comm->all_gather(offer);  // [W, m]
    auto top = std::get<0>(all.reshape({-1}).topk(K, 0, true, false));
    auto cut = top.min();
    // A rank whose every offer is above the cut may hold more values above it: offer K each.
    if (m < K && (all.amin(1) > cut).any().item<bool>()) {
      ++full_offers;
      continue;
    }
    auto keep = vals >= cut;
    vals = vals.masked_select(keep);
    idx = idx.masked_select(keep);
    return torch::where(top > 0, top, torch::full_like(top, INFINITY)).min();
  }
  CL_ASSERT(false, "offers of K values always decide the cut");
  return {};
}

Tensor Trainer::min_kept(const Tensor& x, int64_t batch_rows) const {
  torch::NoGradGuard ng;
  auto flat = torch::addmm(t.b_enc, x - t.b_dec, t.W_enc).relu_().reshape({-1});
  const int64_t B = batch_rows > 0 ? batch_rows : x.size(0);
  const int64_t K = std::min<int64_t>(t.k * B, B * n_);
  auto local_top = [&](int64_t m) {
    auto [v, i] = flat.topk(std::min<int64_t>(m, flat.numel()), 0, true, false);
    return std::make_pair(v, i);
  };
  Tensor vals, idx;
  if (distributed()) return global_top_k(local_top, K, vals, idx);
  std::tie(vals, idx) = local_top(K);
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

// ---- One step, in parts: forward, loss terms, backward, AuxK, encoder gradients, reduction,
// decoder projection, clipping, learning rate, Adam. Each works on the step's Forward and Grads.

Trainer::Forward Trainer::forward(const Tensor& x, int64_t Bl, int64_t B) {
  Forward f;
  // The [B, n] matrices live in reused buffers (allocation of fresh pages costs as much as the
  // element-wise work on the CPU).
  f.xc = x - t.b_dec;
  f.pre = rows(buf_pre_, Bl, n_);  // grows when a later batch is larger
  if (p_.bf16)
    f.pre.copy_(mm(f.xc, t.W_enc).add_(t.b_enc));
  else
    at::addmm_out(f.pre, t.b_enc, f.xc, t.W_enc);
  if (t.arch == Arch::relu_l1) {
    f.z = f.pre.relu_();  // relu-l1 needs no pre-activations after this
  } else if (t.activation() == Arch::topk) {
    auto [vals, idx] = f.pre.topk(t.k, 1, true, false);
    f.z = rows(buf_z_, Bl, n_).zero_().scatter_(1, idx, vals.relu_());
  } else {
    f.z = batch_top_k(f.pre, Bl, B);
  }
  // Reconstruction error(s) [B, D]; matryoshka: one per nested size, the full one last.
  if (t.prefixes.empty()) {
    f.e = torch::addmm(t.b_dec, f.z, t.W_dec) - x;
  } else {
    f.errs = nested_errors(x, f.z, t.W_dec, t.b_dec, t.prefixes);
    f.e = f.errs.back();
  }
  return f;
}

Tensor Trainer::batch_top_k(const Tensor& pre, int64_t Bl, int64_t B) {
  // K of the global batch.
  const int64_t K = std::min<int64_t>(t.k * B, B * n_);
  const int64_t kc = 4 * t.k;
  auto flat = rows(buf_z_, Bl, n_).reshape({-1});
  // This rank's best m values (all it has when fewer) and their flat indices.
  auto local_top = [&](int64_t m) -> std::pair<Tensor, Tensor> {
    m = std::min(m, Bl * n_);
    if (device_.is_cpu() && kc < n_ && Bl > 0) {
      // A top-m over B*n values is slow on the CPU; the per-row top 4k candidates hold it
      // unless some row's smallest positive candidate still reaches the cut (then that row
      // could have more, and the exact full selection runs instead).
      auto [cv, ci] = pre.topk(kc, 1, true, false);
      cv.relu_();
      auto [gv, gp] = cv.reshape({-1}).topk(std::min<int64_t>(m, Bl * kc), 0, true, false);
      auto row_min = cv.amin(1);
      if (!((row_min >= gv.min()) & (row_min > 0)).any().item<bool>())
        return {gv, torch::div(gp, kc, "floor") * n_ + ci.reshape({-1}).index_select(0, gp)};
    }
    auto [v, i] = flat.copy_(pre.reshape({-1})).relu_().topk(m, 0, true, false);
    return {v, i};
  };
  Tensor vals, idx;
  // The smallest activation kept in this batch; its running mean is the inference threshold.
  Tensor minpos;
  if (distributed()) {
    minpos = global_top_k(local_top, K, vals, idx);
  } else {
    std::tie(vals, idx) = local_top(K);
    minpos = torch::where(vals > 0, vals, torch::full_like(vals, INFINITY)).min();
  }
  Tensor z = flat.zero_().scatter_(0, idx, vals).view({Bl, n_});
  minpos = torch::where(torch::isinf(minpos), threshold, minpos);
  if (step_count == 0)
    threshold.copy_(minpos);
  else
    threshold.mul_(p_.threshold_momentum).add_(minpos * (1.0 - p_.threshold_momentum));
  return z;
}

double Trainer::l1_coefficient() const {
  if (t.arch != Arch::relu_l1) return 0.0;
  double l1 = p_.l1;
  if (p_.l1_warmup_steps > 0)
    l1 *= std::min(1.0, static_cast<double>(step_count + 1) / static_cast<double>(p_.l1_warmup_steps));
  return l1;
}

Tensor Trainer::loss_terms(const Tensor& x, const Forward& f, int64_t B, double l1) {
  // Loss = sum e^2 / (B D) + l1 * sum z / B (AuxK added later); accumulated for the epoch log.
  const double inv_bd = 1.0 / static_cast<double>(B * D_);
  auto sse = f.e.pow(2).sum(torch::kFloat64);
  auto zsum = f.z.sum(torch::kFloat64);  // z >= 0, so this is sum |z|
  Tensor recon = sse * inv_bd;
  if (!f.errs.empty()) {
    // Mean over the nested sizes (the full size is the last one).
    const int64_t P = static_cast<int64_t>(f.errs.size());
    std::vector<Tensor> sse_p;
    for (int64_t q = 0; q + 1 < P; ++q) sse_p.push_back(f.errs[static_cast<size_t>(q)].pow(2).sum(torch::kFloat64));
    sse_p.push_back(sse);
    auto sse_all = torch::stack(sse_p);
    acc_sse_prefix_ += sse_all;
    recon = sse_all.sum() * (inv_bd / static_cast<double>(P));
  }
  auto loss = recon + zsum * (l1 / static_cast<double>(B));
  acc_sse_ += sse;
  acc_var_ += (x - data_mean).pow(2).sum(torch::kFloat64);
  acc_l0_ += torch::count_nonzero(f.z).to(torch::kFloat64);
  acc_l1_ += zsum;
  acc_rows_ += B;
  return loss;
}

void Trainer::backward(const Forward& f, Grads& g, int64_t Bl, int64_t B, double l1) {
  const double inv_bd = 1.0 / static_cast<double>(B * D_);
  g.dpre = rows(buf_dpre_, Bl, n_);
  const int64_t P = static_cast<int64_t>(f.errs.size());
  if (P == 0) {
    Tensor e2 = f.e * (2.0 * inv_bd);
    mm_into(g.W_dec, f.z.t(), e2);  // [n, D]
    g.b_dec = e2.sum(0);
    mm_into(g.dpre, e2, t.W_dec.t());  // [B, n]
  } else {
    // The latents of segment s = [m_{s-1}, m_s) enter every reconstruction of size m_p >= m_s,
    // so their error signal is the suffix sum G_s = 2 / (B D P) sum_{p >= s} errs[p]; the
    // segment products together cost the same as the plain step's two.
    const double c = 2.0 * inv_bd / static_cast<double>(P);
    Tensor G;
    for (int64_t q = P - 1; q >= 0; --q) {
      const Tensor& eq = f.errs[static_cast<size_t>(q)];
      G = q == P - 1 ? eq * c : G.add_(eq, c);
      const int64_t lo = q == 0 ? 0 : t.prefixes[static_cast<size_t>(q - 1)];
      const int64_t len = t.prefixes[static_cast<size_t>(q)] - lo;
      Tensor gW_seg = g.W_dec.narrow(0, lo, len), dpre_seg = g.dpre.narrow(1, lo, len);
      mm_into(gW_seg, f.z.narrow(1, lo, len).t(), G);          // [len, D]
      mm_into(dpre_seg, G, t.W_dec.narrow(0, lo, len).t());  // [B, len]
    }
    g.b_dec = G.sum(0);  // G_0: every reconstruction has the bias
  }
  if (l1 > 0) g.dpre.add_(l1 / static_cast<double>(B));
  at::threshold_backward_out(g.dpre, g.dpre, f.z, 0);  // gradient only through active latents
}

void Trainer::aux_k(const Forward& f, Grads& g, Tensor& loss, int64_t B) {
  if (t.arch == Arch::relu_l1 || p_.aux_alpha <= 0 || p_.aux_k <= 0) return;
  if (!dead_fresh_ || step_count % 50 == 0) refresh_dead();
  const int64_t nd = dead_idx_.numel();
  if (nd == 0) return;
  // AuxK: the top aux_k dead latents reconstruct the residual (a constant), normalised by its
  // variance, so dead latents get gradient towards what the live ones miss.
  const int64_t ka = std::min(p_.aux_k, nd);
  auto pre_dead = f.pre.index_select(1, dead_idx_);
  auto [av, ai] = pre_dead.topk(ka, 1, true, false);
  auto z_aux = torch::zeros_like(pre_dead).scatter_(1, ai, av.relu_());
  auto W_dead = t.W_dec.index_select(0, dead_idx_);
  auto r = -f.e;
  auto diff = mm(z_aux, W_dead) - r;
  Tensor denom;
  if (distributed()) {
    // The residual's variance over the global batch: sum r^2 - |sum r|^2 / B over ranks.
    auto st = torch::cat({r.sum(0, false, torch::kFloat64), r.pow(2).sum(torch::kFloat64).reshape({1})});
    comm->all_reduce(st, ReduceOp::sum);
    denom = (st[D_] - st.narrow(0, 0, D_).pow(2).sum() / static_cast<double>(B)).to(torch::kFloat32).clamp_min(1e-12);
  } else {
    denom = (r - r.mean(0)).pow(2).sum().clamp_min(1e-12);
  }
  auto aux = diff.pow(2).sum() / denom;
  loss = loss + aux.to(torch::kFloat64) * p_.aux_alpha;
  auto g_aux = diff * (2.0 * p_.aux_alpha / denom);
  g.W_dec.index_add_(0, dead_idx_, mm(z_aux.t(), g_aux));
  auto dz_aux = mm(g_aux, W_dead.t()).mul_(z_aux > 0);
  g.dpre.index_add_(1, dead_idx_, dz_aux);
}

void Trainer::encoder_grads(const Forward& f, Grads& g) {
  mm_into(g.W_enc, f.xc.t(), g.dpre);  // [D, n]
  g.b_enc = g.dpre.sum(0);
  // The tied bias enters as x - b_dec: its encoder-side gradient is -W_enc sum_b dpre.
  g.b_dec.sub_(torch::mv(t.W_enc, g.b_enc));
}

void Trainer::reduce(Grads& g, Tensor& fired) {
  // Every gradient is a sum over the batch's rows, so the ranks' sum is the global batch's. The
  // weight gradients were written into flat_grads_ already; the rest joins them: one all-reduce.
  flat_grads_.narrow(0, D_ * n_, n_).copy_(g.b_enc);
  flat_grads_.narrow(0, 2 * D_ * n_ + n_, D_).copy_(g.b_dec);
  auto fired_f = flat_grads_.narrow(0, 2 * D_ * n_ + n_ + D_, n_);
  fired_f.copy_(fired);
  comm->all_reduce(flat_grads_, ReduceOp::sum);
  g.b_enc = flat_grads_.narrow(0, D_ * n_, n_);
  g.b_dec = flat_grads_.narrow(0, 2 * D_ * n_ + n_, D_);
  fired = fired_f > 0;
}

void Trainer::project_decoder_grad(Grads& g) const {
  // Unit-norm decoder rows: drop the gradient component parallel to each row.
  g.W_dec.sub_((g.W_dec * t.W_dec).sum(1, true) * t.W_dec);
}

void Trainer::clip(Grads& g) const {
  if (p_.grad_clip <= 0) return;
  auto total = torch::zeros({}, g.W_enc.options());
  for (auto* gr : g.list()) total += gr->pow(2).sum();
  auto coef = (p_.grad_clip / (total.sqrt() + 1e-6)).clamp_max(1.0);
  for (auto* gr : g.list()) gr->mul_(coef);
}

double Trainer::learning_rate(int64_t total_steps) const {
  double lr = p_.lr;
  if (p_.lr_warmup_steps > 0)
    lr *= std::min(1.0, static_cast<double>(step_count + 1) / static_cast<double>(p_.lr_warmup_steps));
  if (p_.lr_decay_frac > 0 && total_steps > 0) {
    const double start = static_cast<double>(total_steps) * (1.0 - p_.lr_decay_frac);
    const double s = static_cast<double>(step_count);
    if (s >= start) lr *= std::max(0.0, (static_cast<double>(total_steps) - s) / (static_cast<double>(total_steps) - start));
  }
  return lr;
}

void Trainer::adam_update(Grads& g, double lr) {
  // torch.optim.Adam's formula; step_count counts this step.
  ++step_count;
  const double bc1 = 1.0 - std::pow(p_.adam_beta1, static_cast<double>(step_count));
  const double bc2 = 1.0 - std::pow(p_.adam_beta2, static_cast<double>(step_count));
  const auto params = t.params();
  const auto grads = g.list();
  for (size_t i = 0; i < params.size(); ++i) {
    adam.exp_avg[i].mul_(p_.adam_beta1).add_(*grads[i], 1.0 - p_.adam_beta1);
    adam.exp_avg_sq[i].mul_(p_.adam_beta2).addcmul_(*grads[i], *grads[i], 1.0 - p_.adam_beta2);
    auto denom = (adam.exp_avg_sq[i].sqrt() / std::sqrt(bc2)).add_(p_.adam_eps);
    params[i]->addcdiv_(adam.exp_avg[i], denom, -lr / bc1);
  }
}

void Trainer::step(const Tensor& x, int64_t total_steps, int64_t batch_rows, const std::vector<int64_t>* pos) {
  torch::NoGradGuard ng;
  const bool dist = distributed();
  CL_ASSERT(!acc_reduced_, "step after epoch_metrics without reset_epoch_metrics");
  // B: rows of the (global) batch, which every normalisation uses; Bl: rows here (may be 0).
  const int64_t Bl = x.size(0), B = batch_rows > 0 ? batch_rows : Bl;
  Grads g;
  if (dist) {
    // Data-parallel: the weight gradients are written straight into the all-reduce buffer.
    if (!flat_grads_.defined())
      flat_grads_ = torch::empty({2 * D_ * n_ + 2 * n_ + D_}, torch::TensorOptions().dtype(torch::kFloat32).device(device_));
    g.W_enc = flat_grads_.narrow(0, 0, D_ * n_).view({D_, n_});
    g.W_dec = flat_grads_.narrow(0, D_ * n_ + n_, n_ * D_).view({n_, D_});
  } else {
    g.W_enc = rows(buf_gW_enc_, D_, n_);
    g.W_dec = rows(buf_gW_dec_, n_, D_);
  }

  const Forward f = forward(x, Bl, B);
  const double l1 = l1_coefficient();
  Tensor loss = loss_terms(x, f, B, l1);
  Tensor fired = Bl > 0 ? f.z.amax(0) > 0 : torch::zeros({n_}, f.z.options().dtype(torch::kBool));  // [n]
  backward(f, g, Bl, B, l1);
  aux_k(f, g, loss, B);
  acc_loss_ += loss * static_cast<double>(B);
  encoder_grads(f, g);
  if (dist) reduce(g, fired);
  project_decoder_grad(g);
  if (capture != nullptr) {
    capture->loss = loss.item<double>();
    capture->gW_enc = g.W_enc.clone();
    capture->gb_enc = g.b_enc.clone();
    capture->gW_dec = g.W_dec.clone();
    capture->gb_dec = g.b_dec.clone();
  }
  clip(g);
  adam_update(g, learning_rate(total_steps));
  t.W_dec.div_(t.W_dec.norm(2, {1}, true).clamp_min(1e-12));

  // Dead-latent bookkeeping: inputs since each latent last fired.
  since_fired = torch::where(fired, torch::zeros_like(since_fired), since_fired + B);

  if (t.arch == Arch::relu_l1 && p_.resample_every > 0 && step_count % p_.resample_every == 0) resample(x, f.e, B, pos);
}

void Trainer::resample(const Tensor& x, const Tensor& e, int64_t batch_rows, const std::vector<int64_t>* pos) {
  // Anthropic's resampling: dead latents get directions of badly reconstructed inputs, drawn
  // with probability proportional to the squared loss; their Adam state is reset.
  auto dead = (since_fired >= window_).nonzero().reshape({-1}).to(torch::kCPU);
  const int64_t nd = dead.numel();
  if (nd == 0 || rng == nullptr) return;
  const bool dist = distributed();
  TORCH_CHECK(!dist || (pos != nullptr && static_cast<int64_t>(pos->size()) == x.size(0)),
              "resample: data-parallel steps need the rows' batch positions");
  auto loss2 = e.pow(2).sum(1).pow(2).to(torch::kCPU, torch::kFloat64).contiguous();
  if (dist) {
    // The whole batch's losses in batch order (each rank fills its rows), so every rank draws
    // the same rows the single process would.
    auto full = torch::zeros({batch_rows}, torch::kFloat64);
    full.index_copy_(0, torch::tensor(*pos, torch::kLong), loss2);
    comm->all_reduce(full, ReduceOp::sum);
    loss2 = full;
  }
  const int64_t B = loss2.size(0);
  std::vector<double> cdf(static_cast<size_t>(B));
  double acc = 0;
  for (int64_t i = 0; i < B; ++i) cdf[static_cast<size_t>(i)] = (acc += loss2.data_ptr<double>()[i]);
  std::vector<int64_t> pick(static_cast<size_t>(nd));
  for (auto& pk : pick) {
    const double u = rng->uniform() * acc;
    pk = std::min<int64_t>(B - 1, std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
  }
  auto dead_d = dead.to(device_);
  Tensor dirs;
  if (!dist) {
    auto pick_t = torch::tensor(pick, torch::kLong).to(device_);
    dirs = x.index_select(0, pick_t) - t.b_dec;
    dirs = dirs / dirs.norm(2, {1}, true).clamp_min(1e-12);  // [nd, D]
  } else {
    // Each picked row comes from the rank that holds it; the others add zeros.
    std::vector<int64_t> local_of(static_cast<size_t>(batch_rows), -1);
    for (size_t i = 0; i < pos->size(); ++i) local_of[static_cast<size_t>((*pos)[i])] = static_cast<int64_t>(i);
    std::vector<int64_t> at, rows_here;
    for (size_t j = 0; j < pick.size(); ++j)
      if (local_of[static_cast<size_t>(pick[j])] >= 0) {
        at.push_back(static_cast<int64_t>(j));
        rows_here.push_back(local_of[static_cast<size_t>(pick[j])]);
      }
    dirs = torch::zeros({nd, D_}, x.options());
    if (!at.empty()) {
      auto mine = x.index_select(0, torch::tensor(rows_here, torch::kLong).to(device_)) - t.b_dec;
      dirs.index_copy_(0, torch::tensor(at, torch::kLong).to(device_), mine / mine.norm(2, {1}, true).clamp_min(1e-12));
    }
    comm->all_reduce(dirs, ReduceOp::sum);
  }
  auto alive = since_fired < window_;
  auto enc_norms = t.W_enc.norm(2, {0});
  auto n_alive = alive.sum().clamp_min(1);
  auto mean_alive = (enc_norms * alive).sum() / n_alive;
  t.W_dec.index_copy_(0, dead_d, dirs);
  t.W_enc.index_copy_(1, dead_d, (dirs * (mean_alive * 0.2)).t().contiguous());
  t.b_enc.index_fill_(0, dead_d, 0.0);
  adam.exp_avg[0].index_fill_(1, dead_d, 0.0);
  adam.exp_avg_sq[0].index_fill_(1, dead_d, 0.0);
  adam.exp_avg[1].index_fill_(0, dead_d, 0.0);
  adam.exp_avg_sq[1].index_fill_(0, dead_d, 0.0);
  adam.exp_avg[2].index_fill_(0, dead_d, 0.0);
  adam.exp_avg_sq[2].index_fill_(0, dead_d, 0.0);
  since_fired.index_fill_(0, dead_d, 0);
  spdlog::debug("sae: resampled {} dead latents at step {}", nd, step_count);
}

}  // namespace cl::sae
