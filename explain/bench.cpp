// `sae bench` scoring: the split, reconstruction, sparse probing, SCR and TPP of one dictionary,
// stability across seeds, and bench_saes over SAE files and baselines.
#include "explain/bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "cbm/metrics.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/random.h"
#include "core/sae_weights.h"
#include "explain/hungarian.h"
#include "explain/intervention.h"
#include "explain/match.h"

namespace cl::explain {

namespace fs = std::filesystem;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double mean_finite(const std::vector<double>& v) {
  double s = 0;
  int64_t c = 0;
  for (double x : v)
    if (std::isfinite(x)) s += x, ++c;
  return c > 0 ? s / static_cast<double>(c) : kNaN;
}

// Balanced accuracy of logits (class 1 when > 0) against y over the listed rows.
double balanced_accuracy(const std::vector<double>& logits, const std::vector<int>& y, const std::vector<int64_t>& rows) {
  int64_t tp = 0, pos = 0, tn = 0, neg = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const int t = y[static_cast<size_t>(rows[i])];
    const bool p = logits[i] > 0;
    if (t) ++pos, tp += p;
    else ++neg, tn += !p;
  }
  if (pos == 0 || neg == 0) return kNaN;
  return 0.5 * (static_cast<double>(tp) / static_cast<double>(pos) + static_cast<double>(tn) / static_cast<double>(neg));
}

double auroc_of(const std::vector<double>& logits, const std::vector<int>& y, const std::vector<int64_t>& rows) {
  std::vector<int> labels(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) labels[i] = y[static_cast<size_t>(rows[i])];
  return cbm::auroc(logits, labels);
}

std::vector<LatentEdit> zero_edits(const std::vector<int64_t>& latents) {
  std::vector<LatentEdit> e;
  for (int64_t j : latents) e.push_back({j, EditOp::zero, 0});
  return e;
}

