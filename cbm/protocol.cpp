// Protocols over the logistic-regression solver: split bookkeeping, parallel fits, summaries.
#include "cbm/protocol.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/params.h"
#include "core/parallel.h"
#include "core/progress.h"

namespace cl::cbm {

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


// The split-summary part of a report: what every protocol measures the same way.
void summarize_splits(const Dataset& d, const std::vector<SplitResult>& rs, ProtocolReport& r) {
  std::vector<double> au, f1, acc, bacc, nnz, it, gap, obj;
  r.nnz_per_row_mean.assign(rs.empty() ? 0 : rs[0].nnz_per_row.size(), 0.0);
  r.all_converged = true;
  for (auto& s : rs) {
    au.push_back(s.metrics.auroc);
    f1.push_back(s.metrics.macro_f1);
    acc.push_back(s.metrics.accuracy);
    bacc.push_back(s.metrics.balanced_accuracy);
    double sum = 0;
    for (size_t k = 0; k < s.nnz_per_row.size(); ++k)
      sum += s.nnz_per_row[k], r.nnz_per_row_mean[k] += double(s.nnz_per_row[k]) / rs.size();
    nnz.push_back(sum);
    it.push_back(s.iterations);
    gap.push_back(s.gap);
    obj.push_back(s.objective);
    r.all_converged = r.all_converged && s.converged;
  }
  r.n_rows = d.X.n_rows;
  r.n_features = d.X.n_cols;
  r.classes = d.classes;
  r.class_counts.assign(d.n_classes(), 0);
  for (int v : d.y) r.class_counts[v]++;
  r.auroc = summarize(au);
  r.macro_f1 = summarize(f1);
  r.accuracy = summarize(acc);
  r.balanced_accuracy = summarize(bacc);
  r.nnz = summarize(nnz);
  r.iterations_mean = summarize(it).mean;
  r.objective_mean = summarize(obj).mean;
  r.max_gap = gap.empty() ? 0.0 : *std::max_element(gap.begin(), gap.end());
}

}  // namespace

void validate(const ProtocolParams& p) {
  validate(p.model);
  if (p.splits < 1) throw_usage("splits {}: expected >= 1", p.splits);
  if (!(p.test_size > 0 && p.test_size < 1)) throw_usage("test_size {}: expected a value in (0, 1)", p.test_size);
  if (p.threads < 0) throw_usage("threads {}: expected >= 0 (0 = all cores)", p.threads);
  if (!p.tune.empty() && p.tune != "alpha") throw_usage("tune '{}': expected alpha (or empty)", p.tune);
  for (double a : p.tune_alphas)
    if (!(a >= 0) || !std::isfinite(a)) throw_usage("tune_alphas: {} is not a finite alpha >= 0", a);
}

void validate(const ProbeParams& p) {
  if (p.protocol != "panderm" && p.protocol != "kshot")
    throw_usage("protocol '{}': expected panderm or kshot", p.protocol);
  for (int k : p.shots)
    if (k < 1) throw_usage("shots {}: expected >= 1", k);
  if (p.seeds < 1) throw_usage("seeds {}: expected >= 1", p.seeds);
  if (p.splits < 1) throw_usage("splits {}: expected >= 1", p.splits);
  if (!(p.test_size > 0 && p.test_size < 1)) throw_usage("test_size {}: expected a value in (0, 1)", p.test_size);
  if (p.max_iter < 1) throw_usage("max_iter {}: expected >= 1", p.max_iter);
  if (p.threads < 0) throw_usage("threads {}: expected >= 0 (0 = all cores)", p.threads);
}

