// LibTorch side of the SAE (internal to sae/ and bench/): the weights as device tensors, the
// inference activation of each architecture, and sparse top-k decoding.
#pragma once

#include <random>
#include <string>

#include <torch/torch.h>

#include "core/sae_weights.h"
#include "sae/sae.h"

namespace cl::sae {

enum class Arch { relu_l1, topk, batchtopk };
Arch parse_arch(const std::string& s);  // throws UsageError

// W_enc [D, n], b_enc [n], W_dec [n, D], b_dec [D], float32 on one device.
struct SaeTensors {
  torch::Tensor W_enc, b_enc, W_dec, b_dec;
  Arch arch = Arch::relu_l1;
  int64_t k = 0;
  double threshold = 0.0;
  int64_t d_in() const { return W_enc.size(0); }
  int64_t n_latents() const { return W_enc.size(1); }
};

SaeTensors to_tensors(const SaeWeights& w, torch::Device device);
// Copies tensors (any device) into w's weight vectors (arch/k/threshold too).
void from_tensors(const SaeTensors& t, SaeWeights& w);

// Pre-activations (x - b_dec) W_enc + b_enc, [B, n].
torch::Tensor pre_activations(const SaeTensors& t, const torch::Tensor& x_bd);
// Inference codes z [B, n] (dense): relu, relu(top-k) or relu above the saved threshold.
torch::Tensor encode_dense(const SaeTensors& t, const torch::Tensor& x_bd);
// x_hat = z W_dec + b_dec.
torch::Tensor decode_dense(const SaeTensors& t, const torch::Tensor& z_bn);
// Top-k decode gathering only the k active decoder rows: vals/idx [B, k].
torch::Tensor decode_sparse(const SaeTensors& t, const torch::Tensor& vals_bk, const torch::Tensor& idx_bk);

// One SAE's training state and its manual forward/backward step (no autograd: 5 large matmuls
// per step, the tied-bias gradient through the encoder is a matrix-vector product).
class Trainer {
 public:
  Trainer(const SaeParams& p, int64_t d_in, int64_t n_rows, torch::Device device);
  // Fresh initialisation from a sample of (already scaled) rows: pre-bias, decoder, encoder.
  void init(const torch::Tensor& sample_md);
  // One optimizer step on a batch x [B, D] (already scaled). step_index is 0-based, global.
  void step(const torch::Tensor& x_bd, int64_t total_steps);
  void reset_epoch_metrics();
  // Epoch metrics (host sync): loss, mse, fvu, l0, l1, dead_fraction, decoder_norm_max_dev.
  nlohmann::json epoch_metrics();
  double max_norm_dev() const;
  // batchtopk: the smallest activation kept by batch top-k on x (device scalar, inf if none).
  torch::Tensor min_kept(const torch::Tensor& x_bd) const;

  SaeTensors t;                         // current weights (scaled units)
  torch::Tensor m[4], v[4];             // Adam moments for W_enc, b_enc, W_dec, b_dec
  int64_t step_count = 0;               // optimizer steps done
  torch::Tensor since_fired;            // int64 [n]: inputs since each latent last fired
  torch::Tensor threshold;              // float32 scalar (batchtopk running estimate)
  torch::Tensor data_mean;              // float32 [D]: mean of the (scaled) data, for FVU
  std::mt19937_64* rng = nullptr;       // resampling draws (owned by the driver)

 private:
  torch::Tensor mm(const torch::Tensor& a, const torch::Tensor& b) const;
  // out = a b (+ bias) into a reused buffer: no fresh pages every step on the CPU.
  void mm_into(torch::Tensor& out, const torch::Tensor& a, const torch::Tensor& b) const;
  torch::Tensor rows(torch::Tensor& buf, int64_t b, int64_t cols);  // [b, cols] view of a reused buffer
  void refresh_dead();
  void resample(const torch::Tensor& x_bd, const torch::Tensor& err_bd);
  SaeParams p_;
  int64_t D_, n_, n_rows_, window_;
  torch::Device device_;
  torch::Tensor dead_idx_;  // refreshed at epoch start and every 50 steps (one host sync)
  bool dead_fresh_ = false;
  torch::Tensor buf_pre_, buf_z_, buf_dpre_, buf_gW_enc_, buf_gW_dec_;
  torch::Tensor acc_loss_, acc_sse_, acc_var_, acc_l0_, acc_l1_;
  int64_t acc_rows_ = 0;

 public:
  void mark_epoch_start() { dead_fresh_ = false; }
};

}  // namespace cl::sae
