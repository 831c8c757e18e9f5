// Solver correctness: L2/unpenalised fits against an independent dense Newton solver written
// here; L1/elastic-net fits against the subgradient optimality conditions; warm-started path.
#include <doctest/doctest.h>

#include <Eigen/Dense>
#include <cmath>
#include <random>

#include "cbm/logreg.h"
#include "core/error.h"
#include "tests/test_util.h"

using namespace cl;
using namespace cl::cbm;

namespace {

struct Problem {
  CsrMatrix X;
  Eigen::MatrixXd Xd;  // [n, F]
  std::vector<int> y;
};

// Dense-ish or sparse random features (density 1 = dense) with labels from a noisy linear model.
Problem make_problem(int n, int F, int C, double density, uint64_t seed, bool nonneg = false) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> N(0, 1);
  std::uniform_real_distribution<double> U(0, 1);
  Problem p;
  p.X.n_cols = F;
  p.Xd = Eigen::MatrixXd::Zero(n, F);
  Eigen::MatrixXd W = Eigen::MatrixXd::Zero(C, F);
  for (int k = 0; k < C; ++k)
    for (int j = 0; j < F; ++j) W(k, j) = N(rng);
  for (int i = 0; i < n; ++i) {
    std::vector<int32_t> cols;
    std::vector<float> vals;
    for (int j = 0; j < F; ++j)
      if (U(rng) < density) {
        float v = float(nonneg ? std::abs(N(rng)) + 0.1 : N(rng) + 0.3);
        cols.push_back(j), vals.push_back(v);
        p.Xd(i, j) = v;
      }
    for (size_t q = 0; q < cols.size(); ++q) p.X.indices.push_back(cols[q]), p.X.values.push_back(vals[q]);
    p.X.indptr.push_back(int64_t(p.X.indices.size()));
    p.X.n_rows++;
    Eigen::VectorXd z = W * p.Xd.row(i).transpose();
    for (int k = 0; k < C; ++k) z(k) += 1.5 * N(rng);  // noise keeps the data non-separable
    int best = 0;
    for (int k = 1; k < C; ++k)
      if (z(k) > z(best)) best = k;
    p.y.push_back(best);
  }
  return p;
}

