// Applying a trained SAE: weights <-> tensors, inference activations, chunked encoding into
// CSR activation files, float64 evaluation metrics, and params parsing/validation.
#include <algorithm>
#include <cmath>
#include <set>

#include <spdlog/spdlog.h>

#include "core/activations.h"
#include "core/error.h"
#include "core/progress.h"
#include "sae/sae.h"
#include "sae/sae_model.h"

namespace cl {
namespace sae {

Arch parse_arch(const std::string& s) {
  if (s == "relu-l1") return Arch::relu_l1;
  if (s == "topk") return Arch::topk;
  if (s == "batchtopk") return Arch::batchtopk;
  throw_usage("arch '{}': expected relu-l1, topk or batchtopk", s);
}

static torch::Tensor vec_tensor(const std::vector<float>& v, std::vector<int64_t> shape, torch::Device device) {
  auto t = torch::from_blob(const_cast<float*>(v.data()), shape, torch::kFloat32).clone();
  return t.to(device);
}

SaeTensors to_tensors(const SaeWeights& w, torch::Device device) {
  const int64_t D = w.d_in, n = w.n_latents;
  CL_ASSERT(static_cast<int64_t>(w.W_enc.size()) == D * n && static_cast<int64_t>(w.W_dec.size()) == D * n);
  CL_ASSERT(static_cast<int64_t>(w.b_enc.size()) == n && static_cast<int64_t>(w.b_dec.size()) == D);
  SaeTensors t;
  t.W_enc = vec_tensor(w.W_enc, {D, n}, device);
  t.b_enc = vec_tensor(w.b_enc, {n}, device);
  t.W_dec = vec_tensor(w.W_dec, {n, D}, device);
  t.b_dec = vec_tensor(w.b_dec, {D}, device);
  t.arch = parse_arch(w.arch);
  t.k = w.k;
  t.threshold = w.threshold;
  return t;
}

static std::vector<float> tensor_vec(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

void from_tensors(const SaeTensors& t, SaeWeights& w) {
  w.d_in = t.d_in();
  w.n_latents = t.n_latents();
  w.W_enc = tensor_vec(t.W_enc);
  w.b_enc = tensor_vec(t.b_enc);
  w.W_dec = tensor_vec(t.W_dec);
  w.b_dec = tensor_vec(t.b_dec);
  w.arch = t.arch == Arch::relu_l1 ? "relu-l1" : t.arch == Arch::topk ? "topk" : "batchtopk";
  w.k = t.k;
  w.threshold = t.threshold;
}

torch::Tensor pre_activations(const SaeTensors& t, const torch::Tensor& x_bd) {
  return torch::addmm(t.b_enc, x_bd - t.b_dec, t.W_enc);
}

torch::Tensor encode_dense(const SaeTensors& t, const torch::Tensor& x_bd) {
  auto pre = pre_activations(t, x_bd);
  switch (t.arch) {
    case Arch::relu_l1:
      return pre.relu_();
    case Arch::topk: {
      const int64_t k = std::min<int64_t>(t.k, pre.size(1));
      auto [vals, idx] = pre.topk(k, 1);
      return torch::zeros_like(pre).scatter_(1, idx, vals.relu_());
    }
    case Arch::batchtopk: {
      // Inference uses the global threshold estimated in training, so each input's code does
      // not depend on the rest of its batch.
      auto keep = pre > std::max(t.threshold, 0.0);
      return pre.mul_(keep);
    }
  }
  return pre;
}

torch::Tensor decode_dense(const SaeTensors& t, const torch::Tensor& z_bn) { return torch::addmm(t.b_dec, z_bn, t.W_dec); }

torch::Tensor decode_sparse(const SaeTensors& t, const torch::Tensor& vals_bk, const torch::Tensor& idx_bk) {
  const int64_t B = idx_bk.size(0), k = idx_bk.size(1);
  auto offsets = torch::arange(0, B * k, k, torch::TensorOptions().dtype(torch::kLong).device(idx_bk.device()));
  auto out = std::get<0>(at::embedding_bag(t.W_dec, idx_bk.reshape({-1}), offsets, false, 0, false,
                                           vals_bk.reshape({-1}).contiguous()));
  return out.add_(t.b_dec);
}

}  // namespace sae

// ---------------------------------------------------------------------------------------------
// Params

SaeParams sae_params_from_json(const nlohmann::json& j, const std::string& what) {
  if (!j.is_object()) throw_input("{}: SAE config must be a JSON object", what);
  const nlohmann::json defaults = SaeParams{};
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!defaults.contains(it.key()))
      throw_input("{}: unknown SAE config key '{}' (known: {})", what, it.key(), [&] {
        std::string s;
        for (auto d = defaults.begin(); d != defaults.end(); ++d) s += (s.empty() ? "" : ", ") + d.key();
        return s;
      }());
  }
  try {
    return j.get<SaeParams>();
  } catch (const nlohmann::json::exception& e) {
    throw_input("{}: bad SAE config value ({})", what, e.what());
  }
}

