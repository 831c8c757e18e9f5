// Latent statistics over the column-major activations: each latent's non-zeros are sorted once
// (strongest first) and everything else is read off that sorted column.
#include "explain/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "core/parallel.h"

namespace cl::explain {

void validate(const StatsParams& p) {
  if (p.n_bins < 1) throw_usage("n_bins {}: expected >= 1", p.n_bins);
  for (double q : p.quantile_levels)
    if (!(q >= 0 && q <= 1)) throw_usage("quantile level {}: expected a value in [0, 1]", q);
  if (p.threads < 0) throw_usage("threads {}: expected >= 0 (0 = all cores)", p.threads);
}

namespace {

// numpy's default (linear) quantile of sorted ascending values.
float quantile_sorted(const std::vector<float>& v, double q) {
  if (v.empty()) return std::numeric_limits<float>::quiet_NaN();
  const double pos = q * static_cast<double>(v.size() - 1);
  const size_t i = static_cast<size_t>(pos);
  const double fr = pos - static_cast<double>(i);
  return i + 1 < v.size() ? static_cast<float>(v[i] * (1 - fr) + v[i + 1] * fr) : v[i];
}

}  // namespace

LatentIndex build_index(const CsrMatrix& acts, const StatsParams& p, ProgressSink& progress) {
  validate(p);
  Progress prog(progress, "explain stats", acts.n_cols, "latents");
  const CscMatrix csc = to_csc(acts);
  const int64_t L = acts.n_cols, B = p.n_bins, Q = static_cast<int64_t>(p.quantile_levels.size());
  LatentIndex x;
  x.n_rows = acts.n_rows;
  x.n_latents = L;
  x.quantile_levels = p.quantile_levels;
  x.fire_count.assign(static_cast<size_t>(L), 0);
  x.mean.assign(static_cast<size_t>(L), 0.0);
  x.mean_active.assign(static_cast<size_t>(L), std::numeric_limits<double>::quiet_NaN());
  x.max.assign(static_cast<size_t>(L), 0.0f);
  x.quantiles.assign(static_cast<size_t>(L * Q), std::numeric_limits<float>::quiet_NaN());
  x.hist.assign(static_cast<size_t>(L * B), 0);
  x.indptr.assign(csc.outerIndexPtr(), csc.outerIndexPtr() + L + 1);
  x.rows.resize(static_cast<size_t>(csc.nonZeros()));
  x.values.resize(static_cast<size_t>(csc.nonZeros()));

  // Shared log-spaced bins from the smallest to the largest positive activation.
  float lo = std::numeric_limits<float>::infinity(), hi = 0;
  for (float v : acts.values)
    if (v > 0) lo = std::min(lo, v), hi = std::max(hi, v);
  if (!(hi > 0)) lo = 1e-3f, hi = 1.0f;
  if (!(hi > lo)) hi = lo * 2;
  const double llo = std::log(static_cast<double>(lo)), lhi = std::log(static_cast<double>(hi));
  x.hist_edges.resize(static_cast<size_t>(B + 1));
  for (int64_t b = 0; b <= B; ++b) x.hist_edges[static_cast<size_t>(b)] = std::exp(llo + (lhi - llo) * double(b) / double(B));
  x.hist_edges.front() = lo;
  x.hist_edges.back() = hi;

  const SparseIndex* colptr = csc.outerIndexPtr();
  const SparseIndex* rows = csc.innerIndexPtr();
  const float* vals = csc.valuePtr();
  parallel_for(L, p.threads, [&](int64_t j) {
    const SparseIndex a = colptr[j], b = colptr[j + 1];
    std::vector<SparseIndex> order(static_cast<size_t>(b - a));
    std::iota(order.begin(), order.end(), a);
    // Rows ascend within a CSC column, so a stable sort keeps ties in row order.
    std::stable_sort(order.begin(), order.end(), [&](SparseIndex u, SparseIndex v) { return vals[u] > vals[v]; });
    std::vector<float> asc;
    asc.reserve(order.size());
    double sum = 0;
    for (size_t q = 0; q < order.size(); ++q) {
      x.rows[static_cast<size_t>(a) + q] = rows[order[q]];
      x.values[static_cast<size_t>(a) + q] = vals[order[q]];
      sum += vals[order[q]];
    }
    for (size_t q = order.size(); q > 0; --q) asc.push_back(vals[order[q - 1]]);
    const size_t uj = static_cast<size_t>(j);
    x.fire_count[uj] = b - a;
    x.mean[uj] = x.n_rows > 0 ? sum / static_cast<double>(x.n_rows) : 0.0;
    if (b > a) {
      x.mean_active[uj] = sum / static_cast<double>(b - a);
      x.max[uj] = asc.back();
      for (int64_t k = 0; k < Q; ++k) x.quantiles[uj * Q + k] = quantile_sorted(asc, p.quantile_levels[k]);
      for (float v : asc) {
        if (!(v > 0)) continue;
        int64_t bin = static_cast<int64_t>((std::log(static_cast<double>(v)) - llo) / (lhi - llo) * double(B));
        x.hist[uj * B + std::clamp<int64_t>(bin, 0, B - 1)]++;
      }
    }
    prog.add(1);
  });
  return x;
}

std::vector<Hit> top_images(const LatentIndex& idx, int64_t latent, int64_t top) {
  if (latent < 0 || latent >= idx.n_latents) throw_input("latent {}: expected 0..{}", latent, idx.n_latents - 1);
  const int64_t a = idx.indptr[static_cast<size_t>(latent)], b = idx.indptr[static_cast<size_t>(latent) + 1];
  std::vector<Hit> out;
  for (int64_t q = a; q < std::min(b, a + std::max<int64_t>(top, 0)); ++q)
    out.push_back({idx.rows[static_cast<size_t>(q)], idx.values[static_cast<size_t>(q)]});
  return out;
}

std::vector<Hit> top_latents(const CsrMatrix& acts, int64_t row, int64_t top) {
  if (row < 0 || row >= acts.n_rows) throw_input("image row {}: expected 0..{}", row, acts.n_rows - 1);
  std::vector<Hit> out;
  for (const auto [j, v] : acts.row(row)) out.push_back({j, v});
  std::stable_sort(out.begin(), out.end(), [](const Hit& u, const Hit& v) { return u.value > v.value; });
  if (static_cast<int64_t>(out.size()) > top) out.resize(static_cast<size_t>(std::max<int64_t>(top, 0)));
  return out;
}

}  // namespace cl::explain