ProtocolResult run_repeated_splits(const Dataset& d, const ProtocolParams& p, ProgressSink& progress) {
  validate(p);
  const int C = d.n_classes();
  const std::string what = d.labels_path + " column '" + d.label_col + "'";
  // Split all up front (cheap) so bad class counts fail before any fitting.
  std::vector<Split> splits;
  for (int s = 0; s < p.splits; ++s) splits.push_back(stratified_split(d.y, C, p.test_size, p.seed + s, what, d.classes));
  ProtocolResult out;
  std::vector<LogRegFit> fits(p.splits);
  out.splits.resize(p.splits);
  auto t0 = std::chrono::steady_clock::now();
  Progress prog(progress, "cbm splits", p.splits, "splits");
  parallel_for(p.splits, p.threads, [&](int64_t s) {
    prog.check_cancel();
    fits[s] = fit_logreg(d.X, d.y, C, p.model, splits[s].train);
    out.splits[s] = evaluate_fit(d, fits[s], splits[s].test);
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

  ProtocolReport& r = out.report;
  summarize_splits(d, out.splits, r);
  r.protocol = "repeated_splits";
  r.n_splits = p.splits;
  r.test_size = p.test_size;
  r.seed = p.seed;
  r.wall_s = wall;
  r.mean_model_nnz = m.nnz();
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
  validate(p);
  check_classes_present(d, train, "train");
  ProtocolResult out;
  LogRegParams mp = p.model;
  ProtocolReport& rep = out.report;
  if (p.tune == "alpha") {
    if (valid.empty()) throw_usage("--tune alpha needs validation rows (split value 'valid')");
    auto fits = fit_alpha_path(d.X, d.y, d.n_classes(), mp, p.tune_alphas, train);
    double best = -1;
    size_t bi = 0;
    for (size_t i = 0; i < fits.size(); ++i) {
      auto r = evaluate_fit(d, fits[i], valid);
      double a = std::isnan(r.metrics.auroc) ? -1 : r.metrics.auroc;
      rep.tuning.push_back({p.tune_alphas[i], a, fits[i].nnz()});
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
  summarize_splits(d, out.splits, rep);
  rep.protocol = "fixed_split";
  rep.n_train = int64_t(train.size());
  rep.n_valid = int64_t(valid.size());
  rep.n_test = int64_t(test.size());
  rep.alpha = mp.alpha;
  rep.test = out.splits[0].metrics;
  if (!valid.empty()) rep.valid = evaluate_fit(d, out.model, valid).metrics, rep.has_valid = true;
  return out;
}

std::vector<AlphaPathPoint> alpha_path(const Dataset& d, const std::vector<int64_t>& train,
                                       const std::vector<int64_t>& test, const LogRegParams& p,
                                       const std::vector<double>& alphas) {
  auto fits = fit_alpha_path(d.X, d.y, d.n_classes(), p, alphas, train);
  std::vector<AlphaPathPoint> out;
  for (size_t i = 0; i < fits.size(); ++i) {
    auto r = evaluate_fit(d, fits[i], test);
    out.push_back({alphas[i], r.metrics, r.nnz_per_row, fits[i].nnz(), r.iterations, r.gap});
  }
  return out;
}

nlohmann::json to_json(const std::vector<AlphaPathPoint>& path, int n_classes) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& pt : path) {
    nlohmann::json row = to_json(pt.metrics, n_classes);
    row.erase("confusion");
    row["alpha"] = pt.alpha;
    row["nnz_per_row"] = pt.nnz_per_row;
    row["nnz"] = pt.nnz;
    row["iterations"] = pt.iterations;
    row["gap"] = pt.gap;
    out.push_back(row);
  }
  return out;
}

nlohmann::json to_json(const ProtocolReport& r, const std::vector<SplitResult>& splits, bool per_split) {
  const int C = static_cast<int>(r.classes.size());
  nlohmann::json j;
  j["n_rows"] = r.n_rows;
  j["n_features"] = r.n_features;
  j["classes"] = r.classes;
  nlohmann::json counts = nlohmann::json::object();
  for (int k = 0; k < C; ++k) counts[r.classes[k]] = r.class_counts[k];
  j["class_counts"] = counts;
  j["auroc"] = to_json(r.auroc);
  j["macro_f1"] = to_json(r.macro_f1);
  j["accuracy"] = to_json(r.accuracy);
  j["balanced_accuracy"] = to_json(r.balanced_accuracy);
  j["nnz"] = to_json(r.nnz);
  j["nnz_per_row_mean"] = r.nnz_per_row_mean;
  j["iterations_mean"] = r.iterations_mean;
  j["objective_mean"] = r.objective_mean;
  j["max_gap"] = r.max_gap;
  j["all_converged"] = r.all_converged;
  j["protocol"] = r.protocol;
  if (r.protocol == "repeated_splits") {
    if (per_split) {
      nlohmann::json au = nlohmann::json::array(), f1 = au, acc = au, bacc = au, nnz = au;
      for (const auto& s : splits) {
        au.push_back(json_number(s.metrics.auroc));
        f1.push_back(json_number(s.metrics.macro_f1));
        acc.push_back(json_number(s.metrics.accuracy));
        bacc.push_back(json_number(s.metrics.balanced_accuracy));
        double sum = 0;
        for (auto v : s.nnz_per_row) sum += double(v);
        nnz.push_back(sum);
      }
      j["per_split"] = {{"auroc", au}, {"macro_f1", f1}, {"accuracy", acc}, {"balanced_accuracy", bacc}, {"nnz", nnz}};
    }
    j["n_splits"] = r.n_splits;
    j["test_size"] = r.test_size;
    j["seed"] = r.seed;
    j["wall_s"] = r.wall_s;
    j["mean_model_nnz"] = r.mean_model_nnz;
  } else {
    j["n_train"] = r.n_train;
    j["n_valid"] = r.n_valid;
    j["n_test"] = r.n_test;
    j["test"] = to_json(r.test, C);
    if (r.has_valid) j["valid"] = to_json(r.valid, C);
    if (!r.tuning.empty()) {
      nlohmann::json t = nlohmann::json::array();
      for (const auto& pt : r.tuning) t.push_back({{"alpha", pt.alpha}, {"valid_auroc", pt.valid_auroc}, {"nnz", pt.nnz}});
      j["tuning"] = t;
    }
  }
  if (!std::isnan(r.alpha)) j["alpha"] = r.alpha;
  if (!std::isnan(r.lambda)) j["lambda"] = r.lambda;
  if (!r.alpha_path.empty()) j["alpha_path"] = to_json(r.alpha_path, C);
  return j;
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
                                 const std::vector<int64_t>& test, ProgressSink& progress) {
  ProtocolParams pp;
  pp.threads = p.threads;
  if (!train.empty()) {
    pp.model = probe_model(p, panderm_alpha(d.X.n_cols, d.n_classes(), int64_t(train.size())));
    auto r = run_fixed_split(d, train, {}, test, pp);
    r.report.lambda = double(d.X.n_cols) * d.n_classes() / 100.0;
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
  auto r = run_repeated_splits(d, pp, progress);
  r.report.lambda = double(d.X.n_cols) * d.n_classes() / 100.0;
  r.report.alpha = pp.model.alpha;
  return r;
}

std::vector<KshotPoint> run_probe_kshot(const Dataset& d, const ProbeParams& p) {
  const int C = d.n_classes();
  const std::string what = d.labels_path + " column '" + d.label_col + "'";
  std::vector<KshotPoint> out;
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
    ProtocolReport r;
    summarize_splits(d, rs, r);
    out.push_back({k, p.seeds, r.accuracy, r.macro_f1, r.auroc, r.balanced_accuracy});
  }
  return out;
}

nlohmann::json to_json(const std::vector<KshotPoint>& shots) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& s : shots)
    out.push_back({{"k", s.k},
                   {"seeds", s.seeds},
                   {"accuracy", to_json(s.accuracy)},
                   {"macro_f1", to_json(s.macro_f1)},
                   {"auroc", to_json(s.auroc)},
                   {"balanced_accuracy", to_json(s.balanced_accuracy)}});
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
