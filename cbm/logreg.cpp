// Logistic regression solvers. The training rows are copied once into a column-major (CSC)
// design (Eigen's storage-order conversion) with the optional column scale applied, because
// coordinate descent visits features and both solvers need X^T r. Sparse stays sparse: nothing
// here ever allocates n x F.
#include "cbm/logreg.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <numeric>

#include <Eigen/Dense>

#include "core/error.h"
#include "core/random.h"

namespace cl::cbm {

void validate(const LogRegParams& p) {
  if (p.penalty != "l1" && p.penalty != "l2" && p.penalty != "elasticnet" && p.penalty != "none")
    throw_usage("penalty '{}': expected l1, l2, elasticnet or none", p.penalty);
  if (p.class_weight != "none" && p.class_weight != "balanced")
    throw_usage("class_weight '{}': expected none or balanced", p.class_weight);
  if (p.solver != "auto" && p.solver != "cd" && p.solver != "lbfgs")
    throw_usage("solver '{}': expected auto, cd or lbfgs", p.solver);
  if (!(p.alpha >= 0) || !std::isfinite(p.alpha)) throw_usage("alpha {}: expected a finite value >= 0", p.alpha);
  if (!(p.l1_ratio >= 0 && p.l1_ratio <= 1)) throw_usage("l1_ratio {}: expected a value in [0, 1]", p.l1_ratio);
  if (!(p.tol > 0)) throw_usage("tol {}: expected > 0", p.tol);
  if (p.max_iter < 1) throw_usage("max_iter {}: expected >= 1", p.max_iter);
  if (p.solver == "lbfgs" && (p.penalty == "l1" || p.penalty == "elasticnet") && p.alpha > 0)
    throw_usage("solver lbfgs cannot fit penalty {} (non-smooth): use cd or auto", p.penalty);
}

std::vector<int64_t> LogRegFit::nnz_per_row() const {
  std::vector<int64_t> out(n_rows, 0);
  for (int64_t r = 0; r < n_rows; ++r)
    for (int64_t j = 0; j < n_features; ++j) out[r] += weights[r * n_features + j] != 0.0;
  return out;
}

int64_t LogRegFit::nnz() const {
  auto v = nnz_per_row();
  return std::accumulate(v.begin(), v.end(), int64_t{0});
}

// The training rows by column (Eigen compressed column storage, float values as stored on disk):
// coordinate descent walks one feature's non-zeros at a time.
struct Design {
  Design() = default;
  Design(const Design&) = delete;
  Design& operator=(const Design&) = delete;
  int64_t n = 0, f = 0;
  int64_t n_source_rows = 0;  // rows of the X it was built from (labels are indexed by them)
  uint64_t serial = 0;        // unique per design made in this process (keys a FitState)
  bool standardized = false;
  CscMatrix X;               // [n, f] scaled values
  const SparseIndex* colptr = nullptr;  // X's buffers, for the hand-written hot loops below
  const SparseIndex* row = nullptr;
  const float* val = nullptr;
  std::vector<double> scale;  // x_scaled = x * scale[j]
  std::vector<double> norm2, norm1;  // |x_j|_2 and |x_j|_1 of each scaled column (bound a gradient's change)
};

namespace {

// Fills d in place from the rows by column (given in `built`, swapped in: Eigen's assignment
// deep-copies); the raw pointers point into d.X, so a Design is never copied or moved.
void make_design(CscMatrix& built, int64_t n_source_rows, bool standardize, Design& d) {
  d.X.swap(built);
  static std::atomic<uint64_t> n_designs{0};
  d.serial = ++n_designs;
  d.n_source_rows = n_source_rows;
  d.standardized = standardize;
  d.n = d.X.rows();
  d.f = d.X.cols();
  d.scale.assign(d.f, 1.0);
  float* v = d.X.valuePtr();
  const SparseIndex* cp = d.X.outerIndexPtr();
  if (standardize) {
    for (int64_t j = 0; j < d.f; ++j) {
      double s = 0, ss = 0;
      for (SparseIndex k = cp[j]; k < cp[j + 1]; ++k) s += v[k], ss += double(v[k]) * v[k];
      double mean = s / d.n, var = ss / d.n - mean * mean;
      double sd = var > 0 ? std::sqrt(var) : 0.0;
      if (sd > 1e-12) {
        d.scale[j] = 1.0 / sd;
        for (SparseIndex k = cp[j]; k < cp[j + 1]; ++k) v[k] = float(v[k] * d.scale[j]);
      }
    }
  }
  d.colptr = cp;
  d.row = d.X.innerIndexPtr();
  d.val = v;
  d.norm2.assign(d.f, 0.0);
  d.norm1.assign(d.f, 0.0);
  for (int64_t j = 0; j < d.f; ++j) {
    double ss = 0, sa = 0;
    for (SparseIndex k = cp[j]; k < cp[j + 1]; ++k) ss += double(v[k]) * v[k], sa += std::abs(v[k]);
    d.norm2[j] = std::sqrt(ss);
    d.norm1[j] = sa;
  }
  // The solvers' tolerances are absolute on the gradient, which grows with the feature scale: at
  // |x| ~ 1e20 a fit never reaches them and runs for hours. Refuse instead of looping.
  constexpr double kMaxAbs = 1e6;
  const int64_t nnz = d.X.nonZeros();
  for (int64_t k = 0; k < nnz; ++k)
    if (!(std::abs(v[k]) <= kMaxAbs)) {
      int64_t col = std::upper_bound(cp, cp + d.f + 1, static_cast<SparseIndex>(k)) - cp - 1;
      throw_input("features: value {:.3g} in column {}{}; logistic regression needs |x| <= {:g}: {}", double(v[k]), col,
                  standardize ? " after standardising" : "", kMaxAbs,
                  standardize ? "the column is almost constant with extreme outliers; rescale the features"
                              : "fit with --standardize or rescale the features");
    }
}

// sum_q x_qj * w[row q] (times h[row q] when given) over column j. Four partial sums: one chain of
// dependent adds, not memory, limited these loops (the L1 paths of explain match: 2.3x faster).
double column_dot(const Design& D, int64_t j, const double* w, const double* h = nullptr) {
  double g0 = 0, g1 = 0, g2 = 0, g3 = 0;
  int64_t q = D.colptr[j];
  const int64_t e = D.colptr[j + 1];
  const SparseIndex* row = D.row;
  const float* val = D.val;
  if (h) {
    for (; q + 4 <= e; q += 4) {
      g0 += val[q] * h[row[q]] * w[row[q]];
      g1 += val[q + 1] * h[row[q + 1]] * w[row[q + 1]];
      g2 += val[q + 2] * h[row[q + 2]] * w[row[q + 2]];
      g3 += val[q + 3] * h[row[q + 3]] * w[row[q + 3]];
    }
    for (; q < e; ++q) g0 += val[q] * h[row[q]] * w[row[q]];
  } else {
    for (; q + 4 <= e; q += 4) {
      g0 += val[q] * w[row[q]];
      g1 += val[q + 1] * w[row[q + 1]];
      g2 += val[q + 2] * w[row[q + 2]];
      g3 += val[q + 3] * w[row[q + 3]];
    }
    for (; q < e; ++q) g0 += val[q] * w[row[q]];
  }
  return (g0 + g1) + (g2 + g3);
}

// State of one fit: parameters in the scaled space, logits and probabilities.
struct Solver {
  Solver(const Design& d, int c, int k) : D(d), C(c), K(k) {}
  const Design& D;
  int C, K;  // classes, fitted rows (1 for binary)
  std::vector<int> y;
  std::vector<double> c;  // sample weight / n
  double a1 = 0, a2 = 0;
  bool intercept = true;
  double tol = 1e-4;
  int max_iter = 1000;

