// Sparse autoencoder, public API (cl::sae): training parameters, training, a loaded Model that
// encodes and decodes, evaluation, encoding files into sparse activations, and import of the
// reference project's PyTorch checkpoint. Only c10's Device header comes in with it (no ATen),
// so CLI files stay cheap to compile; the tensor-level internals live in sae/tensors.h.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/device.h"
#include "core/embeddings.h"
#include "core/progress.h"
#include "core/sae_weights.h"
#include "core/sparse.h"

namespace cl::sae {

// A latent is dead when it did not fire over the last min(N, this) inputs; the default counts
// every input of any dataset we meet.
inline constexpr int64_t kDefaultDeadWindow = 1000000;
// Rows per chunk when applying an SAE (encode, eval): a few MB of activations per chunk.
inline constexpr int64_t kDefaultApplyBatch = 8192;

// Every training knob; the member initializers are the defaults. The default is a top-k SAE
// (k 32, expansion 8) so `sae train` with no flags gives a sparse dictionary: on the derm7pt
// embeddings it reaches L0 32 and FVU 0.004 where the reference's ReLU + L1 recipe
// (configs/sae-reference.json) leaves ~890 latents active per image (docs/sae.md, "Defaults").
struct TrainParams {
  std::string arch = "topk";     // relu-l1 | topk | batchtopk | matryoshka-topk | matryoshka-batchtopk
  int64_t expansion = 8;         // n_latents = expansion * D (unless n_latents > 0)
  int64_t n_latents = 0;
  int64_t k = 32;                // topk / batchtopk: active latents per input (batch mean)
  // matryoshka-*: nested dictionary sizes m, ascending (the full size is implied last); the loss
  // is the mean over them of the reconstruction error of latents [0, m) alone. Empty: 16, 64,
  // 256, ... (powers of 4 below n_latents).
  std::vector<int64_t> prefixes = {};
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
  int64_t dead_window = kDefaultDeadWindow;
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

  bool operator==(const TrainParams&) const = default;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TrainParams, arch, expansion, n_latents, k, prefixes, l1, lr, adam_beta1,
                                                adam_beta2, adam_eps, batch, epochs, seed, lr_warmup_steps,
                                                lr_decay_frac, l1_warmup_steps, grad_clip, dead_window,
                                                resample_every, aux_k, aux_alpha, pre_bias_init,
                                                pre_bias_sample, encoder_init, normalize_input,
                                                threshold_momentum, memory_gb, checkpoint_every, tf32, bf16)

// Throws UsageError on invalid values (unknown arch, k < 1, ...).
void validate(const TrainParams& p);
// n_latents of a run on d_in-dimensional inputs.
int64_t latent_count(const TrainParams& p, int64_t d_in);
// The nested sizes of a matryoshka run with n latents (ascending, n last; UsageError when a given
// size is not below n); {} for the other architectures.
std::vector<int64_t> nested_sizes(const TrainParams& p, int64_t n_latents);

class Comm;  // a data-parallel process group (sae/dist.h)

struct TrainOptions {
  std::string out_path;     // log goes to out_path + ".log.jsonl", checkpoints to out_path + ".ckpt"
  std::string resume_path;  // checkpoint to continue from ("" = fresh run)
  std::vector<std::string> inputs;  // provenance for the config attribute
  int64_t stop_after_epochs = 0;    // stop (with a checkpoint) after this many epochs of this run; tests
  // Called after every optimizer step with the max |row norm - 1| of the decoder (costs a sync).
  std::function<void(int64_t step, double max_norm_dev)> on_step;
  // Data-parallel training: every rank calls train with the same data, params and options; each
  // holds its shard of the rows, gradients are summed over ranks (the global batch is p.batch),
  // and only rank 0 writes the log and checkpoints; the ranks evaluate the result together, each
  // on its shard, and every rank's SaeWeights carry the same weights and metrics. nullptr: one process.
  Comm* comm = nullptr;
};

// Trains on rows x_nd [n, d] held in memory.
SaeWeights train(const float* x_nd, int64_t n, int64_t d, const TrainParams& p, Device device,
                 const TrainOptions& opt, ProgressSink& progress = silent_progress());
// Trains on an embeddings file: loaded once when it fits in p.memory_gb, else streamed in
// shuffled chunks.
SaeWeights train(const EmbeddingsReader& reader, const TrainParams& p, Device device, const TrainOptions& opt,
                 ProgressSink& progress = silent_progress());

// mse = mean over inputs and dimensions of (x - x_hat)^2; fvu = sum ||x - x_hat||^2 /
// sum ||x - mean(x)||^2 (float64); l0 = mean active latents per input; l1 = mean sum_j |z_j|;
// dead = latents that did not fire over the last min(N, dead_window) inputs.
struct Metrics {
  int64_t n = 0;
  double mse = 0, fvu = 0, l0 = 0, l1 = 0;
  int64_t n_dead = 0, dead_window = 0;
  double dead_fraction = 0, decoder_norm_max_dev = 0;
  // FVU of the reconstruction from latents [0, m) alone, for each nested size m (matryoshka SAEs,
  // or the sizes asked for in ApplyParams::prefixes).
  std::vector<int64_t> prefixes;
  std::vector<double> fvu_prefix;
};
nlohmann::json to_json(const Metrics& m);

struct ApplyParams {
  int64_t batch = kDefaultApplyBatch;        // rows per chunk
  int64_t dead_window = kDefaultDeadWindow;  // eval: see Metrics
  std::vector<int64_t> prefixes = {};         // eval: FVU of latents [0, m) per size (empty: the SAE's own)
  std::string pool = "max";                   // encode of patches: an image's activation = max | mean | sum over its patches
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ApplyParams, batch, dead_window, prefixes, pool)
void validate(const ApplyParams& p);

struct Tensors;  // the weights as device tensors (sae/tensors.h)

// An SAE loaded once onto a device. Encoding and decoding run there in chunks; inputs and
// outputs are host arrays, codes are CSR.
class Model {
 public:
  Model(const SaeWeights& w, Device device);
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  // read_sae, plus a check that the weights are finite (a diverged run is refused by name).
  static Model load(const std::string& sae_path, Device device);

