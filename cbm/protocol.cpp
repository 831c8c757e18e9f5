// Protocols over the logistic-regression solver: split bookkeeping, parallel fits, summaries.
#include "cbm/protocol.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/progress.h"

namespace cl::cbm {

void parallel_for(int64_t n, int threads, const std::function<void(int64_t)>& fn) {
  int t = threads > 0 ? threads : int(std::max(1u, std::thread::hardware_concurrency()));
  t = int(std::min<int64_t>(t, n));
  if (t <= 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<int64_t> next{0};
  std::exception_ptr err;
  std::mutex mu;
  std::vector<std::thread> pool;
  for (int w = 0; w < t; ++w)
    pool.emplace_back([&] {
      for (;;) {
        int64_t i = next.fetch_add(1);
        if (i >= n) return;
        try {
          fn(i);
        } catch (...) {
          std::lock_guard<std::mutex> lk(mu);
          if (!err) err = std::current_exception();
          next = n;
        }
      }
    });
  for (auto& th : pool) th.join();
  if (err) std::rethrow_exception(err);
}

namespace {

std::vector<int> subset(const std::vector<int>& y, const std::vector<int64_t>& rows) {
  std::vector<int> out(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) out[i] = y[rows[i]];
  return out;
}

SplitResult evaluate_fit(const Dataset& d, const LogRegFit& f, const std::vector<int64_t>& test) {
  SplitResult r;
  r.metrics = evaluate(subset(d.y, test), predict_proba(d.X, f, test), d.n_classes());
  r.nnz_per_row = f.nnz_per_row();
  r.iterations = f.iterations;
  r.gap = f.gap;
  r.objective = f.objective;
  r.converged = f.converged;
  return r;
}

nlohmann::json class_counts(const Dataset& d) {
  std::vector<int64_t> c(d.n_classes(), 0);
  for (int v : d.y) c[v]++;
  nlohmann::json j = nlohmann::json::object();
  for (int k = 0; k < d.n_classes(); ++k) j[d.classes[k]] = c[k];
  return j;
}

nlohmann::json summarize_splits(const Dataset& d, const std::vector<SplitResult>& rs) {
  std::vector<double> au, f1, acc, bacc, nnz, it, gap, obj;
  std::vector<double> per_row(rs.empty() ? 0 : rs[0].nnz_per_row.size(), 0.0);
  bool all_conv = true;
  for (auto& r : rs) {
    au.push_back(r.metrics.auroc);
    f1.push_back(r.metrics.macro_f1);
    acc.push_back(r.metrics.accuracy);
    bacc.push_back(r.metrics.balanced_accuracy);
    double s = 0;
    for (size_t k = 0; k < r.nnz_per_row.size(); ++k) s += r.nnz_per_row[k], per_row[k] += double(r.nnz_per_row[k]) / rs.size();
    nnz.push_back(s);
    it.push_back(r.iterations);
    gap.push_back(r.gap);
    obj.push_back(r.objective);
    all_conv = all_conv && r.converged;
  }
  nlohmann::json j;
  j["n_rows"] = d.X.n_rows;
  j["n_features"] = d.X.n_cols;
  j["classes"] = d.classes;
  j["class_counts"] = class_counts(d);
  j["auroc"] = to_json(summarize(au));
  j["macro_f1"] = to_json(summarize(f1));
  j["accuracy"] = to_json(summarize(acc));
  j["balanced_accuracy"] = to_json(summarize(bacc));
  j["nnz"] = to_json(summarize(nnz));
  j["nnz_per_row_mean"] = per_row;
  j["iterations_mean"] = summarize(it).mean;
  j["objective_mean"] = summarize(obj).mean;
  j["max_gap"] = gap.empty() ? 0.0 : *std::max_element(gap.begin(), gap.end());
  j["all_converged"] = all_conv;
  auto nullable = [](const std::vector<double>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (double x : v) a.push_back(std::isnan(x) ? nlohmann::json(nullptr) : nlohmann::json(x));
    return a;
  };
  j["per_split"] = {{"auroc", nullable(au)}, {"macro_f1", nullable(f1)}, {"accuracy", nullable(acc)},
                    {"balanced_accuracy", nullable(bacc)}, {"nnz", nnz}};
  return j;
}

}  // namespace

ProtocolResult run_repeated_splits(const Dataset& d, const ProtocolParams& p) {
  validate(p.model);
  if (p.splits < 1) throw_usage("splits {}: expected >= 1", p.splits);
  const int C = d.n_classes();
  const std::string what = d.labels_path + " column '" + d.label_col + "'";
  // Split all up front (cheap) so bad class counts fail before any fitting.
  std::vector<Split> splits;
  for (int s = 0; s < p.splits; ++s) splits.push_back(stratified_split(d.y, C, p.test_size, p.seed + s, what, d.classes));
  ProtocolResult out;
  std::vector<LogRegFit> fits(p.splits);
  out.splits.resize(p.splits);
  auto t0 = std::chrono::steady_clock::now();
  Progress prog("cbm splits", p.splits, false, "splits");
  std::mutex mu;
  parallel_for(p.splits, p.threads, [&](int64_t s) {
    fits[s] = fit_logreg(d.X, d.y, C, p.model, splits[s].train);
    out.splits[s] = evaluate_fit(d, fits[s], splits[s].test);
    std::lock_guard<std::mutex> lk(mu);
    prog.add(1);
  });
  prog.finish();
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // The reference's saved model: the mean of the split weight vectors and biases.
  LogRegFit& m = out.model;
  m = fits[0];
  std::fill(m.weights.begin(), m.weights.end(), 0.0);
  std::fill(m.bias.begin(), m.bias.end(), 0.0);
  for (auto& f : fits) {
    for (size_t q = 0; q < m.weights.size(); ++q) m.weights[q] += f.weights[q] / p.splits;
    for (size_t q = 0; q < m.bias.size(); ++q) m.bias[q] += f.bias[q] / p.splits;
  }
  m.iterations = 0;
  m.gap = 0;
  for (auto& f : fits) m.iterations = std::max(m.iterations, f.iterations), m.gap = std::max(m.gap, f.gap);

  out.report = summarize_splits(d, out.splits);
  out.report["protocol"] = "repeated_splits";
  out.report["n_splits"] = p.splits;
  out.report["test_size"] = p.test_size;
  out.report["seed"] = p.seed;
  out.report["wall_s"] = wall;
  out.report["mean_model_nnz"] = m.nnz();
  return out;
}

void rows_from_split_col(const Dataset& d, std::vector<int64_t>& train, std::vector<int64_t>& valid,
                         std::vector<int64_t>& test) {
  CL_ASSERT(d.split.size() == d.y.size(), "dataset loaded without a split column");
  train.clear(), valid.clear(), test.clear();
  size_t other = 0;
  for (size_t i = 0; i < d.split.size(); ++i) {
    const auto& s = d.split[i];
    if (s == "train") train.push_back(int64_t(i));
    else if (s == "valid" || s == "val" || s == "validation") valid.push_back(int64_t(i));
    else if (s == "test") test.push_back(int64_t(i));
    else ++other;
  }
  if (other) spdlog::info("{}: {} labelled row(s) outside train/valid/test ignored", d.labels_path, other);
  if (train.empty() || test.empty())
    throw_input("{}: split column has {} train and {} test rows; need both", d.labels_path, train.size(), test.size());
}

namespace {
void check_classes_present(const Dataset& d, const std::vector<int64_t>& rows, const std::string& part) {
  std::vector<int64_t> c(d.n_classes(), 0);
  for (auto r : rows) c[d.y[r]]++;
  for (int k = 0; k < d.n_classes(); ++k)
    if (c[k] == 0)
      throw_input("{}: class '{}' of column '{}' has no {} rows; the model needs every class in training",
                  d.labels_path, d.classes[k], d.label_col, part);
}
}  // namespace

ProtocolResult run_fixed_split(const Dataset& d, const std::vector<int64_t>& train, const std::vector<int64_t>& valid,
                               const std::vector<int64_t>& test, const ProtocolParams& p) {
  validate(p.model);
  check_classes_present(d, train, "train");
  ProtocolResult out;
  LogRegParams mp = p.model;
  nlohmann::json tuning;
  if (p.tune == "alpha") {
    if (valid.empty()) throw_usage("--tune alpha needs validation rows (split value 'valid')");
    auto fits = fit_alpha_path(d.X, d.y, d.n_classes(), mp, p.tune_alphas, train);
    double best = -1;
    size_t bi = 0;
    tuning = nlohmann::json::array();
    for (size_t i = 0; i < fits.size(); ++i) {
      auto r = evaluate_fit(d, fits[i], valid);
      double a = std::isnan(r.metrics.auroc) ? -1 : r.metrics.auroc;
      tuning.push_back({{"alpha", p.tune_alphas[i]}, {"valid_auroc", a}, {"nnz", fits[i].nnz()}});
      if (a > best || (a == best && p.tune_alphas[i] > p.tune_alphas[bi])) best = a, bi = i;
    }
    mp.alpha = p.tune_alphas[bi];
    out.model = fits[bi];
    spdlog::info("tuned alpha {} (valid AUROC {:.4f})", mp.alpha, best);
  } else if (!p.tune.empty()) {
    throw_usage("--tune '{}': expected alpha", p.tune);
  } else {
    out.model = fit_logreg(d.X, d.y, d.n_classes(), mp, train);
  }
  out.splits.push_back(evaluate_fit(d, out.model, test));
  out.report = summarize_splits(d, out.splits);
  out.report.erase("per_split");
  out.report["protocol"] = "fixed_split";
  out.report["n_train"] = train.size();
  out.report["n_valid"] = valid.size();
  out.report["n_test"] = test.size();
  out.report["alpha"] = mp.alpha;
  out.report["test"] = to_json(out.splits[0].metrics, d.n_classes());
  if (!valid.empty()) out.report["valid"] = to_json(evaluate_fit(d, out.model, valid).metrics, d.n_classes());
  if (!tuning.is_null()) out.report["tuning"] = tuning;
  return out;
}

nlohmann::json alpha_path_report(const Dataset& d, const std::vector<int64_t>& train, const std::vector<int64_t>& test,
                                 const LogRegParams& p, const std::vector<double>& alphas) {
  auto fits = fit_alpha_path(d.X, d.y, d.n_classes(), p, alphas, train);
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < fits.size(); ++i) {
    auto r = evaluate_fit(d, fits[i], test);
    nlohmann::json row = to_json(r.metrics, d.n_classes());
    row.erase("confusion");
    row["alpha"] = alphas[i];
    row["nnz_per_row"] = r.nnz_per_row;
    row["nnz"] = fits[i].nnz();
    row["iterations"] = r.iterations;
    row["gap"] = r.gap;
    out.push_back(row);
  }
  return out;
}

double panderm_alpha(int64_t dim, int n_classes, int64_t n_train) {
  double lambda = double(dim) * n_classes / 100.0;
  return lambda / double(n_train);
}

namespace {
LogRegParams probe_model(const ProbeParams& p, double alpha) {
  LogRegParams m;
  m.penalty = "l2";
  m.alpha = alpha;
  m.solver = "lbfgs";
  m.max_iter = p.max_iter;
  m.standardize = p.standardize;
  m.tol = 1e-6;
  return m;
}
}  // namespace

ProtocolResult run_probe_panderm(const Dataset& d, const ProbeParams& p, const std::vector<int64_t>& train,
                                 const std::vector<int64_t>& test) {
  ProtocolParams pp;
  pp.threads = p.threads;
  if (!train.empty()) {
    pp.model = probe_model(p, panderm_alpha(d.X.n_cols, d.n_classes(), int64_t(train.size())));
    auto r = run_fixed_split(d, train, {}, test, pp);
    r.report["lambda"] = double(d.X.n_cols) * d.n_classes() / 100.0;
    return r;
  }
  int64_t n_test_est = 0;
  {
    auto s = stratified_split(d.y, d.n_classes(), p.test_size, p.seed, d.labels_path, d.classes);
    n_test_est = int64_t(s.test.size());
  }
  pp.model = probe_model(p, panderm_alpha(d.X.n_cols, d.n_classes(), d.X.n_rows - n_test_est));
  pp.splits = p.splits;
  pp.test_size = p.test_size;
  pp.seed = p.seed;
  auto r = run_repeated_splits(d, pp);
  r.report["lambda"] = double(d.X.n_cols) * d.n_classes() / 100.0;
  r.report["alpha"] = pp.model.alpha;
  return r;
}

nlohmann::json run_probe_kshot(const Dataset& d, const ProbeParams& p) {
  const int C = d.n_classes();
  const std::string what = d.labels_path + " column '" + d.label_col + "'";
  nlohmann::json out = nlohmann::json::array();
  for (int k : p.shots) {
    if (k < 1) throw_usage("shots {}: expected >= 1", k);
    std::vector<Split> splits;
    for (int s = 0; s < p.seeds; ++s) splits.push_back(kshot_split(d.y, C, k, p.seed + s, what, d.classes));
    std::vector<SplitResult> rs(p.seeds);
    auto mp = probe_model(p, panderm_alpha(d.X.n_cols, C, int64_t(k) * C));
    parallel_for(p.seeds, p.threads, [&](int64_t s) {
      auto f = fit_logreg(d.X, d.y, C, mp, splits[s].train);
      rs[s] = evaluate_fit(d, f, splits[s].test);
    });
    auto j = summarize_splits(d, rs);
    nlohmann::json row = {{"k", k},
                          {"seeds", p.seeds},
                          {"accuracy", j["accuracy"]},
                          {"macro_f1", j["macro_f1"]},
                          {"auroc", j["auroc"]},
                          {"balanced_accuracy", j["balanced_accuracy"]}};
    out.push_back(row);
  }
  return out;
}

LinearModel to_linear_model(const LogRegFit& f, const Dataset& d, const nlohmann::json& metrics,
                            const nlohmann::json& config) {
  LinearModel m;
  m.classes = d.classes;
  m.features = d.features_kind;
  m.n_rows = f.n_rows;
  m.n_features = f.n_features;
  m.weights.assign(f.weights.begin(), f.weights.end());
  m.bias.assign(f.bias.begin(), f.bias.end());
  m.metrics = metrics;
  m.config = config;
  return m;
}

LogRegFit from_linear_model(const LinearModel& m) {
  LogRegFit f;
  f.n_classes = int(m.classes.size());
  f.n_rows = m.n_rows;
  f.n_features = m.n_features;
  f.weights.assign(m.weights.begin(), m.weights.end());
  f.bias.assign(m.bias.begin(), m.bias.end());
  if (f.n_classes < 2 || (f.n_classes == 2 ? f.n_rows != 1 : f.n_rows != f.n_classes))
    throw_input("model with {} classes and {} weight rows; expected 1 row for 2 classes or one per class",
                f.n_classes, f.n_rows);
  return f;
}

}  // namespace cl::cbm