// Rows of `rows` per (label, spurious) cell, each cell cut to the smallest cell's size (a seeded
// draw), sorted: a set on which the two columns are independent.
std::vector<int64_t> balanced_cells(const std::vector<int64_t>& rows, const ConceptLabels& label,
                                    const ConceptLabels& spur, uint64_t seed, int64_t* per_cell) {
  std::vector<int64_t> cells[4];
  for (int64_t r : rows) {
    const int l = label[static_cast<size_t>(r)], s = spur[static_cast<size_t>(r)];
    if (l >= 0 && s >= 0) cells[2 * l + s].push_back(r);
  }
  int64_t m = static_cast<int64_t>(cells[0].size());
  for (auto& c : cells) m = std::min<int64_t>(m, static_cast<int64_t>(c.size()));
  *per_cell = m;
  std::vector<int64_t> out;
  Rng rng(splitmix64(seed));
  for (auto& c : cells) {
    rng.shuffle(c);
    out.insert(out.end(), c.begin(), c.begin() + m);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

void validate(const BenchParams& p) {
  if (p.split_col.empty() && !(p.holdout > 0 && p.holdout < 1))
    throw_usage("holdout {}: expected a fraction in (0, 1)", p.holdout);
  if (p.min_positives < 1) throw_usage("min_positives {}: expected >= 1", p.min_positives);
  for (const auto* v : {&p.probe_ks, &p.scr_ns, &p.tpp_ns}) {
    if (v->empty()) throw_usage("probe_ks, scr_ns and tpp_ns must each list at least one size");
    for (int k : *v)
      if (k < 1) throw_usage("latent counts (probe_ks, scr_ns, tpp_ns) must be >= 1, found {}", k);
  }
  if (p.rank_by != "mean_diff" && p.rank_by != "t") throw_usage("rank_by '{}': expected mean_diff or t", p.rank_by);
  // Counts are bounded by what is meaningful, so a typo cannot run for days or allocate terabytes.
  for (const auto* v : {&p.probe_ks, &p.scr_ns, &p.tpp_ns}) {
    if (v->size() > 64) throw_usage("probe_ks, scr_ns and tpp_ns take at most 64 sizes each, found {}", v->size());
    for (int k : *v)
      if (k > 100000) throw_usage("latent counts (probe_ks, scr_ns, tpp_ns) must be <= 100000, found {}", k);
  }
  if (p.random_draws < 1 || p.random_draws > 1000) throw_usage("random_draws {}: expected 1..1000", p.random_draws);
  if (!(p.dense_fraction > 0 && p.dense_fraction < 1)) throw_usage("dense_fraction {}: expected a fraction in (0, 1)", p.dense_fraction);
  if (!(p.stable_cosine > -1 && p.stable_cosine <= 1)) throw_usage("stable_cosine {}: expected a value in (-1, 1]", p.stable_cosine);
  std::set<std::string> seen;
  for (const auto& b : p.baselines) {
    if (b != "pca" && b != "nmf" && b != "kmeans") throw_usage("baseline '{}': expected pca, nmf or kmeans", b);
    if (!seen.insert(b).second) throw_usage("baseline '{}' listed twice", b);
  }
  for (const auto& s : p.spurious) {
    const auto colon = s.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == s.size() || s.find(':', colon + 1) != std::string::npos)
      throw_usage("spurious '{}': expected COLUMN:LABEL, e.g. hair:melanoma", s);
  }
  if (p.baseline_latents < 0) throw_usage("baseline_latents {}: expected >= 0 (0 = the embedding dim)", p.baseline_latents);
  if (!(p.baseline_l0 >= 0) || !std::isfinite(p.baseline_l0)) throw_usage("baseline_l0 {}: expected >= 0 (0 = the first SAE's L0)", p.baseline_l0);
  if (p.baseline_latents > 1000000) throw_usage("baseline_latents {}: expected <= 1000000", p.baseline_latents);
  if (p.baseline_l0 > 1000000) throw_usage("baseline_l0 {}: expected <= 1000000", p.baseline_l0);
  if (p.baseline_fit_rows < 2 || p.baseline_fit_rows > 10000000)
    throw_usage("baseline_fit_rows {}: expected 2..10000000", p.baseline_fit_rows);
  if (p.baseline_iters < 1 || p.baseline_iters > 100000) throw_usage("baseline_iters {}: expected 1..100000", p.baseline_iters);
  if (p.threads < 0) throw_usage("threads {}: expected >= 0", p.threads);
  cbm::validate(p.probe);
}

RowSplit split_rows(int64_t n, double holdout, uint64_t seed, const std::vector<std::string>& split_values,
                    const std::string& what) {
  RowSplit s;
  s.is_test.assign(static_cast<size_t>(n), 0);
  if (!split_values.empty()) {
    CL_ASSERT(static_cast<int64_t>(split_values.size()) == n, "one split value per row");
    for (int64_t i = 0; i < n; ++i) {
      const std::string& v = split_values[static_cast<size_t>(i)];
      if (v == "test") s.test.push_back(i), s.is_test[static_cast<size_t>(i)] = 1;
      else if (v == "train") s.train.push_back(i);
      else throw_input("{}: split value '{}' at row {}, expected 'train' or 'test'", what, v, i);
    }
  } else {
    const int64_t n_test = std::max<int64_t>(1, std::llround(holdout * static_cast<double>(n)));
    std::vector<int64_t> perm(static_cast<size_t>(n));
    std::iota(perm.begin(), perm.end(), 0);
    Rng rng(splitmix64(seed));
    rng.shuffle(perm);
    s.test.assign(perm.begin(), perm.begin() + std::min(n, n_test));
    s.train.assign(perm.begin() + std::min(n, n_test), perm.end());
    std::sort(s.test.begin(), s.test.end());
    std::sort(s.train.begin(), s.train.end());
    for (int64_t i : s.test) s.is_test[static_cast<size_t>(i)] = 1;
  }
  if (s.train.size() < 2 || s.test.size() < 2)
    throw_input("{}: {} rows split into {} training and {} held-out rows, expected at least 2 of each", what, n,
                s.train.size(), s.test.size());
  return s;
}

ReconScores score_reconstruction(const float* x_nd, const std::vector<float>& x_hat, const CsrMatrix& acts, int64_t n,
                                 int64_t d, double dense_fraction) {
  CL_ASSERT(static_cast<int64_t>(x_hat.size()) == n * d && acts.n_rows == n, "one reconstruction and code per row");
  ReconScores r;
  std::vector<double> mean(static_cast<size_t>(d), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) mean[static_cast<size_t>(j)] += x_nd[i * d + j];
  for (auto& m : mean) m /= static_cast<double>(n);
  double err = 0, var = 0, cos_sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    double xx = 0, hh = 0, xh = 0;
    for (int64_t j = 0; j < d; ++j) {
      const double x = x_nd[i * d + j], h = x_hat[static_cast<size_t>(i * d + j)];
      err += (x - h) * (x - h);
      var += (x - mean[static_cast<size_t>(j)]) * (x - mean[static_cast<size_t>(j)]);
      xx += x * x, hh += h * h, xh += x * h;
    }
    cos_sum += xx > 0 && hh > 0 ? xh / std::sqrt(xx * hh) : 0.0;
  }
  r.fvu = var > 0 ? err / var : kNaN;
  r.cosine = n > 0 ? cos_sum / static_cast<double>(n) : kNaN;
  r.l0 = n > 0 ? static_cast<double>(acts.nnz()) / static_cast<double>(n) : 0;
  std::vector<int64_t> fires(static_cast<size_t>(acts.n_cols), 0);
  for (SparseIndex c : acts.indices) ++fires[static_cast<size_t>(c)];
  int64_t dead = 0, dense = 0;
  for (double e = -6; e <= 0.001; e += 0.5) r.freq_edges.push_back(e);
  r.freq_counts.assign(r.freq_edges.size() - 1, 0);
  for (int64_t f : fires) {
    if (f == 0) {
      ++dead;
      continue;
    }
    const double freq = static_cast<double>(f) / static_cast<double>(n);
    dense += freq > dense_fraction;
    const double lg = std::log10(freq);
    size_t b = 0;
    while (b + 2 < r.freq_edges.size() && lg >= r.freq_edges[b + 1]) ++b;
    ++r.freq_counts[b];
  }
  const double L = static_cast<double>(std::max<int64_t>(1, acts.n_cols));
  r.dead_fraction = static_cast<double>(dead) / L;
  r.dense_fraction = static_cast<double>(dense) / L;
  return r;
}