void validate_sae_params(const SaeParams& p) {
  sae::parse_arch(p.arch);
  if (p.expansion < 1 && p.n_latents < 1) throw_usage("expansion {}: expected >= 1", p.expansion);
  if (p.arch != "relu-l1" && p.k < 1) throw_usage("k {}: expected >= 1", p.k);
  if (p.batch < 1) throw_usage("batch {}: expected >= 1", p.batch);
  if (p.epochs < 0) throw_usage("epochs {}: expected >= 0", p.epochs);
  if (!(p.lr > 0)) throw_usage("lr {}: expected > 0", p.lr);
  if (p.l1 < 0) throw_usage("l1 {}: expected >= 0", p.l1);
  if (p.pre_bias_init != "geometric_median" && p.pre_bias_init != "mean" && p.pre_bias_init != "zero")
    throw_usage("pre_bias_init '{}': expected geometric_median, mean or zero", p.pre_bias_init);
  if (p.encoder_init != "auto" && p.encoder_init != "transpose" && p.encoder_init != "kaiming")
    throw_usage("encoder_init '{}': expected auto, transpose or kaiming", p.encoder_init);
  if (!(p.memory_gb > 0)) throw_usage("memory_gb {}: expected > 0", p.memory_gb);
  if (p.dead_window < 1) throw_usage("dead_window {}: expected >= 1", p.dead_window);
  if (p.lr_decay_frac < 0 || p.lr_decay_frac > 1) throw_usage("lr_decay_frac {}: expected in [0, 1]", p.lr_decay_frac);
}

void check_sae_dim(const SaeWeights& w, int64_t dim, const std::string& embeddings_path, const std::string& sae_path) {
  if (dim != w.d_in)
    throw_input("{}: embedding dim {}, but SAE {} expects dim {}", embeddings_path, dim, sae_path, w.d_in);
}

// ---------------------------------------------------------------------------------------------
// Evaluation: accumulators kept on the device in float64; one host sync at the end.

namespace {

struct EvalAcc {
  int64_t D = 0, n_lat = 0, dead_window = 0;
  int64_t n_seen = 0;
  torch::Tensor sum_sq_err, sum_x, sum_x2, sum_l0, sum_l1;  // float64 scalars / [D]
  torch::Tensor last_fired;                                   // int64 [n]: 1 + index of last input firing
  // Chan's parallel merge of per-chunk mean / M2 keeps sum ||x - mean||^2 accurate in one pass.
  torch::Tensor mean, m2;

  void init(int64_t d, int64_t n, int64_t window, torch::Device dev) {
    D = d;
    n_lat = n;
    dead_window = window;
    auto o = torch::TensorOptions().dtype(torch::kFloat64).device(dev);
    sum_sq_err = torch::zeros({}, o);
    sum_l0 = torch::zeros({}, o);
    sum_l1 = torch::zeros({}, o);
    mean = torch::zeros({d}, o);
    m2 = torch::zeros({}, o);
    last_fired = torch::zeros({n}, torch::TensorOptions().dtype(torch::kLong).device(dev));
  }