// Independent reference: Newton's method on the dense objective
//   sum_i c_i loss_i + a2/2 |W|^2, c_i = weight_i / n, full parametrisation (K rows).
// Singular Hessians (multinomial shift, unpenalised) are solved with the minimum-norm solution.
void newton(const Eigen::MatrixXd& X, const std::vector<int>& y, int C, double a2, const std::vector<double>& c,
            Eigen::MatrixXd& W, Eigen::VectorXd& b) {
  const int n = int(X.rows()), F = int(X.cols()), K = C == 2 ? 1 : C, P = K * (F + 1);
  W = Eigen::MatrixXd::Zero(K, F);
  b = Eigen::VectorXd::Zero(K);
  Eigen::MatrixXd Xt(n, F + 1);
  Xt << X, Eigen::VectorXd::Ones(n);
  auto objective = [&](const Eigen::MatrixXd& Wt, const Eigen::VectorXd& bt) {
    double f = 0.5 * a2 * Wt.squaredNorm();
    for (int i = 0; i < n; ++i) {
      Eigen::VectorXd z = Wt * X.row(i).transpose() + bt;
      if (K == 1) f += c[i] * (std::log1p(std::exp(-std::abs(z(0)))) + std::max(z(0), 0.0) - (y[i] == 1) * z(0));
      else {
        double m = z.maxCoeff();
        f += c[i] * (m + std::log((z.array() - m).exp().sum()) - z(y[i]));
      }
    }
    return f;
  };
  for (int it = 0; it < 100; ++it) {
    Eigen::VectorXd g = Eigen::VectorXd::Zero(P);
    Eigen::MatrixXd H = Eigen::MatrixXd::Zero(P, P);
    for (int i = 0; i < n; ++i) {
      Eigen::VectorXd z = W * X.row(i).transpose() + b;
      Eigen::VectorXd p(K), t(K);
      if (K == 1) p(0) = 1 / (1 + std::exp(-z(0))), t(0) = y[i] == 1;
      else {
        p = (z.array() - z.maxCoeff()).exp();
        p /= p.sum();
        for (int k = 0; k < K; ++k) t(k) = y[i] == k;
      }
      Eigen::RowVectorXd xi = Xt.row(i);
      for (int k = 0; k < K; ++k) {
        g.segment(k * (F + 1), F + 1) += c[i] * (p(k) - t(k)) * xi.transpose();
        for (int l = 0; l < K; ++l) {
          double h = K == 1 ? p(0) * (1 - p(0)) : p(k) * ((k == l) - p(l));
          H.block(k * (F + 1), l * (F + 1), F + 1, F + 1) += c[i] * h * xi.transpose() * xi;
        }
      }
    }
    for (int k = 0; k < K; ++k) {
      g.segment(k * (F + 1), F) += a2 * W.row(k).transpose();
      H.block(k * (F + 1), k * (F + 1), F, F) += a2 * Eigen::MatrixXd::Identity(F, F);
    }
    if (g.lpNorm<Eigen::Infinity>() < 1e-13) break;
    Eigen::VectorXd d = -H.completeOrthogonalDecomposition().solve(g);
    double step = 1, f0 = objective(W, b);
    for (int ls = 0; ls < 30; ++ls, step *= 0.5) {
      Eigen::MatrixXd W2 = W;
      Eigen::VectorXd b2 = b;
      for (int k = 0; k < K; ++k) {
        W2.row(k) += step * d.segment(k * (F + 1), F).transpose();
        b2(k) += step * d(k * (F + 1) + F);
      }
      if (objective(W2, b2) <= f0 + 1e-12 * std::abs(f0) || ls == 29) {
        W = W2, b = b2;
        break;
      }
    }
  }
}

// Removes the multinomial shift freedom (softmax is invariant to adding a constant per column).
void centre(Eigen::MatrixXd& W, Eigen::VectorXd& b) {
  if (W.rows() == 1) return;
  for (int j = 0; j < W.cols(); ++j) W.col(j).array() -= W.col(j).mean();
  b.array() -= b.mean();
}

void check_against_newton(int C, const std::string& penalty, double alpha, const std::string& solver,
                          bool balanced = false, bool standardize = false) {
  auto p = make_problem(C == 2 ? 150 : 240, 4, C, 1.0, 7 + C);
  LogRegParams prm;
  prm.penalty = penalty;
  prm.alpha = alpha;
  prm.tol = 1e-10;
  prm.max_iter = 5000;
  prm.solver = solver;
  prm.class_weight = balanced ? "balanced" : "none";
  prm.standardize = standardize;
  auto fit = fit_logreg(p.X, p.y, C, prm);
  INFO("C=" << C << " penalty=" << penalty << " solver=" << solver << " gap=" << fit.gap << " iters=" << fit.iterations);
  CHECK(fit.converged);
  CHECK(fit.gap <= 1e-10);

  const int n = int(p.y.size());
  std::vector<double> cnt(C, 0), c(n);
  for (int v : p.y) cnt[v]++;
  for (int i = 0; i < n; ++i) c[i] = (balanced ? n / (C * cnt[p.y[i]]) : 1.0) / n;
  Eigen::MatrixXd Xs = p.Xd;
  Eigen::VectorXd s = Eigen::VectorXd::Ones(4);
  if (standardize) {
    for (int j = 0; j < 4; ++j) {
      double m = Xs.col(j).mean(), v = (Xs.col(j).array() - m).square().mean();
      s(j) = 1 / std::sqrt(v);
      Xs.col(j) *= s(j);
    }
  }
  Eigen::MatrixXd W;
  Eigen::VectorXd b;
  newton(Xs, p.y, C, penalty == "none" ? 0.0 : alpha, c, W, b);
  for (int k = 0; k < W.rows(); ++k) W.row(k).array() *= s.transpose().array();  // back to raw scale
  Eigen::MatrixXd Wf(fit.n_rows, 4);
  Eigen::VectorXd bf(fit.n_rows);
  for (int k = 0; k < fit.n_rows; ++k) {
    for (int j = 0; j < 4; ++j) Wf(k, j) = fit.weights[k * 4 + j];
    bf(k) = fit.bias[k];
  }
  centre(W, b);
  centre(Wf, bf);
  double err = std::max((W - Wf).lpNorm<Eigen::Infinity>(), (b - bf).lpNorm<Eigen::Infinity>());
  INFO("C=" << C << " penalty=" << penalty << " solver=" << solver << " err=" << err);
  CHECK(err < 1e-6);
  CHECK(W.lpNorm<Eigen::Infinity>() > 0.1);  // a non-trivial solution was compared
}