  std::vector<double> V, b;  // [K, F], [K]
  std::vector<double> z, p;  // [n, K] logits, [n, K] probabilities (class k of K; binary: class 1)
  double loss = 0;

  int64_t n() const { return D.n; }
  int64_t F() const { return D.f; }

  double target(int64_t i, int k) const { return K == 1 ? (y[i] == 1) : (y[i] == k); }

  // Loss of logits zz (and probabilities into pp when given).
  double eval_loss(const std::vector<double>& zz, std::vector<double>* pp) const {
    double L = 0;
    if (K == 1) {
      // One exp per sample for both the loss and the probability: softplus(z) = max(z, 0) +
      // log1p(e) and sigmoid(z) = 1 / (1 + e) or e / (1 + e), with e = exp(-|z|).
      for (int64_t i = 0; i < n(); ++i) {
        const double zi = zz[i], e = std::exp(-std::abs(zi));
        L += c[i] * (std::max(zi, 0.0) + std::log1p(e) - (y[i] == 1 ? zi : 0.0));
        if (pp) (*pp)[i] = zi >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
      }
    } else {
      for (int64_t i = 0; i < n(); ++i) {
        const double* zi = &zz[i * K];
        double m = *std::max_element(zi, zi + K), s = 0;
        for (int k = 0; k < K; ++k) s += std::exp(zi[k] - m);
        L += c[i] * (m + std::log(s) - zi[y[i]]);
        if (pp)
          for (int k = 0; k < K; ++k) (*pp)[i * K + k] = std::exp(zi[k] - m) / s;
      }
    }
    return L;
  }

  double penalty(const std::vector<double>& VV) const {
    double l1 = 0, l2 = 0;
    for (double v : VV) l1 += std::abs(v), l2 += v * v;
    return a1 * l1 + 0.5 * a2 * l2;
  }

