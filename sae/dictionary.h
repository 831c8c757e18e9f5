// Dictionaries: anything that turns rows into sparse codes and codes back into rows, with a
// decoder direction per latent. SAE files are one kind; `sae bench` also fits baselines on the
// training rows (PCA, NMF, k-means) to score next to them with the same code path.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/sparse.h"

namespace cl::sae {

// Codes for rows, reconstructions from codes, and decoder directions.
class Dictionary {
 public:
  virtual ~Dictionary() = default;
  virtual int64_t n_latents() const = 0;
  virtual int64_t d_in() const = 0;
  // acts_nl [n, n_latents] of rows x_nd [n, d].
  virtual CsrMatrix encode(const float* x_nd, int64_t n) const = 0;
  // x_hat [codes.n_rows, d] row-major.
  virtual std::vector<float> decode(const CsrMatrix& codes) const = 0;
  // Decoder rows [n_latents, d] row-major (the direction each latent writes).
  virtual std::vector<float> decoder_rows() const = 0;
};

std::unique_ptr<Dictionary> load_sae_dictionary(const std::string& sae_path, Device device);

// The baselines, fitted on rows x_nd [n, d] (the caller passes training rows only).
// PCA: the top min(n, d) principal directions; codes = the l0 largest |projections|, so a PCA
// code has the SAE's L0. x_hat = mean + codes V.
std::unique_ptr<Dictionary> fit_pca(const float* x_nd, int64_t n, int64_t d, int64_t l0, Device device);
// NMF (Lee & Seung multiplicative updates on the Frobenius loss), x ~ W H with W, H >= 0: H
// [n_latents, d] is the dictionary; a code is the NNLS solution (the same updates with H fixed),
// then its l0 largest entries. InputError when x has negative entries (name what in the message).
std::unique_ptr<Dictionary> fit_nmf(const float* x_nd, int64_t n, int64_t d, int64_t n_latents, int64_t l0,
                                    int iters, uint64_t seed, const std::string& what, Device device);
// k-means (k-means++ seeding, Lloyd): a code is one latent, the nearest centroid, with value
// <x, c> / |c|^2 (x_hat = that multiple of the centroid).
std::unique_ptr<Dictionary> fit_kmeans(const float* x_nd, int64_t n, int64_t d, int64_t n_latents, int iters,
                                       uint64_t seed, Device device);

// Cosine of every decoder row of a [la, d] with every decoder row of b [lb, d]: [la, lb] row-major.
std::vector<double> decoder_cosines(const std::vector<float>& a_ld, int64_t la, const std::vector<float>& b_ld,
                                    int64_t lb, int64_t d);

}  // namespace cl::sae
