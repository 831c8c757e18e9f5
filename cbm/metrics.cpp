// Metrics and splitters. Randomness comes from cl::Rng (core/random.h), so splits and bootstrap
// draws are identical across compilers and standard libraries.
#include "cbm/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "core/params.h"
#include "core/random.h"

namespace cl::cbm {

namespace {

// scores and 0/1 labels sorted by score, ascending; false when a score is NaN (the metric is then
// undefined).
bool sort_by_score(const std::vector<double>& scores, const std::vector<int>& labels01, std::vector<double>& s,
                   std::vector<int>& l) {
  CL_ASSERT(scores.size() == labels01.size(), "scores and labels differ in size");
  const size_t n = scores.size();
  for (double v : scores)
    if (std::isnan(v)) return false;
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  s.resize(n), l.resize(n);
  for (size_t i = 0; i < n; ++i) s[i] = scores[order[i]], l[i] = labels01[order[i]] != 0;
  return true;
}

}  // namespace

double auroc(const std::vector<double>& scores, const std::vector<int>& labels01) {
  std::vector<double> s;
  std::vector<int> l;
  if (!sort_by_score(scores, labels01, s, l)) return std::numeric_limits<double>::quiet_NaN();
  return auroc_sorted(s.data(), l.data(), s.size());
}

double average_precision(const std::vector<double>& scores, const std::vector<int>& labels01) {
  std::vector<double> s;
  std::vector<int> l;
  if (!sort_by_score(scores, labels01, s, l)) return std::numeric_limits<double>::quiet_NaN();
  return average_precision_sorted(s.data(), l.data(), s.size());
}

double auroc_multi(const std::vector<int>& y, const std::vector<double>& proba, int C) {
  const size_t n = y.size();
  CL_ASSERT(proba.size() == n * C, "proba shape");
  std::vector<double> s(n);
  std::vector<int> l(n);
  if (C == 2) {
    for (size_t i = 0; i < n; ++i) s[i] = proba[i * 2 + 1], l[i] = y[i] == 1;
    return auroc(s, l);
  }
  double sum = 0;
  int cnt = 0;
  for (int k = 0; k < C; ++k) {
    for (size_t i = 0; i < n; ++i) s[i] = proba[i * C + k], l[i] = y[i] == k;
    double a = auroc(s, l);
    if (!std::isnan(a)) sum += a, ++cnt;
  }
  return cnt ? sum / cnt : std::numeric_limits<double>::quiet_NaN();
}

std::vector<int64_t> confusion_matrix(const std::vector<int>& y, const std::vector<int>& pred, int C) {
  CL_ASSERT(y.size() == pred.size(), "y and pred differ in size");
  std::vector<int64_t> cm(size_t(C) * C, 0);
  for (size_t i = 0; i < y.size(); ++i) cm[size_t(y[i]) * C + pred[i]]++;
  return cm;
}

double accuracy(const std::vector<int64_t>& cm, int C) {
  int64_t tot = 0, ok = 0;
  for (int a = 0; a < C; ++a)
    for (int b = 0; b < C; ++b) tot += cm[a * C + b], ok += a == b ? cm[a * C + b] : 0;
  return tot ? double(ok) / tot : std::numeric_limits<double>::quiet_NaN();
}

double macro_f1(const std::vector<int64_t>& cm, int C) {
  double sum = 0;
  int cnt = 0;
  for (int k = 0; k < C; ++k) {
    int64_t tp = cm[k * C + k], t = 0, pr = 0;
    for (int q = 0; q < C; ++q) t += cm[k * C + q], pr += cm[q * C + k];
    if (t == 0 && pr == 0) continue;
    sum += 2.0 * tp / double(t + pr);
    ++cnt;
  }
  return cnt ? sum / cnt : std::numeric_limits<double>::quiet_NaN();
}

double balanced_accuracy(const std::vector<int64_t>& cm, int C) {
  double sum = 0;
  int cnt = 0;
  for (int k = 0; k < C; ++k) {
    int64_t t = 0;
    for (int q = 0; q < C; ++q) t += cm[k * C + q];
    if (t == 0) continue;
    sum += double(cm[k * C + k]) / t;
    ++cnt;
  }
  return cnt ? sum / cnt : std::numeric_limits<double>::quiet_NaN();
}

std::vector<int> argmax_rows(const std::vector<double>& proba, int C) {
  std::vector<int> out(proba.size() / C);
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = int(std::max_element(proba.begin() + i * C, proba.begin() + (i + 1) * C) - (proba.begin() + i * C));
  return out;
}

Metrics evaluate(const std::vector<int>& y, const std::vector<double>& proba, int C) {
  Metrics m;
  m.confusion = confusion_matrix(y, argmax_rows(proba, C), C);
  m.auroc = auroc_multi(y, proba, C);
  m.accuracy = accuracy(m.confusion, C);
  m.macro_f1 = macro_f1(m.confusion, C);
  m.balanced_accuracy = balanced_accuracy(m.confusion, C);
  return m;
}

namespace {

std::vector<std::vector<int64_t>> by_class(const std::vector<int>& y, int C) {
  std::vector<std::vector<int64_t>> m(C);
  for (size_t i = 0; i < y.size(); ++i) m[y[i]].push_back(int64_t(i));
  return m;
}

}  // namespace

nlohmann::json to_json(const Metrics& m, int C) {
  nlohmann::json cm = nlohmann::json::array();
  for (int a = 0; a < C; ++a) {
    nlohmann::json row = nlohmann::json::array();
    for (int b = 0; b < C; ++b) row.push_back(m.confusion[a * C + b]);
    cm.push_back(row);
  }
  return {{"auroc", json_number(m.auroc)},
          {"macro_f1", json_number(m.macro_f1)},
          {"accuracy", json_number(m.accuracy)},
          {"balanced_accuracy", json_number(m.balanced_accuracy)},
          {"confusion", cm}};
}

static std::string class_name(const std::vector<std::string>& names, int k) {
  return k < int(names.size()) ? "'" + names[k] + "'" : std::to_string(k);
}

Split stratified_split(const std::vector<int>& y, int C, double test_size, uint64_t seed, const std::string& what,
                       const std::vector<std::string>& class_names) {
  if (!(test_size > 0 && test_size < 1)) throw_usage("test size {}: expected a value in (0, 1)", test_size);
  Rng rng(splitmix64(seed));
  Split s;
  auto cls = by_class(y, C);
  for (int k = 0; k < C; ++k) {
    auto& v = cls[k];
    if (v.size() < 2)
      throw_input("{}: class {} has {} member(s); a train/test split needs at least 2", what,
                  class_name(class_names, k), v.size());
    rng.shuffle(v);
    int64_t nt = std::llround(test_size * double(v.size()));
    nt = std::clamp<int64_t>(nt, 1, int64_t(v.size()) - 1);
    s.test.insert(s.test.end(), v.begin(), v.begin() + nt);
    s.train.insert(s.train.end(), v.begin() + nt, v.end());
  }
  std::sort(s.train.begin(), s.train.end());
  std::sort(s.test.begin(), s.test.end());
  return s;
}

Split kshot_split(const std::vector<int>& y, int C, int k, uint64_t seed, const std::string& what,
                  const std::vector<std::string>& class_names) {
  Rng rng(splitmix64(seed ^ (uint64_t(k) << 32)));
  Split s;
  auto cls = by_class(y, C);
  for (int c = 0; c < C; ++c) {
    auto& v = cls[c];
    if (int64_t(v.size()) <= k)
      throw_input("{}: class {} has {} member(s); {}-shot needs at least {}", what, class_name(class_names, c),
                  v.size(), k, k + 1);
    rng.shuffle(v);
    s.train.insert(s.train.end(), v.begin(), v.begin() + k);
    s.test.insert(s.test.end(), v.begin() + k, v.end());
  }
  std::sort(s.train.begin(), s.train.end());
  std::sort(s.test.begin(), s.test.end());
  return s;
}

Summary summarize(const std::vector<double>& v0) {
  Summary s;
  std::vector<double> v;
  for (double x : v0)
    if (!std::isnan(x)) v.push_back(x);
  if (v.empty()) return {NAN, NAN, NAN, NAN};
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / v.size();
  double ss = 0;
  for (double x : v) ss += (x - s.mean) * (x - s.mean);
  s.std = v.size() > 1 ? std::sqrt(ss / (v.size() - 1)) : 0.0;
  std::sort(v.begin(), v.end());
  auto pct = [&](double q) {
    double pos = q * (v.size() - 1);
    size_t i = size_t(pos);
    double fr = pos - i;
    return i + 1 < v.size() ? v[i] * (1 - fr) + v[i + 1] * fr : v[i];
  };
  s.lo = pct(0.025);
  s.hi = pct(0.975);
  return s;
}

BootstrapResult bootstrap_metrics(const std::vector<int>& y, const std::vector<double>& proba, int C, int n_boot,
                                  uint64_t seed) {
  const size_t n = y.size();
  CL_ASSERT(proba.size() == n * C && n > 0, "bootstrap shapes");
  Rng rng(splitmix64(seed));
  std::vector<double> au, f1, acc, bacc;
  std::vector<int> yb(n);
  std::vector<double> pb(n * C);
  for (int b = 0; b < n_boot; ++b) {
    for (size_t i = 0; i < n; ++i) {
      size_t r = size_t(rng.below(n));
      yb[i] = y[r];
      std::copy(proba.begin() + r * C, proba.begin() + (r + 1) * C, pb.begin() + i * C);
    }
    auto m = evaluate(yb, pb, C);
    au.push_back(m.auroc), f1.push_back(m.macro_f1), acc.push_back(m.accuracy), bacc.push_back(m.balanced_accuracy);
  }
  return {summarize(au), summarize(f1), summarize(acc), summarize(bacc)};
}

nlohmann::json to_json(const BootstrapResult& b) {
  return {{"auroc", to_json(b.auroc)},
          {"macro_f1", to_json(b.macro_f1)},
          {"accuracy", to_json(b.accuracy)},
          {"balanced_accuracy", to_json(b.balanced_accuracy)}};
}

nlohmann::json to_json(const Summary& s) {
  return {{"mean", json_number(s.mean)}, {"std", json_number(s.std)}, {"ci95", {json_number(s.lo), json_number(s.hi)}}};
}

}  // namespace cl::cbm