  // Z = X V^T + b by hand: most weights of an L1 fit are zero and their columns are skipped,
  // which a dense-weight sparse x dense product (Eigen's) cannot do.
  void compute_z() {
    z.assign(n() * K, 0.0);
    for (int64_t i = 0; i < n(); ++i)
      for (int k = 0; k < K; ++k) z[i * K + k] = b[k];
    for (int64_t j = 0; j < F(); ++j)
      for (int k = 0; k < K; ++k) {
        double v = V[k * F() + j];
        if (v == 0) continue;
        for (int64_t q = D.colptr[j], e = D.colptr[j + 1]; q < e; ++q) z[D.row[q] * K + k] += v * D.val[q];
      }
    p.assign(n() * K, 0.0);
    loss = eval_loss(z, &p);
  }

  // Per-sample residual of class k, R_i = c_i (p_ik - [y_i = k]); returns its sum, the intercept's
  // gradient.
  double residual(int k, std::vector<double>& R) const {
    R.resize(n());
    double gb = 0;  // a local: summing into a reference measured 5 cycles per row (store forwarding)
    for (int64_t i = 0; i < n(); ++i) {
      R[i] = c[i] * (p[i * K + k] - target(i, k));
      gb += R[i];
    }
    return gb;
  }

  // G = X^T R (the loss gradient, unpenalised) for every feature, or only those in `cols` (G's
  // other entries are left as they were).
  void gradient(const std::vector<double>& R, std::vector<double>& G, const std::vector<int64_t>* cols = nullptr) const {
    G.resize(F());
    // By hand: Eigen's X^T r (transposed CSC times a vector through a float->double cast) measured
    // 5% slower on cbm_bench than this loop.
    if (cols) {
      for (int64_t j : *cols) G[j] = column_dot(D, j, R.data());
    } else {
      for (int64_t j = 0; j < F(); ++j) G[j] = column_dot(D, j, R.data());
    }
  }

  // Loss gradient for class k at the current weights: its residual R, G and Gb (see above).
  void loss_grad(int k, std::vector<double>& R, std::vector<double>& G, double& Gb,
                 const std::vector<int64_t>* cols = nullptr) const {
    Gb = residual(k, R);
    gradient(R, G, cols);
  }

  double violation(double v, double g_loss) const {
    double g = g_loss + a2 * v;
    if (v != 0) return std::abs(g + a1 * (v > 0 ? 1.0 : -1.0));
    return std::max(0.0, std::abs(g) - a1);
  }

  double class_gap(int k, const std::vector<double>& G, double Gb, const std::vector<int64_t>* cols = nullptr) const {
    double gap = intercept ? std::abs(Gb) : 0.0;
    if (cols) {
      for (int64_t j : *cols) gap = std::max(gap, violation(V[k * F() + j], G[j]));
    } else {
      for (int64_t j = 0; j < F(); ++j) gap = std::max(gap, violation(V[k * F() + j], G[j]));
    }
    return gap;
  }

