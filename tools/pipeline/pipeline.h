// `conceptlab run`: one cached pipeline from images to explanations in a workspace folder:
// embed -> sae (train) -> encode -> classify (concept bottleneck + probe on embeddings, same
// splits; and the bottleneck fitted without a subgroup's bias) -> explain (index, match, name,
// global, montages) -> intervene (the configured edits with random controls, curves) -> report.
// Each step is skipped when its outputs exist and the hash of its inputs and resolved settings is
// the one recorded in workspace.json; otherwise it (and every step after it) runs again. Outputs
// are written atomically, so a failed or killed step leaves earlier outputs intact and the run
// resumable.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/csv.h"
#include "cbm/logreg.h"
#include "cbm/protocol.h"
#include "core/device.h"
#include "core/progress.h"
#include "explain/experiment.h"
#include "explain/bench.h"
#include "explain/localize.h"
#include "explain/match.h"
#include "explain/naming.h"
#include "explain/rules.h"
#include "explain/stats.h"
#include "sae/sae.h"
#include "tools/embed/embed.h"

namespace cl::pipeline {

// What the images are and which columns mean what.
struct DataParams {
  std::string csv;                 // metadata CSV: one row per image (ids, label, annotations)
  std::string image_root;          // folder the ids are relative to ("" = the CSV's folder)
  std::string id_col = kDefaultIdCol;
  std::string label_col = "label";  // the classifier's target
  std::string split_col = "split";  // train/valid/test rows ("" = repeated stratified splits)
  std::string eval_split = "test";  // rows interventions and curves are scored on
  std::vector<std::string> concept_cols;  // 0/1 annotation columns latents are matched to
  std::string subgroup_col;         // per-subgroup metrics, and the classifier fitted without its bias
  std::string embeddings;           // precomputed embeddings (skips the embed step)
  std::string vocab;                // concept vocabulary (conceptlab.vocab): naming by direction
  // Ground-truth concept masks (a conceptlab.masks file or a DIR/<concept>/<id>.png folder); with
  // embed.patches the explain step measures where each named latent fires against them.
  std::string masks;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DataParams, csv, image_root, id_col, label_col, split_col, eval_split,
                                                concept_cols, subgroup_col, embeddings, vocab, masks)

// One configured intervention (the top_n latents of a concept by a rule) and the curves: the
// same structs `conceptlab intervene` and `explain curve` take (explain/rules.h).
using InterventionSpec = explain::RuleEdits;
using CurveParams = explain::CurveParams;

struct PipelineParams {
  DataParams data;
  // Model, preprocessing, batch, device, workers (csv/out come from data). embed.patches: the SAE
  // trains on the patch grid, activations are pooled over patches (pool) and the patch
  // activations drive heatmaps.
  embed::EmbedParams embed;
  std::string pool = "max";  // with patches: an image's activation = max | mean | sum over its patches
  sae::TrainParams sae;
  // A `conceptlab sae sweep` folder (or its sweep.json): the sae step takes the SAE the sweep
  // picked instead of training one with `sae` ("" = train). Sweep the workspace's own embeddings.
  std::string sae_sweep;
  cbm::ProtocolParams cbm;     // the concept bottleneck on the activations
  cbm::LogRegParams probe;     // the same kind of model on the embeddings, same rows and splits
  explain::StatsParams stats;
  explain::MatchParams match;
  explain::NameParams name;
  int global_top = 10;
  int montage_top = 10;
  explain::LocalizeParams localize;  // with data.masks: the random-latent control
  explain::InterveneParams intervene;
  std::vector<InterventionSpec> interventions;
  CurveParams curve;
  // The bench step (`conceptlab sae bench` on the workspace's SAE, its embeddings and
  // data.concept_cols, against the baselines; bench's own seeded split): off unless run_bench.
  bool run_bench = false;
  explain::BenchParams bench;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(PipelineParams, data, embed, pool, sae, sae_sweep, cbm, probe, stats, match,
                                                name, global_top, montage_top, localize, intervene, interventions, curve,
                                                run_bench, bench)
void validate(const PipelineParams& p);
// Relative paths of a config file (data.csv, data.image_root, data.embeddings, data.vocab,
// embed.model, embed.preprocess_json, sae_sweep) made relative to base_dir, the config's folder.
void resolve_paths(PipelineParams& p, const std::string& base_dir);

// The steps in order, and the workspace files each writes for these params (core/workspace_layout.h
// names them); the explain step also records the montages it wrote in workspace.json. A step runs
// again when any of its files is missing.
const std::vector<std::string>& step_names();
size_t step_index(const std::string& step);  // UsageError listing the steps for an unknown one
std::vector<std::string> step_outputs(const std::string& step, const PipelineParams& p);

struct RunOptions {
  std::string workspace;    // folder (created)
  std::string force;        // re-run this step and every step after it
  std::string from, to;     // run only steps in [from, to] (the earlier ones must be complete)
  std::string device = "auto";
};

struct StepResult {
  std::string name;
  bool ran = false;   // false: cached
  double seconds = 0;
};

struct RunResult {
  std::string workspace;
  std::vector<StepResult> steps;
  nlohmann::json report;  // report.json as written
};

RunResult run_pipeline(const PipelineParams& p, const RunOptions& o, ProgressSink& progress = silent_progress());

}  // namespace cl::pipeline
