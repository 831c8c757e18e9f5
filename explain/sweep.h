// Choosing an SAE by the concepts it finds as well as by how well it reconstructs (`conceptlab
// sae sweep`): train a small grid of SAEs (arch x size x k x prefixes, any TrainParams field) on
// the training rows, and score each on rows it never saw: FVU, L0 and dead fraction, and per
// annotated column the best single latent (chosen on the training rows, its AUROC measured on the
// held-out rows) and the K-latent set against a linear probe on the embeddings. The pick is the
// most aligned SAE on the FVU / alignment Pareto front within the reconstruction and dead limits.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/device.h"
#include "core/progress.h"
#include "explain/bench.h"
#include "explain/data.h"
#include "sae/sae.h"

namespace cl::explain {

struct SweepParams {
  sae::TrainParams train;     // every SAE: these, with the grid's values over them
  double holdout = 0.2;       // fraction of rows held out: no SAE trains on them, every score is on them
  uint64_t seed = 0;          // which rows are held out
  int max_latents = 5;        // K: the largest latent set per column
  int min_positives = 5;      // a column is scored when train and held-out rows each have this many positives and negatives
  int path_alphas = 24;       // L1 path of the K-latent set
  double max_fvu = 0.1;       // the pick reconstructs at least 90% of the held-out variance ...
  double max_dead = 0.5;      // ... and keeps at least half of its latents alive
  int threads = 0;            // 0 = all cores (scoring)
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SweepParams, train, holdout, seed, max_latents, min_positives,
                                                path_alphas, max_fvu, max_dead, threads)
void validate(const SweepParams& p);

// GRID.json: an object whose keys are TrainParams fields, each holding a list of values; the grid
// is their product over p.train ("prefixes" is a list of lists and applies to the matryoshka
// archs only). Identical settings are trained once. UsageError naming the key on anything else.
std::vector<sae::TrainParams> expand_grid(const nlohmann::json& grid, const sae::TrainParams& base,
                                          const std::string& grid_path);
// One label per grid point for tables and plots: "matryoshka-topk n2048 k16 p16,64,256", plus
// key=value for any other field that differs between the points (d_in fixes n_latents).
std::vector<std::string> sweep_labels(const std::vector<sae::TrainParams>& grid, int64_t d_in);

struct ColumnScore {
  std::string name;
  int64_t n_pos_train = 0, n_pos_test = 0, n_test = 0;
  int64_t best_latent = -1;  // chosen on the training rows
  double auroc_train = std::numeric_limits<double>::quiet_NaN();
  double auroc = std::numeric_limits<double>::quiet_NaN();        // that latent on the held-out rows
  std::vector<int64_t> latent_set;                                 // fitted on the training rows
  double set_auroc = std::numeric_limits<double>::quiet_NaN();    // held out
  double probe_auroc = std::numeric_limits<double>::quiet_NaN();  // held out, same rows
  std::string note;  // why a column is not scored
};

struct SweepEntry {
  std::string label, sae_path;
  sae::TrainParams params;
  int64_t n_latents = 0;
  sae::Metrics heldout;  // FVU, L0, dead fraction on the held-out rows
  std::vector<ColumnScore> columns;
  double mean_auroc = std::numeric_limits<double>::quiet_NaN();      // over scored columns
  double mean_set_auroc = std::numeric_limits<double>::quiet_NaN();
  bool pareto = false;  // no other SAE has lower-or-equal FVU and higher-or-equal mean AUROC (one strictly)
  double train_seconds = 0;
  BenchEntry bench;     // `sae bench`'s scores of this SAE on the same split (sweep_bench_params)
};

struct SweepResult {
  std::vector<SweepEntry> entries;
  int64_t n_train = 0, n_test = 0;
  std::vector<std::string> heldout_ids;
  double mean_probe_auroc = std::numeric_limits<double>::quiet_NaN();
  int64_t pick = -1;  // index into entries
  std::string why;
};

// The inputs of a sweep: embeddings x_nd [n, d] in memory, their ids, annotation columns joined to
// those ids.
struct SweepData {
  const float* x_nd = nullptr;
  int64_t n = 0, d = 0;
  std::vector<std::string> ids;
  Annotations annotations;
  std::string embeddings_path;  // provenance in each SAE file
};

// The bench settings a sweep scores each SAE with: its split (holdout, seed), min_positives and
// threads, no baselines and no SCR pairs; `sae bench` with these settings gives the same entry.
BenchParams sweep_bench_params(const SweepParams& p);

// Trains every grid point into out_dir/sae_NN.h5 (with its log) and scores it. Writes nothing
// else; write_sweep_outputs writes the table, the JSON and the plot.
SweepResult sweep_saes(const SweepData& data, const std::vector<sae::TrainParams>& grid, const SweepParams& p,
                       Device device, const std::string& out_dir, ProgressSink& progress = silent_progress());

// Marks the Pareto front and names the pick and why (part of sweep_saes; public for tests).
void pick_sae(SweepResult& r, const SweepParams& p);

nlohmann::json to_json(const SweepResult& r, const SweepParams& p);
// out_dir/sweep.csv (one row per SAE), sweep.json (to_json), heldout.csv (the held-out ids), sweep.png
// (FVU against mean best-latent AUROC, the Pareto front and the pick marked).
void write_sweep_outputs(const SweepResult& r, const SweepParams& p, const std::string& out_dir,
                         const std::vector<std::string>& inputs);

}  // namespace cl::explain