  void add(const torch::Tensor& x, const torch::Tensor& z, const torch::Tensor& xhat) {
    const int64_t B = x.size(0);
    auto xd = x.to(torch::kFloat64);
    sum_sq_err += (xhat.to(torch::kFloat64) - xd).pow(2).sum();
    auto active = z != 0;
    sum_l0 += active.sum().to(torch::kFloat64);
    sum_l1 += z.abs().sum(torch::kFloat64);
    auto cmean = xd.mean(0);
    auto cm2 = (xd - cmean).pow(2).sum();
    const double na = static_cast<double>(n_seen), nb = static_cast<double>(B), nt = na + nb;
    auto delta = cmean - mean;
    m2 = m2 + cm2 + delta.pow(2).sum() * (na * nb / nt);
    mean = mean + delta * (nb / nt);
    // Row index (1-based, global) of the last input on which each latent fired.
    // argmax over the flipped chunk finds the last firing row without a [B, n] int64 temporary.
    auto fired = active.any(0);
    auto last_in_chunk = (B - 1) - active.flip({0}).to(torch::kByte).argmax(0);
    last_fired = torch::where(fired, last_in_chunk + (n_seen + 1), last_fired);
    n_seen += B;
  }

  nlohmann::json result(const torch::Tensor& W_dec) const {
    const double N = static_cast<double>(n_seen);
    const int64_t window = std::min(n_seen, dead_window);
    const int64_t n_dead = (last_fired <= (n_seen - window)).sum().item<int64_t>();
    const double sse = sum_sq_err.item<double>();
    const double var = m2.item<double>();
    nlohmann::json j;
    j["n"] = n_seen;
    j["mse"] = N > 0 ? sse / (N * static_cast<double>(D)) : 0.0;
    j["fvu"] = var > 0 ? sse / var : 0.0;
    j["l0"] = N > 0 ? sum_l0.item<double>() / N : 0.0;
    j["l1"] = N > 0 ? sum_l1.item<double>() / N : 0.0;
    j["n_dead"] = n_dead;
    j["dead_fraction"] = static_cast<double>(n_dead) / static_cast<double>(n_lat);
    j["dead_window"] = window;
    j["decoder_norm_max_dev"] = (W_dec.norm(2, {1}) - 1.0).abs().max().item<double>();
    return j;
  }
};

}  // namespace

nlohmann::json evaluate_sae(const SaeWeights& w, const float* x_nd, int64_t n, int64_t d, torch::Device device,
                            int64_t dead_window, int64_t batch) {
  CL_ASSERT(d == w.d_in, "evaluate_sae: dim mismatch");
  torch::NoGradGuard ng;
  auto t = sae::to_tensors(w, device);
  EvalAcc acc;
  acc.init(d, w.n_latents, dead_window, device);
  for (int64_t s = 0; s < n; s += batch) {
    const int64_t B = std::min(batch, n - s);
    auto x = torch::from_blob(const_cast<float*>(x_nd + s * d), {B, d}, torch::kFloat32).to(device);
    auto z = sae::encode_dense(t, x);
    acc.add(x, z, sae::decode_dense(t, z));
  }
  return acc.result(t.W_dec);
}

nlohmann::json evaluate_sae(const SaeWeights& w, const EmbeddingsReader& reader, torch::Device device,
                            int64_t dead_window, int64_t batch, bool quiet) {
  check_sae_dim(w, reader.dim(), reader.path(), "(sae)");
  torch::NoGradGuard ng;
  auto t = sae::to_tensors(w, device);
  const int64_t n = reader.rows(), d = reader.dim();
  EvalAcc acc;
  acc.init(d, w.n_latents, dead_window, device);
  std::vector<float> buf;
  Progress prog("sae eval", n, quiet, "rows");
  for (int64_t s = 0; s < n; s += batch) {
    const int64_t B = std::min(batch, n - s);
    buf.resize(static_cast<size_t>(B * d));
    reader.read_rows(s, B, buf.data());
    auto x = torch::from_blob(buf.data(), {B, d}, torch::kFloat32).to(device);
    auto z = sae::encode_dense(t, x);
    acc.add(x, z, sae::decode_dense(t, z));
    prog.add(B);
  }
  prog.finish();
  return acc.result(t.W_dec);
}