std::vector<int64_t> ClassMeans::top(size_t column, int64_t k, const std::string& rank_by) const {
  const auto& p = pos[column];
  const auto& q = neg[column];
  const bool t = rank_by == "t";
  CL_ASSERT(t || rank_by == "mean_diff", "rank_by is validated");
  std::vector<double> score(p.size());
  const double np = static_cast<double>(std::max<int64_t>(1, n_pos[column]));
  const double nn = static_cast<double>(std::max<int64_t>(1, n_neg[column]));
  for (size_t j = 0; j < p.size(); ++j) {
    const double diff = std::abs(p[j] - q[j]);
    if (!t) {
      score[j] = diff;
      continue;
    }
    const double vp = std::max(0.0, pos2[column][j] - p[j] * p[j]), vn = std::max(0.0, neg2[column][j] - q[j] * q[j]);
    const double se = std::sqrt(vp / np + vn / nn);
    score[j] = se > 0 ? diff / se : 0.0;  // a latent constant on both classes says nothing
  }
  std::vector<int64_t> idx(p.size());
  std::iota(idx.begin(), idx.end(), 0);
  k = std::min<int64_t>(k, static_cast<int64_t>(idx.size()));
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int64_t a, int64_t b) {
    const double da = score[static_cast<size_t>(a)], db = score[static_cast<size_t>(b)];
    return da > db || (da == db && a < b);
  });
  idx.resize(static_cast<size_t>(k));
  return idx;
}

ClassMeans class_means(const CsrMatrix& acts, const std::vector<ConceptLabels>& y, const std::vector<int64_t>& rows) {
  const size_t C = y.size(), L = static_cast<size_t>(acts.n_cols);
  ClassMeans m;
  for (auto* v : {&m.pos, &m.neg, &m.pos2, &m.neg2}) v->assign(C, std::vector<double>(L, 0.0));
  m.n_pos.assign(C, 0);
  m.n_neg.assign(C, 0);
  for (int64_t r : rows)
    for (size_t c = 0; c < C; ++c) {
      const int v = y[c][static_cast<size_t>(r)];
      if (v < 0) continue;
      (v ? m.n_pos[c] : m.n_neg[c]) += 1;
      auto& sum = v ? m.pos[c] : m.neg[c];
      auto& sum2 = v ? m.pos2[c] : m.neg2[c];
      for (const auto [j, a] : acts.row(r)) sum[static_cast<size_t>(j)] += a, sum2[static_cast<size_t>(j)] += double(a) * a;
    }
  for (size_t c = 0; c < C; ++c) {
    const double np = static_cast<double>(std::max<int64_t>(1, m.n_pos[c])), nn = static_cast<double>(std::max<int64_t>(1, m.n_neg[c]));
    for (size_t j = 0; j < L; ++j) {
      m.pos[c][j] /= np, m.pos2[c][j] /= np;
      m.neg[c][j] /= nn, m.neg2[c][j] /= nn;
    }
  }
  return m;
}

CsrMatrix select_latents(const CsrMatrix& acts, const std::vector<int64_t>& latents) {
  std::vector<int32_t> where(static_cast<size_t>(acts.n_cols), -1);
  for (size_t i = 0; i < latents.size(); ++i) where[static_cast<size_t>(latents[i])] = static_cast<int32_t>(i);
  CsrMatrix out;
  out.n_cols = static_cast<int64_t>(latents.size());
  std::vector<int32_t> cols;
  std::vector<float> vals;
  for (int64_t r = 0; r < acts.n_rows; ++r) {
    cols.clear(), vals.clear();
    for (const auto [j, a] : acts.row(r))
      if (where[static_cast<size_t>(j)] >= 0) cols.push_back(where[static_cast<size_t>(j)]), vals.push_back(a);
    out.append_row(cols.data(), vals.data(), static_cast<int64_t>(cols.size()));
  }
  out.n_rows = acts.n_rows;
  return out;
}

void read_bench_labels(BenchData& data, const std::string& csv_path, const std::string& id_col, const BenchParams& p) {
  std::vector<std::string> cols = data.columns;
  for (const auto& pair : p.spurious) {
    const auto colon = pair.find(':');
    for (const auto& c : {pair.substr(0, colon), pair.substr(colon + 1)})
      if (std::find(cols.begin(), cols.end(), c) == cols.end()) cols.push_back(c);
  }
  data.annotations = read_annotations(csv_path, id_col, cols, data.ids);
  if (!p.split_col.empty()) data.split_values = read_id_column(csv_path, id_col, p.split_col, data.ids);
}

