// Latent edits and their effect on a linear model's logits, as a sparse delta.
#include "explain/intervention.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace cl::explain {

EditOp parse_edit_op(const std::string& s) {
  if (s == "zero") return EditOp::zero;
  if (s == "scale") return EditOp::scale;
  if (s == "clamp") return EditOp::clamp;
  if (s == "mean") return EditOp::mean;
  throw_usage("edit '{}': expected zero, scale, clamp or mean", s);
}

const char* edit_op_name(EditOp op) {
  switch (op) {
    case EditOp::zero: return "zero";
    case EditOp::scale: return "scale";
    case EditOp::clamp: return "clamp";
    case EditOp::mean: return "mean";
  }
  return "?";
}

std::vector<LatentEdit> zero_edits(const std::vector<int64_t>& latents) {
  std::vector<LatentEdit> out;
  for (int64_t j : latents) out.push_back({j, EditOp::zero, 0.0});
  return out;
}

std::vector<double> latent_means(const CsrMatrix& acts, const std::vector<int64_t>& rows) {
  std::vector<double> sum(static_cast<size_t>(acts.n_cols), 0.0);
  const int64_t n = rows.empty() ? acts.n_rows : static_cast<int64_t>(rows.size());
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = rows.empty() ? i : rows[static_cast<size_t>(i)];
    for (SparseIndex q = acts.indptr[static_cast<size_t>(r)]; q < acts.indptr[static_cast<size_t>(r) + 1]; ++q)
      sum[static_cast<size_t>(acts.indices[static_cast<size_t>(q)])] += acts.values[static_cast<size_t>(q)];
  }
  for (auto& s : sum) s = n > 0 ? s / static_cast<double>(n) : 0.0;
  return sum;
}

namespace {

// Per latent: -1 when not edited, else the index of its edit. One edit per latent.
std::vector<int32_t> edit_lookup(int64_t n_latents, const std::vector<LatentEdit>& edits,
                                 const std::vector<double>& means) {
  std::vector<int32_t> at(static_cast<size_t>(n_latents), -1);
  for (size_t e = 0; e < edits.size(); ++e) {
    const int64_t j = edits[e].latent;
    if (j < 0 || j >= n_latents) throw_usage("edit of latent {}: expected 0..{}", j, n_latents - 1);
    if (at[static_cast<size_t>(j)] >= 0) throw_usage("latent {} is edited twice", j);
    if (edits[e].op == EditOp::mean && static_cast<int64_t>(means.size()) != n_latents)
      throw_usage("a 'mean' edit needs the latents' means");
    at[static_cast<size_t>(j)] = static_cast<int32_t>(e);
  }
  return at;
}

// The constant a latent is set to on every image, for clamp and mean edits.
bool sets_constant(const LatentEdit& e, const std::vector<double>& means, double& c) {
  if (e.op == EditOp::clamp) return c = e.value, true;
  if (e.op == EditOp::mean) return c = means[static_cast<size_t>(e.latent)], true;
  return false;
}

double edited_value(const LatentEdit& e, double a) {
  return e.op == EditOp::zero ? 0.0 : e.op == EditOp::scale ? e.value * a : a;  // constants handled apart
}

}  // namespace

CsrMatrix apply_edits(const CsrMatrix& acts, const std::vector<LatentEdit>& edits, const std::vector<double>& means) {
  const auto at = edit_lookup(acts.n_cols, edits, means);
  std::vector<std::pair<int32_t, float>> constants;  // (latent, value) set on every image
  for (const auto& e : edits) {
    double c;
    if (sets_constant(e, means, c)) constants.emplace_back(static_cast<int32_t>(e.latent), static_cast<float>(c));
  }
  std::sort(constants.begin(), constants.end());
  CsrMatrix out;
  out.n_cols = acts.n_cols;
  std::vector<int32_t> cols;
  std::vector<float> vals;
  for (int64_t r = 0; r < acts.n_rows; ++r) {
    cols.clear();
    vals.clear();
    for (SparseIndex q = acts.indptr[static_cast<size_t>(r)]; q < acts.indptr[static_cast<size_t>(r) + 1]; ++q) {
      const int32_t j = acts.indices[static_cast<size_t>(q)];
      const int32_t e = at[static_cast<size_t>(j)];
      if (e >= 0 && edits[static_cast<size_t>(e)].op != EditOp::zero && edits[static_cast<size_t>(e)].op != EditOp::scale)
        continue;  // constants are added below
      const double v = e < 0 ? acts.values[static_cast<size_t>(q)]
                             : edited_value(edits[static_cast<size_t>(e)], acts.values[static_cast<size_t>(q)]);
      cols.push_back(j);
      vals.push_back(static_cast<float>(v));
    }
    for (auto [j, c] : constants) cols.push_back(j), vals.push_back(c);
    out.append_row(cols.data(), vals.data(), static_cast<int64_t>(cols.size()));  // sorts, drops zeros
  }
  return out;
}

std::vector<double> edited_logits(const CsrMatrix& acts, const cbm::LogRegFit& m, const std::vector<LatentEdit>& edits,
                                  const std::vector<double>& base_logits, const std::vector<int64_t>& rows,
                                  const std::vector<double>& means) {
  CL_ASSERT(acts.n_cols == m.n_features, "activations and model differ in features");
  const int64_t n = rows.empty() ? acts.n_rows : static_cast<int64_t>(rows.size()), K = m.n_rows, F = m.n_features;
  CL_ASSERT(static_cast<int64_t>(base_logits.size()) == n * K, "base logits shape");
  const auto at = edit_lookup(acts.n_cols, edits, means);
  // Every image gets W c for latents set to a constant c; entries present in a row then remove
  // their own W a (and, for zero/scale edits, add W (a' - a)).
  std::vector<double> constant(static_cast<size_t>(K), 0.0);
  for (const auto& e : edits) {
    double c;
    if (sets_constant(e, means, c))
      for (int64_t k = 0; k < K; ++k) constant[static_cast<size_t>(k)] += m.weights[static_cast<size_t>(k * F + e.latent)] * c;
  }
  std::vector<double> out = base_logits;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = rows.empty() ? i : rows[static_cast<size_t>(i)];
    double* z = out.data() + i * K;
    for (int64_t k = 0; k < K; ++k) z[k] += constant[static_cast<size_t>(k)];
    for (SparseIndex q = acts.indptr[static_cast<size_t>(r)]; q < acts.indptr[static_cast<size_t>(r) + 1]; ++q) {
      const int32_t e = at[static_cast<size_t>(acts.indices[static_cast<size_t>(q)])];
      if (e < 0) continue;
      const LatentEdit& ed = edits[static_cast<size_t>(e)];
      const double a = acts.values[static_cast<size_t>(q)];
      double c;
      const double d = sets_constant(ed, means, c) ? -a : edited_value(ed, a) - a;
      for (int64_t k = 0; k < K; ++k) z[k] += m.weights[static_cast<size_t>(k * F + ed.latent)] * d;
    }
  }
  return out;
}

double weight_share(const cbm::LogRegFit& m, const std::vector<int64_t>& latents) {
  double total = 0, share = 0;
  for (double w : m.weights) total += std::abs(w);
  for (int64_t j : latents)
    for (int64_t k = 0; k < m.n_rows; ++k) share += std::abs(m.weights[static_cast<size_t>(k * m.n_features + j)]);
  return total > 0 ? share / total : 0.0;
}

}  // namespace cl::explain
