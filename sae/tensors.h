// LibTorch side of the SAE (internal to sae/ and bench/): the weights as device tensors, the
// inference activation of each architecture, and sparse top-k decoding.
#pragma once

#include <array>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/sae_weights.h"

namespace cl::sae {

// In the order of kSaeArchNames (core/sae_weights.h), which names them.
enum class Arch { relu_l1, topk, batchtopk, matryoshka_topk, matryoshka_batchtopk };
static_assert(static_cast<size_t>(Arch::matryoshka_batchtopk) + 1 == kSaeArchNames.size(), "one name per Arch");
Arch parse_arch(const std::string& s);  // throws UsageError
const char* arch_name(Arch a);
// The activation of an architecture: the matryoshka ones nest the loss, not the activation.
Arch activation_of(Arch a);
bool is_matryoshka(Arch a);

// W_enc [D, n], b_enc [n], W_dec [n, D], b_dec [D], float32 on one device.
// The names of the trained tensors, in the order of every parameter list (Tensors::params(),
// gradients, Adam's moments, checkpoints).
inline constexpr std::array<const char*, 4> kParamNames = {"W_enc", "b_enc", "W_dec", "b_dec"};

struct Tensors {
  torch::Tensor W_enc, b_enc, W_dec, b_dec;
  std::array<torch::Tensor*, 4> params() { return {&W_enc, &b_enc, &W_dec, &b_dec}; }
  std::array<const torch::Tensor*, 4> params() const { return {&W_enc, &b_enc, &W_dec, &b_dec}; }
  Arch arch = Arch::relu_l1;
  int64_t k = 0;
  double threshold = 0.0;
  std::vector<int64_t> prefixes;  // matryoshka: nested dictionary sizes, ascending, n_latents last
  Arch activation() const { return activation_of(arch); }
  int64_t d_in() const { return W_enc.size(0); }
  int64_t n_latents() const { return W_enc.size(1); }
};

Tensors to_tensors(const SaeWeights& w, torch::Device device);
// Copies tensors (any device) into w's weight vectors (arch/k/threshold too).
void from_tensors(const Tensors& t, SaeWeights& w);

// Pre-activations (x - b_dec) W_enc + b_enc, [B, n].
torch::Tensor pre_activations(const Tensors& t, const torch::Tensor& x_bd);
// Inference codes z [B, n] (dense): relu, relu(top-k) or relu above the saved threshold.
torch::Tensor encode_dense(const Tensors& t, const torch::Tensor& x_bd);
// x_hat = z W_dec + b_dec.
torch::Tensor decode_dense(const Tensors& t, const torch::Tensor& z_bn);
// Nested reconstruction errors of a matryoshka SAE: errs[q] = z[:, :m_q] W_dec[:m_q] + b_dec - x
// [B, D] for each nested size m_q in `prefixes` (ascending), by cumulative partial decodes (one
// full decode's work in total). Computed in the dtype of the arguments; training passes float32,
// evaluation float64.
std::vector<torch::Tensor> nested_errors(const torch::Tensor& x_bd, const torch::Tensor& z_bn,
                                         const torch::Tensor& W_dec, const torch::Tensor& b_dec,
                                         const std::vector<int64_t>& prefixes);
// Top-k decode gathering only the k active decoder rows: vals/idx [B, k].
torch::Tensor decode_sparse(const Tensors& t, const torch::Tensor& vals_bk, const torch::Tensor& idx_bk);

// A host float buffer [rows, cols] as a tensor on `device` (copied when the device is not the CPU;
// on the CPU the tensor aliases the buffer).
torch::Tensor host_rows(const float* x, int64_t rows, int64_t cols, torch::Device device);

}  // namespace cl::sae