  // One proximal Newton step on class k (others fixed): coordinate descent on the quadratic
  // model over the active set, then an Armijo line search on the true objective.
  bool cd_step(int k, const std::vector<double>& G, double Gb, double gap_k, const std::vector<int64_t>& candidates) {
    const int64_t Fn = F();
    std::vector<int64_t> active;
    for (int64_t j : candidates)
      if (V[k * Fn + j] != 0 || violation(0.0, G[j]) > 0) active.push_back(j);
    std::vector<double> h(n());
    double hsum = 0;
    for (int64_t i = 0; i < n(); ++i) {
      double pk = p[i * K + k];
      h[i] = c[i] * std::max(pk * (1 - pk), 1e-10);
      hsum += h[i];
    }
    // The unpenalised intercept is profiled out of the quadratic model: coordinate j then acts
    // on its h-weighted centred column (curvature a_j - H m_j^2), which removes the slow
    // intercept/feature zig-zag of uncentred non-negative features.
    std::vector<double> a(active.size()), m(active.size(), 0.0), dv(active.size(), 0.0), r(n(), 0.0);
    for (size_t t = 0; t < active.size(); ++t) {
      int64_t j = active[t];
      double s1 = 0, s2 = 0, t1 = 0, t2 = 0;  // two chains each, as in column_dot
      int64_t q = D.colptr[j];
      const int64_t e = D.colptr[j + 1];
      for (; q + 2 <= e; q += 2) {
        const double hv = h[D.row[q]] * D.val[q], hw = h[D.row[q + 1]] * D.val[q + 1];
        s1 += hv, s2 += hv * D.val[q];
        t1 += hw, t2 += hw * D.val[q + 1];
      }
      for (; q < e; ++q) {
        const double hv = h[D.row[q]] * D.val[q];
        s1 += hv, s2 += hv * D.val[q];
      }
      s1 += t1, s2 += t2;
      if (intercept) {
        m[t] = s1 / hsum;
        a[t] = std::max(0.0, s2 - hsum * m[t] * m[t]);
      } else {
        a[t] = s2;
      }
    }
    double hr = 0;  // sum_i h_i r_i
    const double inner_tol = 0.1 * std::max(std::min(gap_k, 1.0), tol);
    auto sweep = [&](bool nonzero_only) {
      double maxchg = 0;
      for (size_t t = 0; t < active.size(); ++t) {
        int64_t j = active[t];
        double u = V[k * Fn + j] + dv[t];
        if ((nonzero_only && u == 0) || a[t] + a2 <= 0) continue;
        const double gq = G[j] - m[t] * (Gb + hr) + column_dot(D, j, r.data(), h.data());
        double w = a[t] * u - gq;
        double un = (w > a1 ? w - a1 : w < -a1 ? w + a1 : 0.0) / (a[t] + a2);
        double d = un - u;
        if (d == 0) continue;
        dv[t] += d;
        for (int64_t q = D.colptr[j], e = D.colptr[j + 1]; q < e; ++q) r[D.row[q]] += d * D.val[q];
        hr += d * hsum * m[t];
        maxchg = std::max(maxchg, (a[t] + a2) * std::abs(d));
      }
      return maxchg;
    };
    // glmnet's schedule: a full sweep, then sweeps over the non-zeros until they settle.
    for (int outer = 0; outer < 100; ++outer) {
      if (sweep(false) <= inner_tol) break;
      for (int pass = 0; pass < 100; ++pass)
        if (sweep(true) <= inner_tol) break;
    }
    double db = 0;
    if (intercept) {
      db = -(Gb + hr) / hsum;
      for (int64_t i = 0; i < n(); ++i) r[i] += db;
    }
    // Armijo on F = loss + penalty along (dv, db). The predicted change is summed per
    // coordinate (not as a difference of two penalty totals) so it keeps its precision.
    double pen_old = 0, lin = Gb * db, dpen = 0;
    for (size_t t = 0; t < active.size(); ++t) {
      double v = V[k * Fn + active[t]], d = dv[t];
      pen_old += a1 * std::abs(v) + 0.5 * a2 * v * v;
      dpen += a1 * (std::abs(v + d) - std::abs(v)) + a2 * d * (v + 0.5 * d);
      lin += G[active[t]] * d;
    }
    const double F0 = loss + pen_old;
    const double delta = lin + dpen;
    // Near the optimum the predicted decrease drops below what double precision can resolve in
    // F; the full Newton step is then taken as is (it is what drives the gradient to ~1e-12).
    const bool tiny = std::abs(delta) < 1e-13 * std::max(1.0, std::abs(F0));
    if (!(delta < 0) && !tiny) return false;
    std::vector<double> zt(z), pt(p.size());
    double step = 1.0;
    for (int ls = 0; ls < 40; ++ls, step *= 0.5) {
      for (int64_t i = 0; i < n(); ++i) zt[i * K + k] = z[i * K + k] + step * r[i];
      double Lt = eval_loss(zt, &pt), pen_t = 0;
      for (size_t t = 0; t < active.size(); ++t) {
        double vn = V[k * Fn + active[t]] + step * dv[t];
        pen_t += a1 * std::abs(vn) + 0.5 * a2 * vn * vn;
      }
      if (tiny || Lt + pen_t <= F0 + 0.01 * step * delta) {
        for (size_t t = 0; t < active.size(); ++t) V[k * Fn + active[t]] += step * dv[t];
        b[k] += step * db;
        z.swap(zt);
        p.swap(pt);
        loss = Lt;
        return true;
      }
    }
    return false;
  }

  // Gradients of the loss per class: G[k][j] is exact at the current weights for the features of
  // the working set and those the last check computed; G_ref[k] holds every feature's gradient
  // at the residual R_ref[k] (the last full pass, or a FitState's).
  std::vector<std::vector<double>> G, G_ref, R_ref;
  std::vector<double> Gb;

  // The optimality check over every feature without a pass over X when it can be avoided: a
  // feature at zero violates only if |G_j| > a1, and |G_j - G_ref_j| <= min(|x_j|_2 |R - R_ref|_2,
  // |x_j|_1 |R - R_ref|_inf) (Cauchy-Schwarz, Hoelder), so only the features whose bound reaches a1 (and the non-zero ones) get
  // their exact gradient. A full pass when too many remain, which resets the reference. Returns
  // the largest violation, exact; `checked` gets the features whose gradient is now exact.
  double check(const std::vector<char>& in_ws, std::vector<int64_t>& checked) {
    std::vector<std::vector<double>> R(K);
    for (int k = 0; k < K; ++k) Gb[k] = residual(k, R[k]);
    std::vector<int64_t> uncertain;  // outside the working set, and the bound does not clear them
    bool full = R_ref.empty() || !(a1 > 0);
    if (!full) {
      std::vector<double> delta2(K), delta_inf(K);
      for (int k = 0; k < K; ++k) {
        double ss = 0, mx = 0;
        for (int64_t i = 0; i < n(); ++i) {
          const double d = R[k][i] - R_ref[k][i];
          ss += d * d, mx = std::max(mx, std::abs(d));
        }
        delta2[k] = std::sqrt(ss) * (1 + 1e-9);  // a margin for the rounding of the bound itself
        delta_inf[k] = mx * (1 + 1e-9);
      }
      const double limit = a1 * (1 - 1e-9);
      for (int64_t j = 0; j < F(); ++j) {
        if (in_ws[j]) continue;  // exact already
        bool need = false;
        for (int k = 0; k < K && !need; ++k)
          need = V[k * F() + j] != 0 ||
                 std::abs(G_ref[k][j]) + std::min(D.norm2[j] * delta2[k], D.norm1[j] * delta_inf[k]) > limit;
        if (need) uncertain.push_back(j);
      }
      full = static_cast<int64_t>(uncertain.size()) * 4 > F();
    }
    double gap = 0;
    for (int k = 0; k < K; ++k) gap = std::max(gap, intercept ? std::abs(Gb[k]) : 0.0);
    checked.clear();
    if (full) {
      for (int k = 0; k < K; ++k) {
        gradient(R[k], G[k]);
        gap = std::max(gap, class_gap(k, G[k], Gb[k]));
      }
      G_ref = G;
      R_ref = std::move(R);
      for (int64_t j = 0; j < F(); ++j) checked.push_back(j);
      return gap;
    }
    checked = uncertain;
    for (int64_t j = 0; j < F(); ++j)
      if (in_ws[j]) checked.push_back(j);  // kept exact by the inner loop
    for (int k = 0; k < K; ++k) {
      gradient(R[k], G[k], &uncertain);
      gap = std::max(gap, class_gap(k, G[k], Gb[k], &checked));
    }
    return gap;
  }

