// Dictionaries: SAE files, and the baselines `sae bench` fits on the training rows (PCA, NMF,
// k-means), each with codes for rows, reconstructions from codes and decoder rows. The heavy
// products run in LibTorch (multithreaded BLAS) in row chunks.
#include "sae/dictionary.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include <fmt/format.h>
#include <torch/torch.h>

#include "core/error.h"
#include "core/random.h"
#include "sae/sae.h"
#include "sae/tensors.h"

namespace cl::sae {

namespace {

constexpr int64_t kChunkRows = 4096;  // rows per product: a few tens of MB of dense codes

torch::Tensor rows_tensor(const float* x_nd, int64_t n, int64_t d) {
  return torch::from_blob(const_cast<float*>(x_nd), {n, d}, torch::kFloat);
}

std::vector<float> to_vector(const torch::Tensor& t) {
  const torch::Tensor c = t.to(torch::kCPU).to(torch::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

// Seeded values in [lo, hi) from our own generator (the same on every platform), as a tensor.
torch::Tensor uniform_tensor(int64_t rows, int64_t cols, double lo, double hi, uint64_t seed) {
  Rng rng(splitmix64(seed));
  std::vector<float> v(static_cast<size_t>(rows * cols));
  for (auto& x : v) x = static_cast<float>(rng.uniform(lo, hi));
  return torch::from_blob(v.data(), {rows, cols}, torch::kFloat).clone();
}

// Per row of z [n, L] (CPU float): the l0 entries of largest magnitude (all non-zeros when l0 >=
// L), appended to out.
void append_topk_abs(const torch::Tensor& z, int64_t l0, CsrMatrix& out) {
  const int64_t n = z.size(0), L = z.size(1), k = std::min(l0, L);
  const torch::Tensor idx = std::get<1>(z.abs().topk(k, 1)).to(torch::kInt).contiguous();
  const torch::Tensor val = z.gather(1, idx.to(torch::kLong)).contiguous();
  const int32_t* ip = idx.data_ptr<int32_t>();
  const float* vp = val.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) out.append_row(ip + i * k, vp + i * k, k);
}

// Codes of rows x_nd [n, d] over n_latents latents, kChunkRows rows at a time: code(x_chunk, out)
// appends one CSR row per row of the chunk.
CsrMatrix encode_in_chunks(const float* x_nd, int64_t n, int64_t d, int64_t n_latents,
                           const std::function<void(const torch::Tensor&, CsrMatrix&)>& code) {
  CsrMatrix out;
  out.n_cols = n_latents;
  for (int64_t s = 0; s < n; s += kChunkRows) code(rows_tensor(x_nd + s * d, std::min(kChunkRows, n - s), d), out);
  out.n_rows = n;
  return out;
}

// Dense [codes.n_rows, L] of a CSR chunk, for a dense product.
torch::Tensor dense_codes(const CsrMatrix& codes, int64_t start, int64_t count) {
  torch::Tensor z = torch::zeros({count, codes.n_cols}, torch::kFloat);
  float* zp = z.data_ptr<float>();
  for (int64_t i = 0; i < count; ++i)
    for (const auto [c, v] : codes.row(start + i)) zp[i * codes.n_cols + c] = v;
  return z;
}

// x_hat = codes D (+ bias) chunk by chunk; D [L, d] on the CPU.
std::vector<float> decode_linear(const CsrMatrix& codes, const torch::Tensor& D, const torch::Tensor& bias) {
  const int64_t n = codes.n_rows, d = D.size(1);
  std::vector<float> out(static_cast<size_t>(n * d));
  for (int64_t s = 0; s < n; s += kChunkRows) {
    const int64_t c = std::min(kChunkRows, n - s);
    torch::Tensor xh = dense_codes(codes, s, c).mm(D);
    if (bias.defined()) xh += bias;
    xh = xh.contiguous();
    std::copy_n(xh.data_ptr<float>(), c * d, out.data() + s * d);
  }
  return out;
}

class SaeDictionary final : public Dictionary {
 public:
  SaeDictionary(const std::string& path, Device device) : m_(Model::load(path, device)) {}
  int64_t n_latents() const override { return m_.n_latents(); }
  int64_t d_in() const override { return m_.d_in(); }
  CsrMatrix encode(const float* x_nd, int64_t n) const override { return m_.encode(x_nd, n); }
  std::vector<float> decode(const CsrMatrix& codes) const override { return m_.decode(codes, true); }
  std::vector<float> decoder_rows() const override { return to_vector(m_.tensors().W_dec); }

 private:
  Model m_;
};

// PCA: components V [L, d] (rows, by decreasing variance) and the mean.
class PcaDictionary final : public Dictionary {
 public:
  PcaDictionary(torch::Tensor mean, torch::Tensor V, int64_t l0) : mean_(std::move(mean)), V_(std::move(V)), l0_(l0) {}
  int64_t n_latents() const override { return V_.size(0); }
  int64_t d_in() const override { return V_.size(1); }
  CsrMatrix encode(const float* x_nd, int64_t n) const override {
    return encode_in_chunks(x_nd, n, d_in(), n_latents(), [this](const torch::Tensor& x, CsrMatrix& out) {
      append_topk_abs((x - mean_).mm(V_.t()).contiguous(), l0_, out);
    });
  }
  std::vector<float> decode(const CsrMatrix& codes) const override { return decode_linear(codes, V_, mean_); }
  std::vector<float> decoder_rows() const override { return to_vector(V_); }

 private:
  torch::Tensor mean_, V_;
  int64_t l0_;
};

// Lee-Seung multiplicative updates of codes W >= 0 for |x - W H|^2 with H fixed, given XHt = x H^T
// and HHt = H H^T; zeros stay zero.
void nnls_updates(torch::Tensor& W, const torch::Tensor& XHt, const torch::Tensor& HHt, int iters) {
  for (int it = 0; it < iters; ++it) W.mul_(XHt / (W.mm(HHt) + 1e-10));
}

class NmfDictionary final : public Dictionary {
 public:
  NmfDictionary(torch::Tensor H, int64_t l0, int iters) : H_(std::move(H)), HHt_(H_.mm(H_.t())), l0_(l0), iters_(iters) {}
  int64_t n_latents() const override { return H_.size(0); }
  int64_t d_in() const override { return H_.size(1); }
  // The non-negative least-squares code (from the least-squares scale of each atom alone, clipped
  // positive), then its l0 largest coefficients refitted alone: truncating alone would lose the
  // dropped atoms' mass.
  CsrMatrix encode(const float* x_nd, int64_t n) const override {
    return encode_in_chunks(x_nd, n, d_in(), n_latents(), [this](const torch::Tensor& x, CsrMatrix& out) {
      const torch::Tensor XHt = x.mm(H_.t());
      torch::Tensor W = (XHt / (HHt_.diag().unsqueeze(0) + 1e-10)).clamp_min(1e-6) / static_cast<double>(H_.size(0));
      nnls_updates(W, XHt, HHt_, iters_);
      if (l0_ < W.size(1)) {
        W = W * torch::zeros_like(W).scatter_(1, std::get<1>(W.topk(l0_, 1)), 1.0);
        nnls_updates(W, XHt, HHt_, iters_);
      }
      append_topk_abs(W.contiguous(), l0_, out);
    });
  }
  std::vector<float> decode(const CsrMatrix& codes) const override { return decode_linear(codes, H_, {}); }
  std::vector<float> decoder_rows() const override { return to_vector(H_); }

 private:
  torch::Tensor H_, HHt_;
  int64_t l0_;
  int iters_;
};

// Squared distances [n, k] of rows x to centroids C: |x|^2 - 2 x C^T + |c|^2.
torch::Tensor sq_dist(const torch::Tensor& x, const torch::Tensor& C, const torch::Tensor& c2) {
  return (x.pow(2).sum(1, true) - 2 * x.mm(C.t()) + c2.unsqueeze(0)).clamp_min(0);
}

class KmeansDictionary final : public Dictionary {
 public:
  explicit KmeansDictionary(torch::Tensor C) : C_(std::move(C)), c2_(C_.pow(2).sum(1)) {}
  int64_t n_latents() const override { return C_.size(0); }
  int64_t d_in() const override { return C_.size(1); }
  CsrMatrix encode(const float* x_nd, int64_t n) const override {
    return encode_in_chunks(x_nd, n, d_in(), n_latents(), [this](const torch::Tensor& x, CsrMatrix& out) {
      const torch::Tensor j = sq_dist(x, C_, c2_).argmin(1);
      const torch::Tensor scale = (x * C_.index_select(0, j)).sum(1) / c2_.index_select(0, j).clamp_min(1e-12);
      const torch::Tensor jj = j.to(torch::kInt).contiguous(), sc = scale.contiguous();
      for (int64_t i = 0; i < x.size(0); ++i) out.append_row(jj.data_ptr<int32_t>() + i, sc.data_ptr<float>() + i, 1);
    });
  }
  std::vector<float> decode(const CsrMatrix& codes) const override { return decode_linear(codes, C_, {}); }
  std::vector<float> decoder_rows() const override { return to_vector(C_); }

 private:
  torch::Tensor C_, c2_;
};

}  // namespace

std::unique_ptr<Dictionary> load_sae_dictionary(const std::string& sae_path, Device device) {
  return std::make_unique<SaeDictionary>(sae_path, device);
}

std::unique_ptr<Dictionary> fit_pca(const float* x_nd, int64_t n, int64_t d, int64_t l0, Device) {
  CL_ASSERT(n >= 2 && d >= 1 && l0 >= 1, "pca needs rows, dims and a budget");
  torch::NoGradGuard ng;
  const torch::Tensor x = rows_tensor(x_nd, n, d).to(torch::kDouble);
  const torch::Tensor mean = x.mean(0);
  const torch::Tensor xc = x - mean;
  const torch::Tensor cov = xc.t().mm(xc) / static_cast<double>(n - 1);
  const auto eig = torch::linalg_eigh(cov, "L");  // ascending eigenvalues, eigenvectors as columns
  const int64_t L = std::min(n - 1, d);
  const torch::Tensor V = std::get<1>(eig).flip({1}).narrow(1, 0, L).t().contiguous();  // [L, d], by variance
  return std::make_unique<PcaDictionary>(mean.to(torch::kFloat), V.to(torch::kFloat).contiguous(), l0);
}

std::unique_ptr<Dictionary> fit_nmf(const float* x_nd, int64_t n, int64_t d, int64_t r, int64_t l0, int iters,
                                    uint64_t seed, const std::string& what, Device) {
  CL_ASSERT(n >= 1 && d >= 1 && r >= 1 && l0 >= 1 && iters >= 1, "nmf needs rows, dims, latents and iterations");
  torch::NoGradGuard ng;
  const torch::Tensor X = rows_tensor(x_nd, n, d);
  const float lowest = X.min().item<float>();
  if (lowest < 0) {
    const int64_t at = X.argmin().item<int64_t>();
    throw_input("{}: NMF needs non-negative embeddings (as a ReLU encoder's are), found {} at row {}, dim {}; drop "
                "'nmf' from the baselines for this encoder",
                what, lowest, at / d, at % d);
  }
  constexpr double eps = 1e-10;
  const double scale = std::sqrt(std::max(1e-12, X.mean().item<double>()) / static_cast<double>(r));
  torch::Tensor W = uniform_tensor(n, r, 0.1 * scale, 2 * scale, seed);
  torch::Tensor H = uniform_tensor(r, d, 0.1 * scale, 2 * scale, seed + 1);
  for (int it = 0; it < iters; ++it) {
    H.mul_(W.t().mm(X) / (W.t().mm(W).mm(H) + eps));
    nnls_updates(W, X.mm(H.t()), H.mm(H.t()), 1);
  }
  // Unit-norm atoms, so codes of different atoms are on one scale (the product W H is unchanged).
  H = H / H.norm(2, 1, true).clamp_min(1e-12);
  return std::make_unique<NmfDictionary>(H.contiguous(), l0, iters);
}

std::unique_ptr<Dictionary> fit_kmeans(const float* x_nd, int64_t n, int64_t d, int64_t k, int iters, uint64_t seed,
                                       Device) {
  CL_ASSERT(n >= 1 && d >= 1 && k >= 1 && iters >= 1, "kmeans needs rows, dims, centroids and iterations");
  torch::NoGradGuard ng;
  const torch::Tensor X = rows_tensor(x_nd, n, d);
  k = std::min(k, n);
  Rng rng(splitmix64(seed));
  // k-means++: each new centroid drawn with probability proportional to its squared distance to
  // the nearest chosen one.
  std::vector<int64_t> chosen = {static_cast<int64_t>(rng.below(static_cast<uint64_t>(n)))};
  torch::Tensor best = (X - X[chosen[0]]).pow(2).sum(1);
  while (static_cast<int64_t>(chosen.size()) < k) {
    const torch::Tensor cum = best.to(torch::kDouble).cumsum(0);
    const double total = cum[n - 1].item<double>();
    int64_t pick = 0;
    if (total > 0) {
      const double u = rng.uniform() * total;
      pick = std::min<int64_t>(n - 1, torch::searchsorted(cum, torch::tensor({u}, torch::kDouble)).item<int64_t>());
    } else {
      pick = static_cast<int64_t>(rng.below(static_cast<uint64_t>(n)));  // every row already a centroid
    }
    chosen.push_back(pick);
    best = torch::minimum(best, (X - X[pick]).pow(2).sum(1));
  }
  torch::Tensor C = X.index_select(0, torch::tensor(chosen, torch::kLong)).clone();
  for (int it = 0; it < iters; ++it) {
    const torch::Tensor dist = sq_dist(X, C, C.pow(2).sum(1));
    const torch::Tensor j = dist.argmin(1);
    torch::Tensor sums = torch::zeros_like(C).index_add_(0, j, X);
    const torch::Tensor counts = torch::zeros({k}, torch::kFloat).index_add_(0, j, torch::ones({n}, torch::kFloat));
    const torch::Tensor empty = counts == 0;
    C = torch::where(empty.unsqueeze(1), C, sums / counts.clamp_min(1).unsqueeze(1));
    // An empty cluster restarts at the row farthest from its centroid.
    if (empty.any().item<bool>()) {
      const torch::Tensor far = std::get<0>(dist.min(1)).argsort(0, true);
      int64_t next = 0;
      const torch::Tensor e = empty.nonzero().flatten();
      for (int64_t q = 0; q < e.size(0); ++q) C[e[q].item<int64_t>()] = X[far[next++ % n].item<int64_t>()];
    }
  }
  return std::make_unique<KmeansDictionary>(C.contiguous());
}

std::vector<double> decoder_cosines(const std::vector<float>& a_ld, int64_t la, const std::vector<float>& b_ld,
                                    int64_t lb, int64_t d) {
  CL_ASSERT(static_cast<int64_t>(a_ld.size()) == la * d && static_cast<int64_t>(b_ld.size()) == lb * d,
            "decoder rows of the given shapes");
  torch::NoGradGuard ng;
  const auto unit = [d](const std::vector<float>& v, int64_t l) {
    const torch::Tensor t = rows_tensor(v.data(), l, d);
    return t / t.norm(2, 1, true).clamp_min(1e-12);
  };
  const torch::Tensor cos = unit(a_ld, la).mm(unit(b_ld, lb).t()).to(torch::kDouble).contiguous();
  return std::vector<double>(cos.data_ptr<double>(), cos.data_ptr<double>() + la * lb);
}

}  // namespace cl::sae
