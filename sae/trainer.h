// The SAE optimizer step and its losses (internal to sae/ and bench/): one SAE's training state
// and a hand-written forward/backward step (no autograd: 5 large matmuls per step; the tied-bias
// gradient through the encoder is a matrix-vector product), Adam with warm-up/decay, AuxK and
// dead-latent resampling, and the epoch's running metrics.
#pragma once

#include <array>
#include <functional>
#include <utility>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/random.h"
#include "sae/dist.h"
#include "sae/sae.h"
#include "sae/tensors.h"

namespace cl::sae {

// Metrics of the steps of one epoch (one host sync when read).
struct EpochMetrics {
  int64_t epoch = 0, step = 0;
  double loss = 0, mse = 0, fvu = 0, l0 = 0, l1 = 0, dead_fraction = 0, decoder_norm_max_dev = 0;
  double threshold = 0;  // batchtopk only
  bool has_threshold = false;
  std::vector<int64_t> prefixes;   // matryoshka: nested sizes
  std::vector<double> fvu_prefix;  // FVU of latents [0, m) alone, per nested size
  double time_s = 0;
};
nlohmann::json to_json(const EpochMetrics& m);

// One step's loss and gradients (the decoder's with the parallel component removed, before
// clipping and Adam): what the cross-checks against autograd compare.
struct StepGrads {
  double loss = 0;
  torch::Tensor gW_enc, gb_enc, gW_dec, gb_dec;
};

class Trainer {
 public:
  Trainer(const TrainParams& p, int64_t d_in, int64_t n_rows, torch::Device device);
  // Fresh initialisation from a sample of (already scaled) rows: pre-bias, decoder, encoder.
  void init(const torch::Tensor& sample_md);
  // One optimizer step on a batch x [B, D] (already scaled). Data-parallel (comm set): x holds
  // this rank's rows of a global batch of batch_rows rows, pos their positions in it (resampling
  // needs them); the ranks' gradients, dead-latent counters, batch top-k cut and AuxK statistics
  // are combined so that every rank takes the step one process would take on the whole batch.
  void step(const torch::Tensor& x_bd, int64_t total_steps, int64_t batch_rows = -1,
            const std::vector<int64_t>* pos = nullptr);
  void reset_epoch_metrics();
  EpochMetrics epoch_metrics();
  double max_norm_dev() const;
  // False once a loss of this epoch or any weight is NaN or infinite (a diverged run). Data-
  // parallel, epoch_loss_finite and epoch_metrics are collectives: every rank calls them together.
  bool epoch_loss_finite() const;
  bool weights_finite() const;
  // batchtopk: the smallest activation kept by batch top-k on x (device scalar, inf if none);
  // data-parallel, x is this rank's part of a batch of batch_rows rows (a collective).
  torch::Tensor min_kept(const torch::Tensor& x_bd, int64_t batch_rows = -1) const;
  // Data-parallel: a checksum of the weights compared across ranks; InputError if they differ.
  void check_ranks_agree() const;
  void mark_epoch_start() { dead_fresh_ = false; }

  Tensors t;                            // current weights (scaled units)
  // Adam's moments (torch.optim.Adam's exp_avg, exp_avg_sq), in the order of Tensors::params().
  struct AdamState {
    std::array<torch::Tensor, 4> exp_avg, exp_avg_sq;
  } adam;
  int64_t step_count = 0;               // optimizer steps done
  torch::Tensor since_fired;            // int64 [n]: inputs since each latent last fired
  torch::Tensor threshold;              // float32 scalar (batchtopk running estimate)
  torch::Tensor data_mean;              // float32 [D]: mean of the (scaled) data, for FVU
  Rng* rng = nullptr;                   // resampling draws (owned by the driver)
  StepGrads* capture = nullptr;         // tests: filled by every step when set
  Comm* comm = nullptr;                 // data-parallel process group (nullptr: one process)
  // batchtopk, data-parallel: batches whose top-k cut needed every rank's best K (bench, tests).
  mutable int64_t full_offers = 0;

