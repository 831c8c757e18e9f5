// Ridge probe and AUROC (used by `conceptlab demo`'s quick check and the demo-world tests).
#include "tools/demo/probe.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <torch/torch.h>

#include "core/error.h"

namespace cl::demo {

double auroc(const std::vector<double>& scores, const std::vector<int>& labels) {
  CL_ASSERT(scores.size() == labels.size());
  std::vector<size_t> idx(scores.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Mann-Whitney U with average ranks for ties.
  double rank_sum = 0;
  int64_t n_pos = 0;
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j < idx.size() && scores[idx[j]] == scores[idx[i]]) ++j;
    const double avg_rank = (i + 1 + j) / 2.0;
    for (size_t q = i; q < j; ++q)
      if (labels[idx[q]]) rank_sum += avg_rank, ++n_pos;
    i = j;
  }
  const int64_t n_neg = static_cast<int64_t>(labels.size()) - n_pos;
  if (n_pos == 0 || n_neg == 0) return std::numeric_limits<double>::quiet_NaN();
  return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (static_cast<double>(n_pos) * n_neg);
}

std::vector<double> ridge_probe_scores(const std::vector<float>& x_train, const std::vector<int>& y_train,
                                       const std::vector<float>& x_test, int64_t d, double lambda) {
  const int64_t n = static_cast<int64_t>(y_train.size()), m = static_cast<int64_t>(x_test.size()) / d;
  CL_ASSERT(static_cast<int64_t>(x_train.size()) == n * d && static_cast<int64_t>(x_test.size()) == m * d);
  torch::NoGradGuard no_grad;
  auto xt = torch::from_blob(const_cast<float*>(x_train.data()), {n, d}, torch::kFloat).to(torch::kDouble);
  auto xs = torch::from_blob(const_cast<float*>(x_test.data()), {m, d}, torch::kFloat).to(torch::kDouble);
  auto mu = xt.mean(0), sd = xt.std(0, true).clamp_min(1e-8);
  xt = (xt - mu) / sd;
  xs = (xs - mu) / sd;
  std::vector<double> yv(y_train.begin(), y_train.end());
  auto y = torch::tensor(yv, torch::kDouble);
  const double ybar = y.mean().item<double>();
  auto a = xt.t().mm(xt) + lambda * torch::eye(d, torch::kDouble);
  auto w = torch::linalg_solve(a, xt.t().mv(y - ybar));
  auto s = (xs.mv(w) + ybar).contiguous();
  return std::vector<double>(s.data_ptr<double>(), s.data_ptr<double>() + m);
}

}  // namespace cl::demo