std::shared_ptr<const BenchSplit> make_bench_split(const BenchData& data, const RowSplit& split, const BenchParams& p) {
  auto s = std::make_shared<BenchSplit>();
  s->rows = split;
  const Annotations& ann = data.annotations;
  const auto column = [&](const std::string& name) -> const ConceptLabels& {
    const auto it = std::find(ann.names.begin(), ann.names.end(), name);
    if (it == ann.names.end()) throw_usage("column '{}' is not among the annotations read", name);
    return ann.labels[static_cast<size_t>(it - ann.names.begin())];
  };
  const CsrMatrix emb = csr_from_dense(data.x_nd, data.n, data.d);
  for (const auto& name : data.columns) {
    const ConceptLabels& lab = column(name);
    std::vector<int64_t> tr, te;
    std::vector<int> y01(lab.size(), 0);
    int64_t pt = 0, nt = 0, pe = 0, ne = 0;
    for (size_t i = 0; i < lab.size(); ++i) {
      if (lab[i] < 0) continue;
      y01[i] = lab[i];
      if (split.is_test[i]) te.push_back(static_cast<int64_t>(i)), (lab[i] ? pe : ne) += 1;
      else tr.push_back(static_cast<int64_t>(i)), (lab[i] ? pt : nt) += 1;
    }
    std::string note;
    if (std::min({pt, nt, pe, ne}) < p.min_positives)
      note = fmt::format("too few annotated rows to score: {} positive / {} negative training rows, {} / {} held out "
                         "(min_positives {})", pt, nt, pe, ne, p.min_positives);
    s->names.push_back(name);
    s->y.push_back(lab);
    s->train.push_back(std::move(tr));
    s->test.push_back(std::move(te));
    s->y01.push_back(std::move(y01));
    s->notes.push_back(note);
    s->pos_train.push_back(pt);
    s->pos_test.push_back(pe);
  }
  s->dense_probe.assign(s->names.size(), kNaN);
  parallel_for(static_cast<int64_t>(s->names.size()), p.threads, [&](int64_t c) {
    const size_t ci = static_cast<size_t>(c);
    if (s->notes[ci].empty()) s->dense_probe[ci] = heldout_probe_auroc(emb, s->y01[ci], s->train[ci], s->test[ci]);
  });
  for (const auto& pair : p.spurious) {
    const auto colon = pair.find(':');
    BenchSplit::Pair q;
    q.spurious = pair.substr(0, colon);
    q.label = pair.substr(colon + 1);
    q.s = column(q.spurious);
    q.l = column(q.label);
    s->pairs.push_back(std::move(q));
  }
  s->x_test = gather_rows(data.x_nd, data.d, split.test);
  return s;
}

namespace {

// Sparse probing of one column: top-k latents by |class-mean difference| on the training rows,
// an L2 probe on them, its held-out AUROC.
std::vector<ProbeScore> sparse_probes(const CsrMatrix& acts, const ClassMeans& means, size_t c, const BenchSplit& s,
                                      const BenchParams& p) {
  std::vector<ProbeScore> out;
  for (int k : p.probe_ks) {
    ProbeScore ps;
    ps.k = k;
    ps.latents = means.top(c, k, p.rank_by);
    const CsrMatrix X = select_latents(acts, ps.latents);
    const cbm::LogRegFit f = cbm::fit_logreg(X, s.y01[c], 2, p.probe, s.train[c]);
    ps.auroc = auroc_of(cbm::decision_function(X, f, s.test[c]), s.y01[c], s.test[c]);
    out.push_back(std::move(ps));
  }
  return out;
}

// Latents ranked by their association with the spurious column within each label value (mean
// over the two labels of the spurious class-mean difference), so a latent of the label itself is
// not taken for the spurious one in a biased training set.
std::vector<double> rank_spurious_scores(const CsrMatrix& acts, const ConceptLabels& spur, const ConceptLabels& label,
                                         const std::vector<int64_t>& rows) {
  const size_t L = static_cast<size_t>(acts.n_cols);
  std::vector<double> sum[4];
  int64_t cnt[4] = {0, 0, 0, 0};
  for (auto& v : sum) v.assign(L, 0.0);
  for (int64_t r : rows) {
    const int l = label[static_cast<size_t>(r)], s = spur[static_cast<size_t>(r)];
    if (l < 0 || s < 0) continue;
    const int cell = 2 * l + s;
    ++cnt[cell];
    for (const auto [j, a] : acts.row(r)) sum[cell][static_cast<size_t>(j)] += a;
  }
  std::vector<double> score(L, 0.0);
  for (size_t j = 0; j < L; ++j) {
    double tot = 0;
    int used = 0;
    for (int l = 0; l < 2; ++l)
      if (cnt[2 * l] > 0 && cnt[2 * l + 1] > 0)
        tot += sum[2 * l + 1][j] / static_cast<double>(cnt[2 * l + 1]) - sum[2 * l][j] / static_cast<double>(cnt[2 * l]), ++used;
    score[j] = used > 0 ? std::abs(tot / used) : 0.0;
  }
  return score;
}

std::vector<int64_t> rank_spurious(const CsrMatrix& acts, const ConceptLabels& spur, const ConceptLabels& label,
                                   const std::vector<int64_t>& rows) {
  const std::vector<double> score = rank_spurious_scores(acts, spur, label, rows);
  std::vector<int64_t> idx(score.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return score[static_cast<size_t>(a)] > score[static_cast<size_t>(b)]; });
  return idx;
}