  // A feature at zero joins the working set when |G_j| > kWsMargin * a1, not only once it violates
  // (|G_j| > a1): most such features enter the solution as the fit moves, and admitting them early
  // saves the checks and steps that would find them one by one (7-class cbm_bench: 8% faster).
  static constexpr double kWsMargin = 0.5;

  // Proximal Newton steps on a working set: the non-zero features and those near or past the
  // threshold at a check. Steps and their gradients touch only those columns; a check over every
  // feature (see check) confirms convergence or grows the set. Most of X never enters an L1 fit,
  // and a pass over it per step dominated the cost of an L1 path.
  void run_cd(int& iters, double& gap) {
    std::vector<double> R;
    G.resize(K);
    for (auto& g : G) g.resize(F());
    Gb.resize(K);
    std::vector<int64_t> ws, checked;
    std::vector<char> in_ws(F(), 0);
    bool stalled = false;
    for (iters = 0;;) {
      gap = check(in_ws, checked);
      if (gap <= tol || iters >= max_iter) return;
      const size_t ws_before = ws.size();
      for (int64_t j : checked)
        for (int k = 0; k < K && !in_ws[j]; ++k)
          if (V[k * F() + j] != 0 || std::abs(G[k][j]) > kWsMargin * a1) in_ws[j] = 1, ws.push_back(j);
      // No descent step existed at double precision and no new feature can help: report the gap as is.
      if (stalled && ws.size() == ws_before) return;
      stalled = false;
      for (;;) {
        bool moved = false;
        for (int k = 0; k < K; ++k) {
          if (k > 0) loss_grad(k, R, G[k], Gb[k], &ws);  // earlier classes' steps changed p
          moved = cd_step(k, G[k], Gb[k], class_gap(k, G[k], Gb[k], &ws), ws) || moved;
        }
        ++iters;
        if (!moved) {  // a failed step changes nothing
          stalled = true;
          break;
        }
        double gap_ws = 0;
        for (int k = 0; k < K; ++k) {
          loss_grad(k, R, G[k], Gb[k], &ws);
          gap_ws = std::max(gap_ws, class_gap(k, G[k], Gb[k], &ws));
        }
        if (gap_ws <= tol || iters >= max_iter) break;
      }
    }
  }

  // L-BFGS on theta = [V (K*F), b (K)] for smooth objectives (a1 == 0).
  double smooth_eval(const std::vector<double>& th, std::vector<double>& g) {
    const int64_t KF = K * F();
    std::copy(th.begin(), th.begin() + KF, V.begin());
    std::copy(th.begin() + KF, th.end(), b.begin());
    compute_z();
    g.assign(th.size(), 0.0);
    std::vector<double> R, G;
    double Gb;
    for (int k = 0; k < K; ++k) {
      loss_grad(k, R, G, Gb);
      for (int64_t j = 0; j < F(); ++j) g[k * F() + j] = G[j] + a2 * V[k * F() + j];
      g[KF + k] = intercept ? Gb : 0.0;
    }
    double pen = 0;
    for (int64_t q = 0; q < KF; ++q) pen += 0.5 * a2 * V[q] * V[q];
    return loss + pen;
  }

