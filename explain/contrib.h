// Explanations of a linear model over latent activations (a concept bottleneck): global (per
// class, the latents with the largest weights and mean contributions) and local (per image, the
// latents whose activation x weight moves each class logit most; they sum to the logit minus the
// bias exactly).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cbm/logreg.h"
#include "core/sparse.h"

namespace cl::explain {

// The weight of latent j for class k. Binary models store the logit of class 1: class 1 gets w,
// class 0 gets -w (the same evidence, from the other side).
double class_weight(const cbm::LogRegFit& m, int k, int64_t j);

// Importance rank of every latent: 1 for the largest max_k |W[k, j]|, then down; latents with all
// weights zero get 0 (not used by the model). Ties: lower latent first.
std::vector<int64_t> importance_ranks(const cbm::LogRegFit& m);

struct LatentTerm {
  int64_t latent = -1;
  double weight = 0;             // class weight
  double mean_activation = 0;    // over the class's images (all images when no labels)
  double mean_contribution = 0;  // weight x mean_activation
  int64_t importance_rank = 0;
};

struct ClassGlobal {
  std::string class_name;
  int64_t n_images = 0;                   // images the means are taken over
  std::vector<LatentTerm> by_weight;       // largest weights (positive evidence) first
  std::vector<LatentTerm> by_contribution;  // largest |mean contribution| first
};

// y (may be empty): class per row of acts, so mean contributions are over each class's images.
std::vector<ClassGlobal> global_explanations(const cbm::LogRegFit& m, const std::vector<std::string>& classes,
                                             const CsrMatrix& acts_nl, const std::vector<int>& y, int top);

struct ClassLocal {
  std::string class_name;
  double probability = 0, logit = 0, bias = 0;
  std::vector<LatentTerm> terms;  // activation x weight in mean_contribution, |.| descending (all non-zero)
};

// One image (row of acts): probabilities and the per-class contributions (for binary models the
// class 1 logit; class 0 is its negation).
std::vector<ClassLocal> local_explanation(const cbm::LogRegFit& m, const std::vector<std::string>& classes,
                                          const CsrMatrix& acts_nl, int64_t row);

nlohmann::json to_json(const std::vector<ClassGlobal>& g);
nlohmann::json to_json(const std::vector<ClassLocal>& l);

}  // namespace cl::explain