// ---------------------------------------------------------------------------------------------
// Encoding

static void append_csr(const torch::Tensor& z_bn, CsrMatrix& out) {
  auto zc = z_bn.to(torch::kCPU).contiguous();
  const int64_t B = zc.size(0), n = zc.size(1);
  const float* p = zc.data_ptr<float>();
  std::vector<int32_t> cols;
  std::vector<float> vals;
  for (int64_t i = 0; i < B; ++i) {
    cols.clear();
    vals.clear();
    const float* row = p + i * n;
    for (int64_t j = 0; j < n; ++j)
      if (row[j] != 0.0f) {
        cols.push_back(static_cast<int32_t>(j));
        vals.push_back(row[j]);
      }
    out.append_row_sorted(cols.data(), vals.data(), static_cast<int64_t>(cols.size()));
  }
}

CsrMatrix encode_rows(const SaeWeights& w, const float* x_nd, int64_t n, int64_t d, torch::Device device) {
  CL_ASSERT(d == w.d_in, "encode_rows: dim mismatch");
  torch::NoGradGuard ng;
  auto t = sae::to_tensors(w, device);
  CsrMatrix out;
  out.n_cols = w.n_latents;
  const int64_t chunk = 8192;
  for (int64_t s = 0; s < n; s += chunk) {
    const int64_t B = std::min(chunk, n - s);
    auto x = torch::from_blob(const_cast<float*>(x_nd + s * d), {B, d}, torch::kFloat32).to(device);
    append_csr(sae::encode_dense(t, x), out);
  }
  return out;
}

std::vector<float> reconstruct_rows(const SaeWeights& w, const float* x_nd, int64_t n, int64_t d,
                                    torch::Device device) {
  CL_ASSERT(d == w.d_in, "reconstruct_rows: dim mismatch");
  torch::NoGradGuard ng;
  auto t = sae::to_tensors(w, device);
  auto x = torch::from_blob(const_cast<float*>(x_nd), {n, d}, torch::kFloat32).to(device);
  auto xhat = sae::decode_dense(t, sae::encode_dense(t, x)).to(torch::kCPU).contiguous();
  return std::vector<float>(xhat.data_ptr<float>(), xhat.data_ptr<float>() + xhat.numel());
}

void encode_file(const SaeWeights& w, const EmbeddingsReader& reader, const std::string& out_path,
                 torch::Device device, int64_t chunk, bool quiet, const std::vector<std::string>& inputs) {
  check_sae_dim(w, reader.dim(), reader.path(), inputs.size() > 1 ? inputs[1] : std::string("(sae)"));
  torch::NoGradGuard ng;
  auto t = sae::to_tensors(w, device);
  const int64_t n = reader.rows(), d = reader.dim();
  nlohmann::json config = {{"sae_arch", w.arch}, {"sae_k", w.k}, {"sae_threshold", w.threshold},
                           {"embeddings", reader.path()}, {"d_in", d}};
  ActivationsWriter writer(out_path, w.n_latents, config, inputs);
  std::vector<float> buf;
  const auto& ids = reader.ids();
  Progress prog("sae encode", n, quiet, "rows");
  for (int64_t s = 0; s < n; s += chunk) {
    const int64_t B = std::min(chunk, n - s);
    buf.resize(static_cast<size_t>(B * d));
    reader.read_rows(s, B, buf.data());
    auto x = torch::from_blob(buf.data(), {B, d}, torch::kFloat32).to(device);
    CsrMatrix part;
    part.n_cols = w.n_latents;
    append_csr(sae::encode_dense(t, x), part);
    writer.append(std::vector<std::string>(ids.begin() + s, ids.begin() + s + B), part);
    prog.add(B);
  }
  prog.finish();
  writer.commit();
}

}  // namespace cl