ScrCurve score_scr(const CsrMatrix& acts, const BenchSplit::Pair& q, const BenchSplit& s, const BenchParams& p,
                   const std::vector<char>& live) {
  ScrCurve c;
  c.spurious = q.spurious;
  c.label = q.label;
  std::vector<int64_t> biased;
  for (int64_t r : s.rows.train) {
    const int l = q.l[static_cast<size_t>(r)], sp = q.s[static_cast<size_t>(r)];
    if (l >= 0 && sp >= 0 && l == sp) biased.push_back(r);
  }
  int64_t train_cell = 0, eval_cell = 0;
  const std::vector<int64_t> balanced = balanced_cells(s.rows.train, q.l, q.s, p.seed + 11, &train_cell);
  const std::vector<int64_t> eval = balanced_cells(s.rows.test, q.l, q.s, p.seed + 12, &eval_cell);
  c.n_biased_train = static_cast<int64_t>(biased.size());
  c.n_balanced_train = static_cast<int64_t>(balanced.size());
  c.n_eval = static_cast<int64_t>(eval.size());
  if (train_cell < p.min_positives || eval_cell < p.min_positives) {
    c.note = fmt::format("too few rows in the smallest ({} x {}) cell: {} training, {} held out (min_positives {})",
                         q.label, q.spurious, train_cell, eval_cell, p.min_positives);
    return c;
  }
  std::vector<int> y(q.l.size(), 0);
  for (size_t i = 0; i < y.size(); ++i) y[i] = q.l[i] > 0;
  const cbm::LogRegFit fb = cbm::fit_logreg(acts, y, 2, p.probe, biased);
  const cbm::LogRegFit fu = cbm::fit_logreg(acts, y, 2, p.probe, balanced);
  const std::vector<double> base = cbm::decision_function(acts, fb, eval);
  c.auroc_biased = auroc_of(base, y, eval);
  c.auroc_unbiased = auroc_of(cbm::decision_function(acts, fu, eval), y, eval);
  const double gap = c.auroc_unbiased - c.auroc_biased;
  if (!(gap > 1e-3))
    c.note = fmt::format("the bias costs nothing here: A_unbiased {:.4f} - A_biased {:.4f} = {:.4f}; SCR is undefined",
                         c.auroc_unbiased, c.auroc_biased, gap);
  const std::vector<int64_t> ranked = rank_spurious(acts, q.s, q.l, s.rows.train);
  const auto scr_of = [&](const std::vector<int64_t>& zeroed) {
    const double a = auroc_of(edited_logits(acts, fb, zero_edits(zeroed), base, eval), y, eval);
    return std::pair{a, gap > 1e-3 ? (a - c.auroc_biased) / gap : kNaN};
  };
  for (int n : p.scr_ns) {
    const int64_t m = std::min<int64_t>(n, acts.n_cols);
    std::vector<int64_t> top(ranked.begin(), ranked.begin() + m);
    const auto [a, sc] = scr_of(top);
    c.ns.push_back(n);
    c.auroc_ablated.push_back(a);
    c.scr.push_back(sc);
    // The control: n latents drawn among the live ones outside the top n, several draws.
    std::vector<int64_t> pool;
    const std::set<int64_t> in_top(top.begin(), top.end());
    for (int64_t j = 0; j < acts.n_cols; ++j)
      if (live[static_cast<size_t>(j)] && !in_top.count(j)) pool.push_back(j);
    std::vector<double> draws;
    Rng rng(splitmix64(p.seed * 1000003 + static_cast<uint64_t>(n)));
    for (int dr = 0; dr < p.random_draws && !pool.empty(); ++dr) {
      rng.shuffle(pool);
      std::vector<int64_t> pick(pool.begin(), pool.begin() + std::min<int64_t>(m, static_cast<int64_t>(pool.size())));
      draws.push_back(scr_of(pick).second);
    }
    c.random_mean.push_back(mean_finite(draws));
    double lo = kNaN, hi = kNaN;
    for (double v : draws)
      if (std::isfinite(v)) lo = std::isnan(lo) ? v : std::min(lo, v), hi = std::isnan(hi) ? v : std::max(hi, v);
    c.random_lo.push_back(lo);
    c.random_hi.push_back(hi);
    c.latents.push_back(std::move(top));
  }
  return c;
}

