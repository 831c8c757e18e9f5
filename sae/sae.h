// Sparse autoencoder: parameters, training, encoding to sparse activations, evaluation and
// import of the reference project's PyTorch checkpoint. Torch-free header so CLI files stay
// cheap to compile; the LibTorch model lives in sae/sae_model.h.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "core/embeddings.h"
#include "core/sae_weights.h"
#include "core/sparse.h"

namespace cl {

// Every training knob. The member initializers are the defaults (= the reference recipe:
// ReLU + L1 3e-5, expansion 8, Adam lr 5e-4, batch 4096, 200 epochs).
struct SaeParams {
  std::string arch = "relu-l1";  // relu-l1 | topk | batchtopk
  int64_t expansion = 8;         // n_latents = expansion * D (unless n_latents > 0)
  int64_t n_latents = 0;
  int64_t k = 32;                // topk / batchtopk: active latents per input (batch mean)
  double l1 = 3e-5;              // relu-l1: loss = MSE + l1 * mean_b sum_j |z_bj|
  double lr = 5e-4;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_eps = 1e-8;
  int64_t batch = 4096;
  int64_t epochs = 200;
  int64_t seed = 0;
  int64_t lr_warmup_steps = 0;    // linear warm-up from 0
  double lr_decay_frac = 0.0;     // linear decay to 0 over this final fraction of the steps
  int64_t l1_warmup_steps = 0;    // linear ramp of the L1 coefficient from 0
  double grad_clip = 0.0;         // max global gradient norm; 0 = off
  int64_t dead_window = 1000000;  // a latent is dead when silent over the last min(N, this) inputs
  int64_t resample_every = 0;     // relu-l1: resample dead latents every this many steps; 0 = off
  int64_t aux_k = 512;            // topk/batchtopk: AuxK latents (among dead ones) per input
  double aux_alpha = 1.0 / 32.0;  // AuxK loss weight
  std::string pre_bias_init = "geometric_median";  // geometric_median | mean | zero
  int64_t pre_bias_sample = 8192;                   // rows used for the pre-bias and the scale
  std::string encoder_init = "auto";  // auto (topk*: transpose, relu-l1: kaiming) | transpose | kaiming
  bool normalize_input = false;       // train on x / sqrt(mean ||x||^2); folded back on save
  double threshold_momentum = 0.99;   // batchtopk: EMA of the per-batch minimum kept activation
  double memory_gb = 4.0;             // in-memory when the embeddings fit, else streamed
  int64_t checkpoint_every = 10;      // epochs; 0 = no checkpoints
  bool tf32 = false;                  // CUDA: TF32 matmuls
  bool bf16 = false;                  // matmul inputs in bfloat16 (fp32 master weights)

  bool operator==(const SaeParams&) const = default;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SaeParams, arch, expansion, n_latents, k, l1, lr, adam_beta1,
                                                adam_beta2, adam_eps, batch, epochs, seed, lr_warmup_steps,
                                                lr_decay_frac, l1_warmup_steps, grad_clip, dead_window,
                                                resample_every, aux_k, aux_alpha, pre_bias_init,
                                                pre_bias_sample, encoder_init, normalize_input,
                                                threshold_momentum, memory_gb, checkpoint_every, tf32, bf16)

// Parses a config object; unknown keys and bad values throw InputError naming `what`.
SaeParams sae_params_from_json(const nlohmann::json& j, const std::string& what);
// Throws UsageError on invalid values (unknown arch, k < 1, ...).
void validate_sae_params(const SaeParams& p);

struct SaeTrainOptions {
  std::string out_path;     // log goes to out_path + ".log.jsonl", checkpoints to out_path + ".ckpt"
  std::string resume_path;  // checkpoint to continue from ("" = fresh run)
  std::vector<std::string> inputs;  // provenance for the config attribute
  bool quiet = false;
  int64_t stop_after_epochs = 0;  // stop (with a checkpoint) after this many epochs of this run; tests
  // Called after every optimizer step with the max |row norm - 1| of the decoder (costs a sync).
  std::function<void(int64_t step, double max_norm_dev)> on_step;
};

// Trains on rows x_nd [n, d] held in memory.
SaeWeights train_sae(const float* x_nd, int64_t n, int64_t d, const SaeParams& p, torch::Device device,
                     const SaeTrainOptions& opt);
// Trains on an embeddings file: loaded once when it fits in p.memory_gb, else streamed in
// shuffled chunks.
SaeWeights train_sae(const EmbeddingsReader& reader, const SaeParams& p, torch::Device device,
                     const SaeTrainOptions& opt);

// Metrics (mse, fvu, l0, l1, dead_fraction, n_dead, decoder_norm_max_dev, n) as JSON.
// mse = mean over inputs and dimensions of (x - x_hat)^2; fvu = sum ||x - x_hat||^2 /
// sum ||x - mean(x)||^2 (float64); l0 = mean active latents per input; l1 = mean sum_j |z_j|;
// dead = latents that did not fire over the last min(N, dead_window) inputs.
nlohmann::json evaluate_sae(const SaeWeights& w, const float* x_nd, int64_t n, int64_t d, torch::Device device,
                            int64_t dead_window = 1000000, int64_t batch = 8192);
nlohmann::json evaluate_sae(const SaeWeights& w, const EmbeddingsReader& reader, torch::Device device,
                            int64_t dead_window = 1000000, int64_t batch = 8192, bool quiet = true);

// Sparse activations of rows x_nd [n, d] (in memory; small inputs and tests).
CsrMatrix encode_rows(const SaeWeights& w, const float* x_nd, int64_t n, int64_t d, torch::Device device);
// Reconstructions x_hat [n, d] of rows x_nd.
std::vector<float> reconstruct_rows(const SaeWeights& w, const float* x_nd, int64_t n, int64_t d,
                                    torch::Device device);
// Streams an embeddings file through the SAE into a sparse activations file, chunk by chunk.
void encode_file(const SaeWeights& w, const EmbeddingsReader& reader, const std::string& out_path,
                 torch::Device device, int64_t chunk = 8192, bool quiet = false,
                 const std::vector<std::string>& inputs = {});

// Throws InputError when the embeddings' dimension differs from the SAE's.
void check_sae_dim(const SaeWeights& w, int64_t dim, const std::string& embeddings_path,
                   const std::string& sae_path);

// Reads the reference project's torch.save'd checkpoint (zip + pickle) without Python.
SaeWeights import_reference_pth(const std::string& pth_path);

}  // namespace cl