 private:
  // What one step's forward pass leaves for the loss and the backward pass.
  struct Forward {
    torch::Tensor xc;                 // x - b_dec [B, D]
    torch::Tensor pre, z;             // pre-activations and codes [B, n] (relu-l1: one buffer)
    torch::Tensor e;                  // full reconstruction error [B, D]
    std::vector<torch::Tensor> errs;  // matryoshka: one error per nested size, the full one last
  };
  // The step's gradients, in the order of Tensors::params(), and dL/dpre [B, n].
  struct Grads {
    torch::Tensor W_enc, b_enc, W_dec, b_dec, dpre;
    std::array<torch::Tensor*, 4> list() { return {&W_enc, &b_enc, &W_dec, &b_dec}; }
  };
  Forward forward(const torch::Tensor& x_bd, int64_t Bl, int64_t B);
  torch::Tensor batch_top_k(const torch::Tensor& pre, int64_t Bl, int64_t B);  // also moves the threshold
  double l1_coefficient() const;  // with its warm-up (relu-l1; 0 otherwise)
  torch::Tensor loss_terms(const torch::Tensor& x_bd, const Forward& f, int64_t B, double l1);
  void backward(const Forward& f, Grads& g, int64_t Bl, int64_t B, double l1);
  void aux_k(const Forward& f, Grads& g, torch::Tensor& loss, int64_t B);
  void encoder_grads(const Forward& f, Grads& g);
  void reduce(Grads& g, torch::Tensor& fired);  // data-parallel: one all-reduce
  void project_decoder_grad(Grads& g) const;
  void clip(Grads& g) const;
  double learning_rate(int64_t total_steps) const;
  void adam_update(Grads& g, double lr);
  torch::Tensor mm(const torch::Tensor& a, const torch::Tensor& b) const;
  // out = a b into a reused buffer: no fresh pages every step on the CPU.
  void mm_into(torch::Tensor& out, const torch::Tensor& a, const torch::Tensor& b) const;
  torch::Tensor rows(torch::Tensor& buf, int64_t b, int64_t cols);  // [b, cols] view of a reused buffer
  void refresh_dead();
  void resample(const torch::Tensor& x_bd, const torch::Tensor& err_bd, int64_t batch_rows,
                const std::vector<int64_t>* pos);
  bool distributed() const { return comm != nullptr && comm->size() > 1; }
  // batchtopk, data-parallel: (vals, idx) = this rank's values in the top K of all ranks' values
  // and their indices; returns the smallest positive value in that top K (inf if none).
  // local_top(m) gives this rank's best m values and indices (fewer when it has fewer). Every
  // rank first offers its best ~1.25 K / W; only when a rank may hold more above the resulting
  // cut do all offer K (always exact), so the exchange and sort are ~W times smaller.
  using LocalTop = std::function<std::pair<torch::Tensor, torch::Tensor>(int64_t)>;
  torch::Tensor global_top_k(const LocalTop& local_top, int64_t K, torch::Tensor& vals, torch::Tensor& idx) const;
  TrainParams p_;
  int64_t D_, n_, n_rows_, window_;
  torch::Device device_;
  torch::Tensor dead_idx_;  // refreshed at epoch start and every 50 steps (one host sync)
  bool dead_fresh_ = false;
  torch::Tensor buf_pre_, buf_z_, buf_dpre_, buf_gW_enc_, buf_gW_dec_;
  // Data-parallel: every gradient and the fired flags in one buffer, one all-reduce per step.
  torch::Tensor flat_grads_;
  torch::Tensor acc_loss_, acc_sse_, acc_var_, acc_l0_, acc_l1_;
  torch::Tensor acc_sse_prefix_;  // float64 [P]: matryoshka, per nested size
  int64_t acc_rows_ = 0;
  bool acc_reduced_ = false;  // data-parallel: the acc_ sums are already over all ranks
};

}  // namespace cl::sae
