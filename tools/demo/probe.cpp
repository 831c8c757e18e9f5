// Ridge probe (used by `conceptlab demo`'s quick check and the demo-world tests): standardise
// with train statistics, solve the regularised normal equations with Eigen's LDLT.
#include "tools/demo/probe.h"

#include <Eigen/Dense>

#include "core/error.h"

namespace cl::demo {

std::vector<double> ridge_probe_scores(const std::vector<float>& x_train, const std::vector<int>& y_train,
                                       const std::vector<float>& x_test, int64_t d, double lambda) {
  const int64_t n = static_cast<int64_t>(y_train.size()), m = static_cast<int64_t>(x_test.size()) / d;
  CL_ASSERT(static_cast<int64_t>(x_train.size()) == n * d && static_cast<int64_t>(x_test.size()) == m * d);
  CL_ASSERT(n > 1, "ridge probe needs at least two training rows");
  using RowMajorXf = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::MatrixXd xt = Eigen::Map<const RowMajorXf>(x_train.data(), n, d).cast<double>();
  Eigen::MatrixXd xs = Eigen::Map<const RowMajorXf>(x_test.data(), m, d).cast<double>();
  const Eigen::RowVectorXd mu = xt.colwise().mean();
  xt.rowwise() -= mu;
  xs.rowwise() -= mu;
  // Sample standard deviation (n - 1), floored so constant columns stay finite.
  const Eigen::RowVectorXd sd =
      (xt.colwise().squaredNorm() / static_cast<double>(n - 1)).cwiseSqrt().cwiseMax(1e-8);
  xt = xt.array().rowwise() / sd.array();
  xs = xs.array().rowwise() / sd.array();
  Eigen::VectorXd y(n);
  for (int64_t i = 0; i < n; ++i) y[i] = y_train[static_cast<size_t>(i)];
  const double ybar = y.mean();
  Eigen::MatrixXd a = xt.transpose() * xt;
  a.diagonal().array() += lambda;
  const Eigen::VectorXd w = a.ldlt().solve(xt.transpose() * (y.array() - ybar).matrix());
  const Eigen::VectorXd s = (xs * w).array() + ybar;
  return std::vector<double>(s.data(), s.data() + m);
}

}  // namespace cl::demo
