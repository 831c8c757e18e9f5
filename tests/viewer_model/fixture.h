// A small pipeline workspace with planted concepts and real image files, for the viewer's model
// and screenshot tests: five concept directions in 24-dim embeddings (c0..c3 and an artifact
// "grp" tied to the label in train only), a 48 px PNG per image drawn from its flags, and
// `conceptlab run`'s steps on it (BatchTopK SAE, CBM, explain, interventions, curves).
#pragma once

#include <cmath>
#include <filesystem>
#include <string>

#include <fmt/format.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/csv.h"
#include "core/embeddings.h"
#include "core/random.h"
#include "tools/pipeline/pipeline.h"

namespace cl::test {

inline void write_viewer_dataset(const std::string& dir, int64_t n, int64_t dim, uint64_t seed) {
  std::filesystem::create_directories(dir + "/images");
  Rng rng(seed);
  const int n_concepts = 5;
  std::vector<float> dirs(static_cast<size_t>(n_concepts * dim));
  for (auto& v : dirs) v = static_cast<float>(rng.normal());
  Embeddings e;
  e.n = n, e.dim = dim;
  e.data.resize(static_cast<size_t>(n * dim));
  CsvTable t;
  t.header = {"ImageID", "label", "split", "c0", "c1", "c2", "c3", "grp"};
  for (int64_t i = 0; i < n; ++i) {
    const bool train = rng.uniform() < 0.7;
    int f[5];
    for (int k = 0; k < 4; ++k) f[k] = rng.uniform() < 0.3;
    const int y = (f[0] || f[1]) ^ (rng.uniform() < 0.1);
    f[4] = rng.uniform() < (train ? (y ? 0.7 : 0.1) : 0.3);
    e.ids.push_back(fmt::format("img{:05d}.png", i));
    for (int64_t d = 0; d < dim; ++d) {
      double v = 0.1 * rng.normal();
      for (int k = 0; k < n_concepts; ++k) v += 3.0 * f[k] * dirs[static_cast<size_t>(k * dim + d)] / std::sqrt(double(dim));
      e.data[static_cast<size_t>(i * dim + d)] = static_cast<float>(v);
    }
    cv::Mat img(48, 48, CV_8UC3, cv::Scalar(170, 190, 225));
    if (f[0]) cv::circle(img, {24, 24}, 12, cv::Scalar(40, 60, 120), -1);
    if (f[1]) cv::rectangle(img, {4, 4}, {18, 18}, cv::Scalar(160, 40, 40), -1);
    if (f[2]) cv::rectangle(img, {30, 30}, {44, 44}, cv::Scalar(40, 150, 40), -1);
    if (f[3]) cv::circle(img, {36, 10}, 5, cv::Scalar(20, 20, 20), -1);
    if (f[4]) cv::line(img, {0, 47}, {47, 0}, cv::Scalar(10, 10, 10), 2);
    cv::imwrite(dir + "/images/" + e.ids.back(), img);
    t.rows.push_back({e.ids.back(), y ? "malignant" : "benign", train ? "train" : "test", std::to_string(f[0]),
                      std::to_string(f[1]), std::to_string(f[2]), std::to_string(f[3]), std::to_string(f[4])});
  }
  write_embeddings(dir + "/emb.h5", e);
  write_csv(dir + "/meta.csv", t);
}

// The settings the planted-workspace tests share (paths relative to the dataset folder): over the
// precomputed embeddings, every concept matched, a BatchTopK SAE (per-image top-k spends its k
// slots on noise when fewer concepts are present: AUROC 0.71-0.86 for some concepts here;
// BatchTopK lets sparsity vary per image: 1.000), short curves and controls.
inline pipeline::PipelineParams planted_params() {
  pipeline::PipelineParams p;
  p.data.csv = "meta.csv";
  p.data.embeddings = "emb.h5";
  p.data.concept_cols = {"c0", "c1", "c2", "c3", "grp"};
  p.data.subgroup_col = "grp";
  p.sae.arch = "batchtopk";
  p.sae.k = 4;
  p.sae.n_latents = 16;
  p.sae.batch = 64;
  p.sae.epochs = 100;
  p.sae.lr = 1e-3;
  p.sae.pre_bias_init = "zero";
  p.match.splits = 2;
  p.global_top = 5;
  p.montage_top = 4;
  p.intervene.random_control = 5;
  p.curve.by = {"weight", "annotation", "random"};
  p.curve.concept_col = "grp";
  p.curve.seeds = 2;
  return p;
}

// Writes the dataset under DIR/data and runs the pipeline into DIR/ws; returns the workspace.
inline std::string make_viewer_workspace(const std::string& dir, int64_t n = 600) {
  write_viewer_dataset(dir + "/data", n, 24, 5);
  pipeline::PipelineParams p = planted_params();
  p.data.image_root = "images";
  p.interventions = {{"grp", "named", 2, "zero", ""}};
  p.curve.max_k = 4;
  pipeline::resolve_paths(p, dir + "/data");
  pipeline::RunOptions o;
  o.workspace = dir + "/ws";
  o.device = "cpu";
  pipeline::run_pipeline(p, o);
  return o.workspace;
}

}  // namespace cl::test