// TPP: zeroing the latents of column i should hurt probe i and leave the other probes alone.
TppScores score_tpp(const CsrMatrix& acts, const ClassMeans& means, const BenchSplit& s, const BenchParams& p) {
  TppScores t;
  t.ns = p.tpp_ns;
  std::vector<size_t> cols;
  for (size_t c = 0; c < s.names.size(); ++c)
    if (s.notes[c].empty()) cols.push_back(c);
  t.n_columns = static_cast<int64_t>(cols.size());
  if (cols.size() < 2) {
    t.note = fmt::format("TPP needs two scored columns, found {}", cols.size());
    t.tpp.assign(t.ns.size(), kNaN), t.own_drop.assign(t.ns.size(), kNaN), t.other_drop.assign(t.ns.size(), kNaN);
    return t;
  }
  std::vector<cbm::LogRegFit> fits(cols.size());
  std::vector<std::vector<double>> base(cols.size());
  std::vector<double> acc(cols.size());
  parallel_for(static_cast<int64_t>(cols.size()), p.threads, [&](int64_t q) {
    const size_t c = cols[static_cast<size_t>(q)];
    fits[static_cast<size_t>(q)] = cbm::fit_logreg(acts, s.y01[c], 2, p.probe, s.train[c]);
    base[static_cast<size_t>(q)] = cbm::decision_function(acts, fits[static_cast<size_t>(q)], s.test[c]);
    acc[static_cast<size_t>(q)] = balanced_accuracy(base[static_cast<size_t>(q)], s.y01[c], s.test[c]);
  });
  for (int n : t.ns) {
    std::vector<double> own(cols.size()), other(cols.size()), tpp(cols.size());
    parallel_for(static_cast<int64_t>(cols.size()), p.threads, [&](int64_t qi) {
      const size_t i = static_cast<size_t>(qi);
      const auto edits = zero_edits(means.top(cols[i], n, p.rank_by));
      double others = 0;
      for (size_t j = 0; j < cols.size(); ++j) {
        const size_t c = cols[j];
        const double a = balanced_accuracy(edited_logits(acts, fits[j], edits, base[j], s.test[c]), s.y01[c], s.test[c]);
        const double drop = acc[j] - a;
        if (j == i) own[i] = drop;
        else others += drop;
      }
      other[i] = others / static_cast<double>(cols.size() - 1);
      tpp[i] = own[i] - other[i];
    });
    t.tpp.push_back(mean_finite(tpp));
    t.own_drop.push_back(mean_finite(own));
    t.other_drop.push_back(mean_finite(other));
  }
  return t;
}

}  // namespace

BenchEntry score_dictionary(const Dictionary& dict, const BenchData& data, const BenchSplit& s, const BenchParams& p) {
  const auto t0 = std::chrono::steady_clock::now();
  BenchEntry e;
  e.n_latents = dict.n_latents();
  const CsrMatrix acts = dict.encode(data.x_nd, data.n);  // every row, in file order
  CL_ASSERT(acts.n_rows == data.n && acts.n_cols == e.n_latents, "one code row per input row");
  const CsrMatrix acts_test = acts.take_rows(s.rows.test);
  e.recon = score_reconstruction(s.x_test.data(), dict.decode(acts_test), acts_test,
                                 static_cast<int64_t>(s.rows.test.size()), data.d, p.dense_fraction);
  const ClassMeans means = class_means(acts, s.y, s.rows.train);
  e.columns.resize(s.names.size());
  parallel_for(static_cast<int64_t>(s.names.size()), p.threads, [&](int64_t ci) {
    const size_t c = static_cast<size_t>(ci);
    ColumnBench& cb = e.columns[c];
    cb.name = s.names[c];
    cb.n_pos_train = s.pos_train[c], cb.n_pos_test = s.pos_test[c];
    cb.n_test = static_cast<int64_t>(s.test[c].size());
    cb.note = s.notes[c];
    cb.dense_probe_auroc = s.dense_probe[c];
    if (cb.note.empty()) cb.probes = sparse_probes(acts, means, c, s, p);
  });
  for (size_t k = 0; k < p.probe_ks.size(); ++k) {
    std::vector<double> v;
    for (const auto& cb : e.columns)
      if (cb.note.empty()) v.push_back(cb.probes[k].auroc);
    e.mean_probe_auroc.push_back(mean_finite(v));
  }
  std::vector<char> live(static_cast<size_t>(acts.n_cols), 0);
  for (int64_t r : s.rows.train)
    for (const auto [j, a] : acts.row(r)) live[static_cast<size_t>(j)] = 1;
  for (const auto& q : s.pairs) e.scr.push_back(score_scr(acts, q, s, p, live));
  e.tpp = score_tpp(acts, means, s, p);
  e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return e;
}