  int64_t d_in() const;
  int64_t n_latents() const;
  const std::string& arch() const;
  Device device() const;
  const std::string& path() const;  // "" unless loaded from a file
  const Tensors& tensors() const;

  // Throws InputError naming the embeddings and SAE files when dim != d_in().
  void check_dim(int64_t dim, const std::string& embeddings_path) const;

  // Sparse codes of rows x_nd [n, d_in] (acts_nl [n, n_latents]).
  CsrMatrix encode(const float* x_nd, int64_t n, int64_t batch = kDefaultApplyBatch) const;
  // codes W_dec (+ b_dec when with_bias): [codes.n_rows, d_in] row-major. Without the bias this
  // is the part of the embeddings the given latents explain (interventions subtract it).
  std::vector<float> decode(const CsrMatrix& codes, bool with_bias = true) const;
  // decode(encode(x)).
  std::vector<float> reconstruct(const float* x_nd, int64_t n, int64_t batch = kDefaultApplyBatch) const;

  Metrics evaluate(const float* x_nd, int64_t n, const ApplyParams& p = {}) const;
  Metrics evaluate(const EmbeddingsReader& reader, const ApplyParams& p = {},
                   ProgressSink& progress = silent_progress()) const;
  // Data-parallel evaluation of a set of n_rows rows: this rank evaluates rows [lo, hi) (its
  // shard; the ranks' shards in rank order partition the set), the ranks combine their sums (a
  // collective), and every rank returns the metrics of the whole set: those of one process's
  // evaluate up to float64 rounding. x_shard holds rows [lo, hi); comm nullptr: rows [lo, hi) alone.
  Metrics evaluate(const float* x_shard, int64_t lo, int64_t hi, int64_t n_rows, Comm* comm,
                   const ApplyParams& p = {}) const;
  Metrics evaluate(const EmbeddingsReader& reader, int64_t lo, int64_t hi, Comm* comm, const ApplyParams& p = {},
                   ProgressSink& progress = silent_progress()) const;
  // Streams an embeddings file through the SAE into a sparse activations file, chunk by chunk.
  // A patch-embeddings file (reader.patches()) gives one row per image, its patches' activations
  // pooled (ApplyParams::pool), and with patch_out_path the patch activations too (rows (image,
  // patch), the grid and geometry attached; core/patches.h).
  void encode_file(const EmbeddingsReader& reader, const std::string& out_path, const ApplyParams& p = {},
                   ProgressSink& progress = silent_progress(), const std::string& patch_out_path = "") const;

 private:
  void encode_patches(const EmbeddingsReader& reader, const std::string& out_path, const std::string& patch_out_path,
                      const ApplyParams& p, ProgressSink& progress) const;
  Metrics evaluate_rows(int64_t lo, int64_t hi, int64_t n_rows, const ApplyParams& p, Comm* comm,
                        const std::function<const float*(int64_t, int64_t)>& rows, ProgressSink& progress) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads the reference project's torch.save'd checkpoint (zip + pickle) without Python.
SaeWeights import_reference_pth(const std::string& pth_path);

}  // namespace cl::sae