// Max violation of the optimality conditions computed here from scratch (dense).
double kkt_violation(const Problem& p, int C, const LogRegFit& f, double a1, double a2) {
  const int n = int(p.y.size()), F = int(p.Xd.cols()), K = int(f.n_rows);
  double worst = 0;
  Eigen::MatrixXd R(n, K);
  for (int i = 0; i < n; ++i) {
    Eigen::VectorXd z(K);
    for (int k = 0; k < K; ++k) {
      z(k) = f.bias[k];
      for (int j = 0; j < F; ++j) z(k) += f.weights[k * F + j] * p.Xd(i, j);
    }
    if (K == 1) R(i, 0) = (1 / (1 + std::exp(-z(0))) - (p.y[i] == 1)) / n;
    else {
      Eigen::VectorXd e = (z.array() - z.maxCoeff()).exp();
      e /= e.sum();
      for (int k = 0; k < K; ++k) R(i, k) = (e(k) - (p.y[i] == k)) / n;
    }
  }
  Eigen::MatrixXd G = p.Xd.transpose() * R;  // [F, K]
  for (int k = 0; k < K; ++k) {
    worst = std::max(worst, std::abs(R.col(k).sum()));
    for (int j = 0; j < F; ++j) {
      double w = f.weights[k * F + j], g = G(j, k) + a2 * w;
      worst = std::max(worst, w != 0 ? std::abs(g + a1 * (w > 0 ? 1 : -1)) : std::max(0.0, std::abs(g) - a1));
    }
  }
  return worst;
}

}  // namespace

TEST_CASE("logreg: L2 binary matches Newton (lbfgs and cd)") {
  check_against_newton(2, "l2", 0.05, "lbfgs");
  check_against_newton(2, "l2", 0.05, "cd");
}

TEST_CASE("logreg: unpenalised binary matches Newton") { check_against_newton(2, "none", 0.0, "lbfgs"); }

TEST_CASE("logreg: L2 multinomial matches Newton") {
  check_against_newton(3, "l2", 0.02, "lbfgs");
  check_against_newton(3, "l2", 0.02, "cd");
}

TEST_CASE("logreg: unpenalised multinomial matches Newton (up to the softmax shift)") {
  check_against_newton(3, "none", 0.0, "lbfgs");
}

TEST_CASE("logreg: balanced class weights and standardisation match Newton") {
  check_against_newton(2, "l2", 0.05, "lbfgs", true, false);
  check_against_newton(2, "l2", 0.05, "lbfgs", false, true);
  check_against_newton(3, "l2", 0.05, "lbfgs", true, true);
}

TEST_CASE("logreg: L1 and elastic-net satisfy the subgradient optimality conditions") {
  for (int C : {2, 4}) {
    auto p = make_problem(300, 40, C, 0.3, 100 + C, true);
    for (std::string pen : {"l1", "elasticnet"}) {
      LogRegParams prm;
      prm.penalty = pen;
      prm.alpha = 0.01;
      prm.l1_ratio = 0.5;
      prm.tol = 1e-8;
      auto f = fit_logreg(p.X, p.y, C, prm);
      double a1 = pen == "l1" ? prm.alpha : prm.alpha * 0.5, a2 = pen == "l1" ? 0 : prm.alpha * 0.5;
      double v = kkt_violation(p, C, f, a1, a2);
      INFO("C=" << C << " " << pen << " violation " << v << " nnz " << f.nnz() << " iters " << f.iterations);
      CHECK(f.converged);
      CHECK(v < 1e-7);
      CHECK(f.nnz() > 0);
      CHECK(f.nnz() < f.n_rows * 40);  // the L1 term made it sparse
    }
  }
}