MatchedCosines matched_decoder_cosine(const std::vector<float>& a_ld, int64_t la, const std::vector<float>& b_ld,
                                      int64_t lb, int64_t d, double threshold) {
  const std::vector<double> cos = sae::decoder_cosines(a_ld, la, b_ld, lb, d);  // [la, lb]
  std::vector<int64_t> match(static_cast<size_t>(la), -1);
  if (std::max(la, lb) <= kHungarianMaxLatents) {
    match = assign_max_score(cos, la, lb);
  } else {
    // Greedy by descending cosine: each pair taken when both sides are free (a lower bound on the
    // Hungarian total; O(L^2 log L) instead of O(L^3)).
    std::vector<int64_t> order(cos.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&cos](int64_t x, int64_t y) {
      return cos[static_cast<size_t>(x)] > cos[static_cast<size_t>(y)] ||
             (cos[static_cast<size_t>(x)] == cos[static_cast<size_t>(y)] && x < y);
    });
    std::vector<char> used_b(static_cast<size_t>(lb), 0);
    int64_t left = std::min(la, lb);
    for (int64_t o : order) {
      const int64_t i = o / lb, j = o % lb;
      if (match[static_cast<size_t>(i)] >= 0 || used_b[static_cast<size_t>(j)]) continue;
      match[static_cast<size_t>(i)] = j, used_b[static_cast<size_t>(j)] = 1;
      if (--left == 0) break;
    }
  }
  MatchedCosines m;
  int64_t n = 0, above = 0;
  double sum = 0;
  for (int64_t i = 0; i < la; ++i) {
    const int64_t j = match[static_cast<size_t>(i)];
    if (j < 0) continue;
    const double c = cos[static_cast<size_t>(i * lb + j)];
    sum += c, ++n, above += c >= threshold;
  }
  m.mean = n > 0 ? sum / static_cast<double>(n) : 0;
  m.fraction_above = n > 0 ? static_cast<double>(above) / static_cast<double>(n) : 0;
  return m;
}

