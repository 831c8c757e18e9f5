// Ridge probe (used by `conceptlab demo`'s quick check and the demo-world tests).
#include "tools/demo/probe.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <torch/torch.h>

#include "core/error.h"

namespace cl::demo {

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
