// The SAE as a loaded model: weights <-> device tensors, the inference activation of each
// architecture, chunked encoding into CSR, decoding of sparse codes, and float64 evaluation.
#include <algorithm>
#include <cmath>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "core/activations.h"
#include "core/error.h"
#include "core/patches.h"
#include "core/progress.h"
#include "sae/dist.h"
#include "sae/sae.h"
#include "sae/tensors.h"

namespace cl::sae {

Arch parse_arch(const std::string& s) {
  for (size_t i = 0; i < kSaeArchNames.size(); ++i)
    if (s == kSaeArchNames[i]) return static_cast<Arch>(i);
  throw_usage("arch '{}': expected relu-l1, topk, batchtopk, matryoshka-topk or matryoshka-batchtopk", s);
}

Arch activation_of(Arch a) {
  if (a == Arch::matryoshka_topk) return Arch::topk;
  if (a == Arch::matryoshka_batchtopk) return Arch::batchtopk;
  return a;
}

bool is_matryoshka(Arch a) { return a == Arch::matryoshka_topk || a == Arch::matryoshka_batchtopk; }

const char* arch_name(Arch a) {
  const auto i = static_cast<size_t>(a);
  CL_ASSERT(i < kSaeArchNames.size(), "an Arch without a name");
  return kSaeArchNames[i];
}

torch::Tensor host_rows(const float* x, int64_t rows, int64_t cols, torch::Device device) {
  auto t = torch::from_blob(const_cast<float*>(x), {rows, cols}, torch::kFloat32);
  return device.is_cpu() ? t : t.to(device);
}

static torch::Tensor vec_tensor(const std::vector<float>& v, std::vector<int64_t> shape, torch::Device device) {
  return torch::from_blob(const_cast<float*>(v.data()), shape, torch::kFloat32).clone().to(device);
}

Tensors to_tensors(const SaeWeights& w, torch::Device device) {
  const int64_t D = w.d_in, n = w.n_latents;
  CL_ASSERT(static_cast<int64_t>(w.W_enc.size()) == D * n && static_cast<int64_t>(w.W_dec.size()) == D * n);
  CL_ASSERT(static_cast<int64_t>(w.b_enc.size()) == n && static_cast<int64_t>(w.b_dec.size()) == D);
  Tensors t;
  t.W_enc = vec_tensor(w.W_enc, {D, n}, device);
  t.b_enc = vec_tensor(w.b_enc, {n}, device);
  t.W_dec = vec_tensor(w.W_dec, {n, D}, device);
  t.b_dec = vec_tensor(w.b_dec, {D}, device);
  t.arch = parse_arch(w.arch);
  t.k = w.k;
  t.threshold = w.threshold;
  t.prefixes = w.prefixes;
  return t;
}

static std::vector<float> tensor_vec(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

void from_tensors(const Tensors& t, SaeWeights& w) {
  w.d_in = t.d_in();
  w.n_latents = t.n_latents();
  w.W_enc = tensor_vec(t.W_enc);
  w.b_enc = tensor_vec(t.b_enc);
  w.W_dec = tensor_vec(t.W_dec);
  w.b_dec = tensor_vec(t.b_dec);
  w.arch = arch_name(t.arch);
  w.k = t.k;
  w.threshold = t.threshold;
  w.prefixes = t.prefixes;
}

torch::Tensor pre_activations(const Tensors& t, const torch::Tensor& x_bd) {
  return torch::addmm(t.b_enc, x_bd - t.b_dec, t.W_enc);
}

torch::Tensor encode_dense(const Tensors& t, const torch::Tensor& x_bd) {
  auto pre = pre_activations(t, x_bd);
  switch (t.activation()) {
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
    default:
      break;
  }
  CL_ASSERT(false, "encode_dense: unhandled activation");
  return pre;
}

torch::Tensor decode_dense(const Tensors& t, const torch::Tensor& z_bn) { return torch::addmm(t.b_dec, z_bn, t.W_dec); }

std::vector<torch::Tensor> nested_errors(const torch::Tensor& x_bd, const torch::Tensor& z_bn,
                                         const torch::Tensor& W_dec, const torch::Tensor& b_dec,
                                         const std::vector<int64_t>& prefixes) {
  std::vector<torch::Tensor> errs;
  torch::Tensor acc = b_dec.unsqueeze(0) - x_bd;
  int64_t lo = 0;
  for (int64_t hi : prefixes) {
    acc = torch::addmm(acc, z_bn.narrow(1, lo, hi - lo), W_dec.narrow(0, lo, hi - lo));
    errs.push_back(acc);
    lo = hi;
  }
  return errs;
}

torch::Tensor decode_sparse(const Tensors& t, const torch::Tensor& vals_bk, const torch::Tensor& idx_bk) {
  const int64_t B = idx_bk.size(0), k = idx_bk.size(1);
  auto offsets = torch::arange(0, B * k, k, torch::TensorOptions().dtype(torch::kLong).device(idx_bk.device()));
  auto out = std::get<0>(at::embedding_bag(t.W_dec, idx_bk.reshape({-1}), offsets, false, 0, false,
                                           vals_bk.reshape({-1}).contiguous()));
  return out.add_(t.b_dec);
}

// ---------------------------------------------------------------------------------------------
// Model

struct Model::Impl {
  Tensors t;
  torch::Device device{torch::kCPU};
  std::string arch, path;
};

Model::Model(const SaeWeights& w, Device device) : impl_(std::make_unique<Impl>()) {
  impl_->t = to_tensors(w, device);
  impl_->device = device;
  impl_->arch = w.arch;
}
Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

Model Model::load(const std::string& sae_path, Device device) {
  SaeWeights w = read_sae(sae_path);
  for (const auto* v : {&w.W_enc, &w.b_enc, &w.W_dec, &w.b_dec})
    for (float x : *v)
      if (!std::isfinite(x))
        throw_input("{}: SAE weights contain {} (a diverged training run?); expected finite values", sae_path, x);
  if (!std::isfinite(w.threshold)) throw_input("{}: SAE threshold {}, expected a finite value", sae_path, w.threshold);
  Model m(w, device);
  m.impl_->path = sae_path;
  return m;
}

int64_t Model::d_in() const { return impl_->t.d_in(); }
int64_t Model::n_latents() const { return impl_->t.n_latents(); }
const std::string& Model::arch() const { return impl_->arch; }
Device Model::device() const { return impl_->device; }
const std::string& Model::path() const { return impl_->path; }
const Tensors& Model::tensors() const { return impl_->t; }

void Model::check_dim(int64_t dim, const std::string& embeddings_path) const {
  if (dim != d_in())
    throw_input("{}: embedding dim {}, but SAE {} expects dim {}", embeddings_path, dim,
                impl_->path.empty() ? std::string("(in memory)") : impl_->path, d_in());
}

namespace {
CsrMatrix codes_csr(const torch::Tensor& z_bn) {
  auto zc = z_bn.to(torch::kCPU).contiguous();
  return csr_from_dense(zc.data_ptr<float>(), zc.size(0), zc.size(1));
}
}  // namespace

CsrMatrix Model::encode(const float* x_nd, int64_t n, int64_t batch) const {
  CL_ASSERT(batch > 0, "encode: batch must be positive");
  torch::NoGradGuard ng;
  CsrMatrix out;
  out.n_cols = n_latents();
  for (int64_t s = 0; s < n; s += batch) {
    const int64_t B = std::min(batch, n - s);
    out.append_rows(codes_csr(encode_dense(impl_->t, host_rows(x_nd + s * d_in(), B, d_in(), impl_->device))));
  }
  return out;
}

std::vector<float> Model::decode(const CsrMatrix& codes, bool with_bias) const {
  CL_ASSERT(codes.n_cols == n_latents(), "decode: codes have another number of latents");
  torch::NoGradGuard ng;
  const int64_t n = codes.n_rows, D = d_in();
  std::vector<float> out(static_cast<size_t>(n * D));
  // Gather the active decoder rows per row: W_dec stays on the device, codes go as (row, latent,
  // value) triplets, and the sum is an index_add over rows.
  auto opts_l = torch::TensorOptions().dtype(torch::kLong);
  std::vector<int64_t> row_of(static_cast<size_t>(codes.nnz()));
  for (int64_t i = 0; i < n; ++i)
    for (SparseIndex q = codes.indptr[static_cast<size_t>(i)]; q < codes.indptr[static_cast<size_t>(i) + 1]; ++q)
      row_of[static_cast<size_t>(q)] = i;
  auto rows_t = torch::from_blob(row_of.data(), {codes.nnz()}, opts_l).to(impl_->device);
  auto lat_t = torch::from_blob(const_cast<SparseIndex*>(codes.indices.data()), {codes.nnz()}, torch::kInt32)
                   .to(impl_->device, torch::kLong);
  auto val_t = torch::from_blob(const_cast<float*>(codes.values.data()), {codes.nnz()}, torch::kFloat32)
                   .to(impl_->device);
  auto x = torch::zeros({n, D}, torch::TensorOptions().dtype(torch::kFloat32).device(impl_->device));
  if (codes.nnz() > 0) x.index_add_(0, rows_t, impl_->t.W_dec.index_select(0, lat_t) * val_t.unsqueeze(1));
  if (with_bias) x.add_(impl_->t.b_dec);
  auto xc = x.to(torch::kCPU).contiguous();
  std::copy(xc.data_ptr<float>(), xc.data_ptr<float>() + xc.numel(), out.begin());
  return out;
}

std::vector<float> Model::reconstruct(const float* x_nd, int64_t n, int64_t batch) const {
  CL_ASSERT(batch > 0, "reconstruct: batch must be positive");
  torch::NoGradGuard ng;
  const int64_t D = d_in();
  std::vector<float> out(static_cast<size_t>(n * D));
  for (int64_t s = 0; s < n; s += batch) {
    const int64_t B = std::min(batch, n - s);
    const auto& t = impl_->t;
    auto xhat = decode_dense(t, encode_dense(t, host_rows(x_nd + s * D, B, D, impl_->device))).to(torch::kCPU).contiguous();
    std::copy(xhat.data_ptr<float>(), xhat.data_ptr<float>() + xhat.numel(), out.begin() + s * D);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Evaluation: accumulators kept on the device in float64; one host sync at the end.

namespace {

struct EvalAcc {
  int64_t D = 0, n_lat = 0, dead_window = 0;
  int64_t n_seen = 0;
  int64_t first_row = 0;  // global index of the first row added (a data-parallel rank's shard)
  torch::Tensor sum_sq_err, sum_l0, sum_l1;  // float64 scalars
  torch::Tensor last_fired;                  // int64 [n]: 1 + index of last input firing
  // Chan's parallel merge of per-chunk mean / M2 keeps sum ||x - mean||^2 accurate in one pass.
  torch::Tensor mean, m2;
  std::vector<int64_t> prefixes;  // nested sizes whose FVU is reported
  torch::Tensor sse_prefix;       // float64 [P]
  torch::Tensor Wd, bd;           // W_dec, b_dec in float64, once

  void init(int64_t d, int64_t n, int64_t window, torch::Device dev, std::vector<int64_t> sizes = {}) {
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
    prefixes = std::move(sizes);
    sse_prefix = torch::zeros({static_cast<int64_t>(prefixes.size())}, o);
  }

  // Reconstructions from latents [0, m) alone, by cumulative partial decodes.
  void add_prefixes(const torch::Tensor& x, const torch::Tensor& z, const Tensors& t) {
    if (prefixes.empty()) return;
    if (!Wd.defined()) {
      Wd = t.W_dec.to(torch::kFloat64);
      bd = t.b_dec.to(torch::kFloat64);
    }
    std::vector<torch::Tensor> sse;
    for (const auto& err : nested_errors(x.to(torch::kFloat64), z.to(torch::kFloat64), Wd, bd, prefixes))
      sse.push_back(err.pow(2).sum());
    sse_prefix += torch::stack(sse);
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
    last_fired = torch::where(fired, last_in_chunk + (first_row + n_seen + 1), last_fired);
    n_seen += B;
  }

  // Data-parallel: after each rank added its shard (shards in rank order, first_row set), every
  // rank holds the sums over all rows. Means and M2 merge in rank order on every rank (Chan), so
  // all ranks return the same figures; they equal one pass over the rows up to float64 rounding.
  void merge_ranks(Comm& comm) {
    auto sums = torch::cat({torch::stack({sum_sq_err, sum_l0, sum_l1}), sse_prefix});
    comm.all_reduce(sums, ReduceOp::sum);
    sum_sq_err = sums[0], sum_l0 = sums[1], sum_l1 = sums[2];
    sse_prefix = sums.slice(0, 3);
    comm.all_reduce(last_fired, ReduceOp::max);  // global rows: the latest firing anywhere
    auto o = mean.options();
    auto part = torch::cat({torch::full({1}, static_cast<double>(n_seen), o), mean, m2.reshape({1})});
    auto all = comm.all_gather(part);  // [ranks, 1 + D + 1]
    n_seen = 0;
    mean = torch::zeros({D}, o);
    m2 = torch::zeros({}, o);
    for (int64_t r = 0; r < all.size(0); ++r) {
      const int64_t nb_i = static_cast<int64_t>(all[r][0].item<double>());
      if (nb_i == 0) continue;
      const double na = static_cast<double>(n_seen), nb = static_cast<double>(nb_i), nt = na + nb;
      auto delta = all[r].slice(0, 1, 1 + D) - mean;
      m2 = m2 + all[r][1 + D] + delta.pow(2).sum() * (na * nb / nt);
      mean = mean + delta * (nb / nt);
      n_seen += nb_i;
    }
    first_row = 0;
  }

  Metrics result(const torch::Tensor& W_dec) const {
    const double N = static_cast<double>(n_seen);
    const int64_t window = std::min(n_seen, dead_window);
    Metrics m;
    m.n = n_seen;
    m.n_dead = (last_fired <= (n_seen - window)).sum().item<int64_t>();
    const double sse = sum_sq_err.item<double>(), var = m2.item<double>();
    m.mse = N > 0 ? sse / (N * static_cast<double>(D)) : 0.0;
    m.fvu = var > 0 ? sse / var : 0.0;
    m.l0 = N > 0 ? sum_l0.item<double>() / N : 0.0;
    m.l1 = N > 0 ? sum_l1.item<double>() / N : 0.0;
    m.dead_fraction = static_cast<double>(m.n_dead) / static_cast<double>(n_lat);
    m.dead_window = window;
    m.decoder_norm_max_dev = (W_dec.norm(2, {1}) - 1.0).abs().max().item<double>();
    m.prefixes = prefixes;
    auto sp = sse_prefix.to(torch::kCPU);
    for (size_t i = 0; i < prefixes.size(); ++i)
      m.fvu_prefix.push_back(var > 0 ? sp[static_cast<int64_t>(i)].item<double>() / var : 0.0);
    return m;
  }
};

}  // namespace

nlohmann::json to_json(const Metrics& m) {
  nlohmann::json j = {{"n", m.n},
          {"mse", m.mse},
          {"fvu", m.fvu},
          {"l0", m.l0},
          {"l1", m.l1},
          {"n_dead", m.n_dead},
          {"dead_fraction", m.dead_fraction},
          {"dead_window", m.dead_window},
          {"decoder_norm_max_dev", m.decoder_norm_max_dev}};
  if (!m.prefixes.empty()) {
    nlohmann::json fp = nlohmann::json::object();
    for (size_t i = 0; i < m.prefixes.size(); ++i) fp[std::to_string(m.prefixes[i])] = m.fvu_prefix[i];
    j["fvu_prefix"] = fp;
  }
  return j;
}

namespace {
// The nested sizes an evaluation reports: those asked for, else the SAE's own.
std::vector<int64_t> eval_prefixes(const ApplyParams& p, const Tensors& t, const std::string& sae_path) {
  if (p.prefixes.empty()) return t.prefixes;
  for (int64_t m : p.prefixes)
    if (m > t.n_latents())
      throw_usage("prefixes: size {} is above the {} latents of SAE {}", m, t.n_latents(),
                  sae_path.empty() ? std::string("(in memory)") : sae_path);
  return p.prefixes;
}
}  // namespace

// Adds rows [lo, hi) of a set of n_rows to a fresh accumulator, chunk by chunk: rows(s, B) gives
// rows [s, s + B) on the host. With comm the ranks then combine their sums.
Metrics Model::evaluate_rows(int64_t lo, int64_t hi, int64_t n_rows, const ApplyParams& p, Comm* comm,
                             const std::function<const float*(int64_t, int64_t)>& rows, ProgressSink& progress) const {
  validate(p);
  torch::NoGradGuard ng;
  const auto& t = impl_->t;
  EvalAcc acc;
  acc.init(d_in(), n_latents(), p.dead_window, impl_->device, eval_prefixes(p, t, impl_->path));
  const bool merge = comm != nullptr && comm->size() > 1;
  acc.first_row = merge ? lo : 0;  // alone, rows [lo, hi) are the whole set
  Progress prog(progress, "sae eval", hi - lo, "rows");
  for (int64_t s = lo; s < hi; s += p.batch) {
    const int64_t B = std::min(p.batch, hi - s);
    auto x = host_rows(rows(s, B), B, d_in(), impl_->device);
    auto z = encode_dense(t, x);
    acc.add(x, z, decode_dense(t, z));
    acc.add_prefixes(x, z, t);
    prog.add(B);
  }
  if (merge) acc.merge_ranks(*comm);
  CL_ASSERT(acc.n_seen == (merge ? n_rows : hi - lo), "the ranks' shards do not partition the rows");
  return acc.result(t.W_dec);
}

Metrics Model::evaluate(const float* x_nd, int64_t n, const ApplyParams& p) const {
  return evaluate_rows(0, n, n, p, nullptr, [&](int64_t s, int64_t) { return x_nd + s * d_in(); },
                       silent_progress());
}

Metrics Model::evaluate(const EmbeddingsReader& reader, const ApplyParams& p, ProgressSink& progress) const {
  return evaluate(reader, 0, reader.rows(), nullptr, p, progress);
}

Metrics Model::evaluate(const float* x_shard, int64_t lo, int64_t hi, int64_t n_rows, Comm* comm,
                        const ApplyParams& p) const {
  return evaluate_rows(lo, hi, n_rows, p, comm, [&](int64_t s, int64_t) { return x_shard + (s - lo) * d_in(); },
                       silent_progress());
}

Metrics Model::evaluate(const EmbeddingsReader& reader, int64_t lo, int64_t hi, Comm* comm, const ApplyParams& p,
                        ProgressSink& progress) const {
  check_dim(reader.dim(), reader.path());
  if (lo < 0 || hi < lo || hi > reader.rows())
    throw_usage("{}: rows [{}, {}) asked for, the file has {}", reader.path(), lo, hi, reader.rows());
  std::vector<float> buf;
  return evaluate_rows(lo, hi, reader.rows(), p, comm, [&](int64_t s, int64_t B) {
    buf.resize(static_cast<size_t>(B * reader.dim()));
    reader.read_rows(s, B, buf.data());
    return static_cast<const float*>(buf.data());
  }, progress);
}

void Model::encode_file(const EmbeddingsReader& reader, const std::string& out_path, const ApplyParams& p,
                        ProgressSink& progress, const std::string& patch_out_path) const {
  validate(p);
  check_dim(reader.dim(), reader.path());
  if (reader.patches()) return encode_patches(reader, out_path, patch_out_path, p, progress);
  if (!patch_out_path.empty())
    throw_usage("{}: image embeddings have no patches; patch activations need a patch-embeddings file (embed --patches)",
                reader.path());
  torch::NoGradGuard ng;
  const auto& t = impl_->t;
  const int64_t n = reader.rows(), d = reader.dim();
  nlohmann::json config = {{"sae_arch", arch_name(t.arch)}, {"sae_k", t.k}, {"sae_threshold", t.threshold},
                           {"sae", impl_->path},           {"embeddings", reader.path()}, {"d_in", d}};
  std::vector<std::string> inputs = {reader.path()};
  if (!impl_->path.empty()) inputs.push_back(impl_->path);
  ActivationsWriter writer(out_path, n_latents(), config, inputs);
  std::vector<float> buf;
  const auto& ids = reader.ids();
  Progress prog(progress, "sae encode", n, "rows");
  for (int64_t s = 0; s < n; s += p.batch) {
    const int64_t B = std::min(p.batch, n - s);
    buf.resize(static_cast<size_t>(B * d));
    reader.read_rows(s, B, buf.data());
    CsrMatrix part = codes_csr(encode_dense(t, host_rows(buf.data(), B, d, impl_->device)));
    part.n_cols = n_latents();
    writer.append(std::vector<std::string>(ids.begin() + s, ids.begin() + s + B), part);
    prog.add(B);
  }
  prog.finish();
  writer.commit();
}

void Model::encode_patches(const EmbeddingsReader& reader, const std::string& out_path,
                           const std::string& patch_out_path, const ApplyParams& p, ProgressSink& progress) const {
  torch::NoGradGuard ng;
  const auto& t = impl_->t;
  const PatchGeometry& g = *reader.patches();
  const int64_t P = reader.patches_per_image(), n_images = g.n_images(), d = reader.dim();
  nlohmann::json config = {{"sae_arch", arch_name(t.arch)}, {"sae_k", t.k},   {"sae_threshold", t.threshold},
                           {"sae", impl_->path},           {"d_in", d},      {"patch_embeddings", reader.path()},
                           {"pool", p.pool},               {"grid", {g.grid_h, g.grid_w}}};
  std::vector<std::string> inputs = {reader.path()};
  if (!impl_->path.empty()) inputs.push_back(impl_->path);
  nlohmann::json image_config = config;
  image_config["embeddings"] = reader.path();
  if (!patch_out_path.empty()) image_config["patch_activations"] = patch_out_path;
  if (!patch_out_path.empty() && std::filesystem::absolute(patch_out_path).lexically_normal() ==
                                     std::filesystem::absolute(out_path).lexically_normal())
    throw_usage("sae encode: --patch-out is the same file as --out ({})", out_path);
  ActivationsWriter images(out_path, n_latents(), image_config, inputs);
  std::unique_ptr<ActivationsWriter> patches;
  if (!patch_out_path.empty()) {
    nlohmann::json patch_config = config;
    patch_config["image_activations"] = out_path;
    patches = std::make_unique<ActivationsWriter>(patch_out_path, n_latents(), patch_config, inputs);
    patches->set_patches(g);
  }
  const auto& row_ids = reader.ids();
  const int64_t per_chunk = std::max<int64_t>(1, p.batch / P);  // whole images per chunk
  std::vector<float> buf;
  Progress prog(progress, "sae encode", n_images, "images");
  for (int64_t i0 = 0; i0 < n_images; i0 += per_chunk) {
    const int64_t n = std::min(per_chunk, n_images - i0), rows = n * P;
    buf.resize(static_cast<size_t>(rows * d));
    reader.read_rows(i0 * P, rows, buf.data());
    CsrMatrix part = codes_csr(encode_dense(t, host_rows(buf.data(), rows, d, impl_->device)));
    part.n_cols = n_latents();
    images.append(std::vector<std::string>(g.image_ids.begin() + i0, g.image_ids.begin() + i0 + n),
                  pool_patches(part, P, p.pool));
    if (patches) patches->append(std::vector<std::string>(row_ids.begin() + i0 * P, row_ids.begin() + i0 * P + rows), part);
    prog.add(n);
  }
  prog.finish();
  if (patches) patches->commit();
  images.commit();
}

}  // namespace cl::sae