namespace {

std::string file_name(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// "sae_00.h5: topk n2048 k16": the file (with its folder when another SAE of the run has the same
// file name) and what it is.
std::string sae_label(const std::string& path, const std::vector<std::string>& all) {
  const fs::path fp(path);
  int same_name = 0;
  for (const auto& o : all) same_name += fs::path(o).filename() == fp.filename() && o != path;
  std::string name = fp.filename().string();
  if (same_name > 0 && fp.has_parent_path()) name = (fp.parent_path().filename() / fp.filename()).string();
  const SaeWeights h = read_sae_header(path);
  std::string what = fmt::format("{} n{}", h.arch, h.n_latents);
  if (h.arch != "relu-l1") what += fmt::format(" k{}", h.k);
  return name + ": " + what;
}

StabilityScore stability_of(const std::vector<std::string>& members, const std::vector<const Dictionary*>& dicts,
                            int64_t d, const BenchParams& p) {
  StabilityScore st;
  st.members = members;
  for (const auto& m : members) st.group += (st.group.empty() ? "" : ", ") + file_name(m);
  std::vector<double> cos, frac;
  std::vector<std::vector<float>> rows;
  for (const auto* dict : dicts) rows.push_back(dict->decoder_rows());
  for (size_t a = 0; a < dicts.size(); ++a)
    for (size_t b = a + 1; b < dicts.size(); ++b) {
      const auto m = matched_decoder_cosine(rows[a], dicts[a]->n_latents(), rows[b], dicts[b]->n_latents(), d,
                                            p.stable_cosine);
      cos.push_back(m.mean), frac.push_back(m.fraction_above);
    }
  st.mean_cosine = mean_finite(cos);
  st.fraction_matched = mean_finite(frac);
  // Chance level: two Gaussian dictionaries of the first pair's shape.
  const int64_t la = dicts[0]->n_latents(), lb = dicts[1]->n_latents();
  Rng rng(splitmix64(p.seed + 77));
  std::vector<float> ra(static_cast<size_t>(la * d)), rb(static_cast<size_t>(lb * d));
  for (auto& v : ra) v = static_cast<float>(rng.normal());
  for (auto& v : rb) v = static_cast<float>(rng.normal());
  const auto m = matched_decoder_cosine(ra, la, rb, lb, d, p.stable_cosine);
  st.random_cosine = m.mean, st.random_fraction = m.fraction_above;
  return st;
}

}  // namespace

int64_t kmeans_centroids(const BenchParams& p, int64_t d, int64_t n_fit) {
  if (p.baseline_latents > 0) return std::min(p.baseline_latents, n_fit);
  return std::max<int64_t>(2, std::min(d, n_fit / 10));
}

BenchResult bench_saes(const BenchData& data, const BenchInputs& in, const BenchParams& p, Device device,
                       ProgressSink& progress) {
  validate(p);
  CL_ASSERT(static_cast<int64_t>(data.ids.size()) == data.n, "one id per row");
  if (in.saes.empty() && p.baseline_l0 <= 0)
    throw_usage("sae bench: no SAE given; baselines alone need baseline_l0 (their code budget)");
  for (const auto& g : in.seed_groups)
    if (g.size() < 2) throw_usage("--seeds-of needs at least two SAE files per group, found {}", g.size());
  BenchResult r;
  const RowSplit split = split_rows(data.n, p.holdout, p.seed, data.split_values,
                                    data.split_values.empty() ? data.embeddings_path : p.split_col);
  r.n_train = static_cast<int64_t>(split.train.size());
  r.n_test = static_cast<int64_t>(split.test.size());
  const auto s = make_bench_split(data, split, p);
  r.column_names = s->names;
  r.dense_probe_auroc = s->dense_probe;
  r.mean_dense_probe_auroc = mean_finite(s->dense_probe);

  std::vector<std::string> stab_files;  // every SAE a stability score needs, loaded once
  for (const auto& g : in.seed_groups) stab_files.insert(stab_files.end(), g.begin(), g.end());
  for (const auto& [a, b] : in.compare) stab_files.push_back(a), stab_files.push_back(b);
  const int64_t n_steps = static_cast<int64_t>(in.saes.size() + p.baselines.size()) + (stab_files.empty() ? 0 : 1);
  Progress prog(progress, "sae bench", n_steps, "dictionaries");
  // An SAE file as a dictionary of these embeddings (InputError naming both on another dim).
  const auto load = [&](const std::string& path) {
    auto dict = sae::load_sae_dictionary(path, device);
    if (dict->d_in() != data.d)
      throw_input("{}: dim {}, the SAE {} expects {}", data.embeddings_path, data.d, path, dict->d_in());
    return dict;
  };
  for (const auto& path : in.saes) {
    prog.set_note(file_name(path));
    const auto dict = load(path);
    BenchEntry e = score_dictionary(*dict, data, *s, p);
    e.label = sae_label(path, in.saes), e.kind = "sae", e.path = path;
    r.entries.push_back(std::move(e));
    prog.add(1);
  }
  r.baseline_l0 = p.baseline_l0 > 0 ? p.baseline_l0 : std::max(1.0, std::round(r.entries.front().recon.l0));
  r.baseline_latents = p.baseline_latents > 0 ? p.baseline_latents : data.d;
  if (!p.baselines.empty()) {
    // The baselines see a seeded sample of the training rows only.
    std::vector<int64_t> fit_rows = split.train;
    Rng rng(splitmix64(p.seed + 5));
    rng.shuffle(fit_rows);
    fit_rows.resize(std::min<size_t>(fit_rows.size(), static_cast<size_t>(p.baseline_fit_rows)));
    std::sort(fit_rows.begin(), fit_rows.end());
    const std::vector<float> xf = gather_rows(data.x_nd, data.d, fit_rows);
    const int64_t nf = static_cast<int64_t>(fit_rows.size()), l0 = static_cast<int64_t>(r.baseline_l0);
    for (const auto& b : p.baselines) {
      prog.set_note(b);
      const auto t0 = std::chrono::steady_clock::now();
      std::unique_ptr<Dictionary> dict;
      if (b == "pca") dict = sae::fit_pca(xf.data(), nf, data.d, l0, device);
      else if (b == "nmf")
        dict = sae::fit_nmf(xf.data(), nf, data.d, r.baseline_latents, l0, p.baseline_iters, p.seed, data.embeddings_path, device);
      else dict = sae::fit_kmeans(xf.data(), nf, data.d, kmeans_centroids(p, data.d, nf), p.baseline_iters, p.seed, device);
      const double fit_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      BenchEntry e = score_dictionary(*dict, data, *s, p);
      e.kind = b;
      e.label = b == "kmeans" ? fmt::format("k-means n{}", dict->n_latents())
                              : fmt::format("{} n{} L0 {}", b == "pca" ? "PCA" : "NMF", dict->n_latents(), l0);
      e.seconds += fit_s;
      r.entries.push_back(std::move(e));
      prog.add(1);
    }
  }
  if (!stab_files.empty()) {
    prog.set_note("stability");
    std::vector<std::unique_ptr<Dictionary>> loaded;
    std::vector<std::string> loaded_paths;
    const auto get = [&](const std::string& path) -> const Dictionary* {
      const auto it = std::find(loaded_paths.begin(), loaded_paths.end(), path);
      if (it != loaded_paths.end()) return loaded[static_cast<size_t>(it - loaded_paths.begin())].get();
      loaded.push_back(load(path));
      loaded_paths.push_back(path);
      return loaded.back().get();
    };
    for (const auto& g : in.seed_groups) {
      std::vector<const Dictionary*> ds;
      for (const auto& f : g) ds.push_back(get(f));
      r.stability.push_back(stability_of(g, ds, data.d, p));
    }
    for (const auto& [a, b] : in.compare) r.stability.push_back(stability_of({a, b}, {get(a), get(b)}, data.d, p));
    prog.add(1);
  }
  return r;
}

}  // namespace cl::explain