TEST_CASE("logreg: standardised L1 fit folds the scale into the weights") {
  auto p = make_problem(200, 20, 2, 0.4, 5, true);
  // Scaling a column by 10 leaves a standardised fit's predictions unchanged.
  CsrMatrix X2 = p.X;
  for (int64_t q = 0; q < X2.nnz(); ++q)
    if (X2.indices[q] == 3) X2.values[q] *= 10;
  LogRegParams prm;
  prm.alpha = 0.005;
  prm.standardize = true;
  prm.tol = 1e-9;
  auto f1 = fit_logreg(p.X, p.y, 2, prm), f2 = fit_logreg(X2, p.y, 2, prm);
  auto p1 = predict_proba(p.X, f1), p2 = predict_proba(X2, f2);
  double d = 0;
  for (size_t i = 0; i < p1.size(); ++i) d = std::max(d, std::abs(p1[i] - p2[i]));
  CHECK(d < 1e-6);
  CHECK(f2.weights[3] == doctest::Approx(f1.weights[3] / 10).epsilon(1e-5));
}

TEST_CASE("logreg: alpha path is warm-started, sparser for larger alpha, and equals cold fits") {
  auto p = make_problem(300, 60, 3, 0.2, 11, true);
  LogRegParams prm;
  prm.tol = 1e-7;
  std::vector<double> alphas = {1e-3, 1e-1, 1e-2};
  auto path = fit_alpha_path(p.X, p.y, 3, prm, alphas);
  CHECK(path[1].nnz() <= path[2].nnz());
  CHECK(path[2].nnz() <= path[0].nnz());
  CHECK(path[0].nnz() > path[1].nnz());
  prm.alpha = 1e-2;
  auto cold = fit_logreg(p.X, p.y, 3, prm);
  auto pc = predict_proba(p.X, cold), pw = predict_proba(p.X, path[2]);
  double d = 0;
  for (size_t i = 0; i < pc.size(); ++i) d = std::max(d, std::abs(pc[i] - pw[i]));
  CHECK(d < 1e-4);
}

TEST_CASE("logreg: fits on a row subset equal fits on the copied rows") {
  auto p = make_problem(120, 10, 2, 0.5, 3, true);
  std::vector<int64_t> rows;
  CsrMatrix sub;
  sub.n_cols = p.X.n_cols;
  std::vector<int> ysub;
  for (int64_t i = 0; i < p.X.n_rows; i += 2) {
    rows.push_back(i);
    for (int64_t q = p.X.indptr[i]; q < p.X.indptr[i + 1]; ++q)
      sub.indices.push_back(p.X.indices[q]), sub.values.push_back(p.X.values[q]);
    sub.indptr.push_back(int64_t(sub.indices.size()));
    sub.n_rows++;
    ysub.push_back(p.y[i]);
  }
  LogRegParams prm;
  prm.alpha = 0.003;
  auto a = fit_logreg(p.X, p.y, 2, prm, rows), b = fit_logreg(sub, ysub, 2, prm);
  CHECK(a.weights == b.weights);
  CHECK(a.bias == b.bias);
}

TEST_CASE("logreg: bad parameters are usage errors") {
  LogRegParams prm;
  prm.penalty = "l3";
  CHECK_THROWS_AS(validate(prm), UsageError);
  prm = {};
  prm.solver = "lbfgs";  // L1 is not smooth
  CHECK_THROWS_AS(validate(prm), UsageError);
  prm = {};
  prm.l1_ratio = 2;
  CHECK_THROWS_AS(validate(prm), UsageError);
}