  void run_lbfgs(int& iters, double& gap) {
    const int m = 10;
    const size_t N = V.size() + b.size();
    std::vector<double> x(N), g, gn, d(N), xn(N);
    std::copy(V.begin(), V.end(), x.begin());
    std::copy(b.begin(), b.end(), x.begin() + V.size());
    double f = smooth_eval(x, g);
    std::vector<std::vector<double>> S, Y;
    std::vector<double> rho;
    auto dot = [](const std::vector<double>& u, const std::vector<double>& v) {
      double s = 0;
      for (size_t i = 0; i < u.size(); ++i) s += u[i] * v[i];
      return s;
    };
    auto inf_norm = [](const std::vector<double>& u) {
      double s = 0;
      for (double v : u) s = std::max(s, std::abs(v));
      return s;
    };
    for (iters = 0;; ++iters) {
      gap = inf_norm(g);
      if (gap <= tol || iters >= max_iter) break;
      // Two-loop recursion.
      d = g;
      std::vector<double> al(S.size());
      for (int i = int(S.size()) - 1; i >= 0; --i) {
        al[i] = rho[i] * dot(S[i], d);
        for (size_t q = 0; q < N; ++q) d[q] -= al[i] * Y[i][q];
      }
      double gamma = S.empty() ? 1.0 / std::max(1.0, std::sqrt(dot(g, g))) : dot(S.back(), Y.back()) / dot(Y.back(), Y.back());
      for (auto& v : d) v *= gamma;
      for (size_t i = 0; i < S.size(); ++i) {
        double be = rho[i] * dot(Y[i], d);
        for (size_t q = 0; q < N; ++q) d[q] += (al[i] - be) * S[i][q];
      }
      for (auto& v : d) v = -v;
      double gd = dot(g, d);
      if (!(gd < 0)) {  // lost descent: restart from steepest descent
        S.clear(), Y.clear(), rho.clear();
        double sc = 1.0 / std::max(1.0, std::sqrt(dot(g, g)));
        for (size_t q = 0; q < N; ++q) d[q] = -g[q] * sc;
        gd = dot(g, d);
      }
      double step = 1.0, fn = f;
      bool ok = false;
      for (int ls = 0; ls < 50; ++ls, step *= 0.5) {
        for (size_t q = 0; q < N; ++q) xn[q] = x[q] + step * d[q];
        fn = smooth_eval(xn, gn);
        if (fn <= f + 1e-4 * step * gd + 1e-15 * std::abs(f)) {
          ok = true;
          break;
        }
      }
      if (!ok) {  // no progress possible at double precision
        smooth_eval(x, g);
        break;
      }
      std::vector<double> s(N), yv(N);
      for (size_t q = 0; q < N; ++q) s[q] = xn[q] - x[q], yv[q] = gn[q] - g[q];
      double sy = dot(s, yv);
      if (sy > 1e-16 * dot(yv, yv)) {
        if (int(S.size()) == m) S.erase(S.begin()), Y.erase(Y.begin()), rho.erase(rho.begin());
        S.push_back(std::move(s));
        Y.push_back(std::move(yv));
        rho.push_back(1.0 / sy);
      }
      x.swap(xn);
      g.swap(gn);
      f = fn;
    }
    std::copy(x.begin(), x.begin() + V.size(), V.begin());
    std::copy(x.begin() + V.size(), x.end(), b.begin());
    compute_z();
  }
};

void make_design(const CsrMatrix& X, const std::vector<int64_t>& rows, bool standardize, Design& d) {
  CscMatrix built = rows.empty() ? to_csc(X) : to_csc(X, rows);
  make_design(built, X.n_rows, standardize, d);
}

}  // namespace

std::shared_ptr<const Design> make_design(const CsrMatrix& X, const std::vector<int64_t>& rows, bool standardize) {
  auto d = std::make_shared<Design>();
  make_design(X, rows, standardize, *d);
  return d;
}

std::shared_ptr<const Design> make_design(const CscMatrix& X_by_col, const std::vector<int64_t>& rows, bool standardize) {
  auto d = std::make_shared<Design>();
  CscMatrix built = rows.empty() ? CscMatrix(X_by_col) : take_rows(X_by_col, rows);
  make_design(built, X_by_col.rows(), standardize, *d);
  return d;
}

namespace {
// A fit starts from `start` when it belongs to this design and labels, else from warm's weights,
// else from the class priors.
LogRegFit fit_impl(const Design& D, const std::vector<int>& y, int n_classes, const LogRegParams& p,
                   const std::vector<int64_t>& rows, const LogRegFit* warm, const FitState* start, FitState* end);
}  // namespace

LogRegFit fit_logreg(const CsrMatrix& X, const std::vector<int>& y, int n_classes, const LogRegParams& p,
                     const std::vector<int64_t>& rows, const LogRegFit* warm) {
  validate(p);
  CL_ASSERT(static_cast<int64_t>(y.size()) == X.n_rows, "labels and features differ in rows");
  Design D;
  make_design(X, rows, p.standardize, D);
  return fit_impl(D, y, n_classes, p, rows, warm, nullptr, nullptr);
}

LogRegFit fit_logreg(const Design& D, const std::vector<int>& y, int n_classes, const LogRegParams& p,
                     const std::vector<int64_t>& rows, const FitState* start, FitState* end) {
  return fit_impl(D, y, n_classes, p, rows, nullptr, start, end);
}

namespace {

LogRegFit fit_impl(const Design& D, const std::vector<int>& y, int n_classes, const LogRegParams& p,
                   const std::vector<int64_t>& rows, const LogRegFit* warm, const FitState* start, FitState* end) {
  validate(p);
  CL_ASSERT(n_classes >= 2, "need at least two classes");
  CL_ASSERT(static_cast<int64_t>(y.size()) == D.n_source_rows, "labels and features differ in rows");
  CL_ASSERT(D.standardized == p.standardize, "a design built with another standardize setting");
  CL_ASSERT(D.n == (rows.empty() ? D.n_source_rows : static_cast<int64_t>(rows.size())), "a design of other rows");
  CL_ASSERT(D.n > 0, "no training rows");
  Solver s(D, n_classes, n_classes == 2 ? 1 : n_classes);
  s.intercept = p.fit_intercept;
  s.tol = p.tol;
  s.max_iter = p.max_iter;
  double alpha = p.penalty == "none" ? 0.0 : p.alpha;
  double l1r = p.penalty == "l1" ? 1.0 : p.penalty == "l2" ? 0.0 : p.penalty == "none" ? 0.0 : p.l1_ratio;
  s.a1 = alpha * l1r;
  s.a2 = alpha * (1 - l1r);

  s.y.resize(D.n);
  std::vector<double> counts(n_classes, 0.0);
  for (int64_t i = 0; i < D.n; ++i) {
    int yi = y[rows.empty() ? i : rows[i]];
    CL_ASSERT(yi >= 0 && yi < n_classes, "label out of range");
    s.y[i] = yi;
    counts[yi] += 1;
  }
  std::vector<double> cw(n_classes, 1.0);
  if (p.class_weight == "balanced")
    for (int k = 0; k < n_classes; ++k) cw[k] = counts[k] > 0 ? D.n / (n_classes * counts[k]) : 0.0;
  s.c.resize(D.n);
  for (int64_t i = 0; i < D.n; ++i) s.c[i] = cw[s.y[i]] / D.n;

  // The loss and its gradient depend on the design, the labels, their weights and the intercept
  // setting, not on alpha.
  uint64_t key = splitmix64(D.serial ^ splitmix64(static_cast<uint64_t>(n_classes)));
  key = splitmix64(key ^ (p.class_weight == "balanced") ^ (uint64_t{p.fit_intercept} << 1));
  uint64_t labels = 0xcbf29ce484222325ULL;  // FNV-1a over the labels: a multiply per row, not a full mix
  for (int64_t i = 0; i < D.n; ++i) labels = (labels ^ static_cast<uint64_t>(s.y[i])) * 0x100000001b3ULL;
  key = splitmix64(key ^ labels);
  key |= 1;  // never 0 (an empty state)

  const int K = s.K;
  const bool resume = start && start->key == key;
  if (resume) {
    CL_ASSERT(start->V.size() == static_cast<size_t>(K * D.f) && start->G_ref.size() == static_cast<size_t>(K),
              "a FitState of another shape");
    s.V = start->V, s.b = start->b, s.z = start->z, s.p = start->p, s.loss = start->loss;
    s.G_ref = start->G_ref, s.R_ref = start->R_ref;
  } else {
    s.V.assign(K * D.f, 0.0);
    s.b.assign(K, 0.0);
    if (warm && warm->n_rows == K && warm->n_features == D.f) {
      for (int k = 0; k < K; ++k)
        for (int64_t j = 0; j < D.f; ++j) s.V[k * D.f + j] = warm->weights[k * D.f + j] / D.scale[j];
      if (p.fit_intercept) s.b = warm->bias;
    } else if (p.fit_intercept) {
      // Start from the (weighted) class priors: the optimum when no feature is used.
      std::vector<double> q(n_classes, 0.0);
      for (int64_t i = 0; i < D.n; ++i) q[s.y[i]] += s.c[i];
      double tot = std::accumulate(q.begin(), q.end(), 0.0);
      for (auto& v : q) v = std::clamp(v / tot, 1e-6, 1 - 1e-6);
      if (K == 1) {
        s.b[0] = std::log(q[1] / q[0]);
      } else {
        double mean = 0;
        for (int k = 0; k < K; ++k) mean += std::log(q[k]) / K;
        for (int k = 0; k < K; ++k) s.b[k] = std::log(q[k]) - mean;
      }
    }
    s.compute_z();
  }

  LogRegFit out;
  bool use_cd = p.solver == "cd" || (p.solver == "auto" && s.a1 > 0);
  if (use_cd) s.run_cd(out.iterations, out.gap);
  else s.run_lbfgs(out.iterations, out.gap);

  out.n_classes = n_classes;
  out.n_rows = K;
  out.n_features = D.f;
  out.weights.resize(K * D.f);
  for (int k = 0; k < K; ++k)
    for (int64_t j = 0; j < D.f; ++j) out.weights[k * D.f + j] = s.V[k * D.f + j] * D.scale[j];
  out.bias = s.b;
  out.objective = s.loss + s.penalty(s.V);
  out.converged = out.gap <= p.tol;
  if (end && use_cd) {  // the solver is done: its buffers move out
    end->key = key;
    end->V = std::move(s.V), end->b = std::move(s.b), end->z = std::move(s.z), end->p = std::move(s.p);
    end->G_ref = std::move(s.G_ref), end->R_ref = std::move(s.R_ref), end->loss = s.loss;
  } else if (end) {
    *end = FitState{};
  }
  return out;
}

}  // namespace

std::vector<double> decision_function(const CsrMatrix& X, const LogRegFit& m, const std::vector<int64_t>& rows) {
  CL_ASSERT(X.n_cols == m.n_features, "feature count differs from the model");
  const CsrMatrix taken = rows.empty() ? CsrMatrix{} : X.take_rows(rows);
  const CsrMatrix& Xs = rows.empty() ? X : taken;
  const int64_t n = Xs.n_rows, K = m.n_rows;
  using RowMajorXd = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  std::vector<double> z(static_cast<size_t>(n * K));
  Eigen::Map<RowMajorXd> Z(z.data(), n, K);
  const Eigen::Map<const RowMajorXd> W(m.weights.data(), K, m.n_features);  // [K, F]
  Z.noalias() = Xs.view().cast<double>() * W.transpose();
  Z.rowwise() += Eigen::Map<const Eigen::RowVectorXd>(m.bias.data(), K);
  return z;
}

std::vector<double> proba_from_logits(const std::vector<double>& logits, int64_t K, int n_classes) {
  const int C = n_classes;
  const int64_t n = static_cast<int64_t>(logits.size()) / K;
  CL_ASSERT((K == 1 && C == 2) || K == C, "logit rows and classes disagree");
  std::vector<double> out(static_cast<size_t>(n * C));
  for (int64_t i = 0; i < n; ++i) {
    const double* z = logits.data() + i * K;
    if (K == 1) {
      const double p1 = 1.0 / (1.0 + std::exp(-z[0]));
      out[i * C] = 1 - p1;
      out[i * C + 1] = p1;
    } else {
      const double mx = *std::max_element(z, z + K);
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += std::exp(z[k] - mx);
      for (int64_t k = 0; k < K; ++k) out[i * C + k] = std::exp(z[k] - mx) / s;
    }
  }
  return out;
}

std::vector<double> predict_proba(const CsrMatrix& X, const LogRegFit& m, const std::vector<int64_t>& rows) {
  return proba_from_logits(decision_function(X, m, rows), m.n_rows, m.n_classes);
}

std::vector<LogRegFit> fit_alpha_path(const CsrMatrix& X, const std::vector<int>& y, int n_classes,
                                      const LogRegParams& p, const std::vector<double>& alphas,
                                      const std::vector<int64_t>& rows) {
  std::vector<size_t> order(alphas.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return alphas[a] > alphas[b]; });
  std::vector<LogRegFit> fits(alphas.size());
  const LogRegFit* prev = nullptr;
  FitState state;
  validate(p);
  const auto D = make_design(X, rows, p.standardize);
  for (size_t o : order) {
    LogRegParams q = p;
    q.alpha = alphas[o];
    fits[o] = fit_impl(*D, y, n_classes, q, rows, prev, &state, &state);
    prev = &fits[o];
  }
  return fits;
}

