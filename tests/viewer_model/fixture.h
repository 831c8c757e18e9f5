// A small pipeline workspace with planted concepts and real image files, for the viewer's model
// and screenshot tests: five concept directions in 24-dim embeddings (c0..c3 and an artifact
// "grp" tied to the label in train only), a 48 px PNG per image drawn from its flags, and
// `conceptlab run`'s steps on it (BatchTopK SAE, CBM, explain, interventions, curves), and patch
// activations for it (write_viewer_patches) where a test needs the spatial path.
#pragma once

#include <cmath>
#include <filesystem>
#include <string>

#include <fmt/format.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/activations.h"
#include "core/csv.h"
#include "core/embeddings.h"
#include "core/patches.h"
#include "core/random.h"
#include "core/workspace_layout.h"
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

// Where write_viewer_patches puts a latent: its cell, and half its activation in the next cell.
inline int64_t viewer_patch_cell(int64_t latent, int64_t n_patches) { return (latent * 5) % n_patches; }

// Patch activations for a workspace from make_viewer_workspace, written as the pipeline names
// them (WS/activations.patches.h5) with the format's writers: a grid x grid grid over each 48 px
// image (crop box the whole image), each latent of the image's row at viewer_patch_cell (its
// activation) and the cell after it (half). Returns the patch rows [n_images * P, n_latents].
inline CsrMatrix write_viewer_patches(const std::string& ws, int64_t grid = 4) {
  const std::string acts_path = ws + "/" + workspace::kActivations;
  const Activations a = read_activations(acts_path);
  const int64_t P = grid * grid, n = static_cast<int64_t>(a.ids.size());
  PatchGeometry g;
  g.grid_h = g.grid_w = grid;
  g.image_ids = a.ids;
  for (int64_t i = 0; i < n; ++i) {
    g.image_size.insert(g.image_size.end(), {48, 48});
    g.crop_box.insert(g.crop_box.end(), {0.0f, 0.0f, 48.0f, 48.0f});
  }
  CsrMatrix rows;
  rows.n_cols = a.acts.n_cols;
  std::vector<std::string> ids;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t p = 0; p < P; ++p) {
      std::vector<int32_t> cols;
      std::vector<float> vals;
      for (const auto [j, v] : a.acts.row(i)) {
        const int64_t c = viewer_patch_cell(j, P);
        if (c == p) cols.push_back(j), vals.push_back(v);
        else if ((c + 1) % P == p) cols.push_back(j), vals.push_back(v / 2);
      }
      rows.append_row(cols.data(), vals.data(), static_cast<int64_t>(cols.size()));
      ids.push_back(patch_row_id(a.ids[static_cast<size_t>(i)], p));
    }
  ActivationsWriter w(ws + "/" + workspace::kPatchActivations, a.acts.n_cols, {{"activations", acts_path}});
  w.set_patches(g);
  w.append(ids, rows);
  w.commit();
  return rows;
}

}  // namespace cl::test
