// Linear probes for quick checks of how well embeddings carry a binary concept: a ridge
// regression on standardised features (closed form), scored with cbm::auroc on held-out rows.
#pragma once

#include <cstdint>
#include <vector>

namespace cl::demo {

// Fits ridge on (x_train [n_train, d], y_train 0/1) after standardising with train statistics,
// returns scores for x_test [n_test, d].
std::vector<double> ridge_probe_scores(const std::vector<float>& x_train, const std::vector<int>& y_train,
                                       const std::vector<float>& x_test, int64_t d, double lambda = 10.0);

}  // namespace cl::demo