double l1_alpha_max(const CsrMatrix& X, const std::vector<int>& y, const std::vector<int64_t>& rows, bool standardize) {
  Design D;
  make_design(X, rows, standardize, D);
  return l1_alpha_max(D, y, rows);
}

double l1_alpha_max(const Design& D, const std::vector<int>& y, const std::vector<int64_t>& rows) {
  CL_ASSERT(D.n > 0, "no rows");
  std::vector<double> r(static_cast<size_t>(D.n));
  double p0 = 0;
  for (int64_t i = 0; i < D.n; ++i) p0 += y[static_cast<size_t>(rows.empty() ? i : rows[static_cast<size_t>(i)])] == 1;
  p0 /= static_cast<double>(D.n);
  for (int64_t i = 0; i < D.n; ++i)
    r[static_cast<size_t>(i)] = (p0 - (y[static_cast<size_t>(rows.empty() ? i : rows[static_cast<size_t>(i)])] == 1)) /
                                static_cast<double>(D.n);
  const Eigen::VectorXd g = D.X.transpose().cast<double>() * Eigen::Map<const Eigen::VectorXd>(r.data(), D.n);
  return g.size() > 0 ? g.cwiseAbs().maxCoeff() : 0.0;
}

std::vector<double> log_alphas(double hi, double lo, int n) {
  CL_ASSERT(n >= 2 && hi > 0 && lo > 0, "bad alpha grid");
  std::vector<double> a(n);
  for (int i = 0; i < n; ++i) a[i] = hi * std::pow(lo / hi, double(i) / (n - 1));
  return a;
}

}  // namespace cl::cbm
