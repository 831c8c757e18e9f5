// Latent edits and their effect on a linear model's logits, as a sparse delta.
#include "explain/intervention.h"
#include "core/json_input.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace cl::explain {

EditOp parse_edit_op(const std::string& s) {
  for (size_t i = 0; i < kEditOpNames.size(); ++i)
    if (s == kEditOpNames[i]) return static_cast<EditOp>(i);
  throw_usage("edit '{}': expected zero, scale, clamp or mean", s);
}

std::vector<LatentEdit> edits_from_json(const nlohmann::json& j, const std::string& source, int64_t n_latents) {
  if (!j.is_object() || !j.contains("edits") || !j["edits"].is_array())
    throw_input("{}: expected {{\"edits\": [{{\"latent\": N, \"op\": \"zero\"}}, ...]}}", source);
  if (j.contains("format") && (!j["format"].is_string() || j["format"].get<std::string>() != "conceptlab.edits"))
    throw_input("{}: format {}, expected \"conceptlab.edits\"", source, j["format"].dump());
  if (j.contains("schema_version") && (!j["schema_version"].is_number_integer() || j["schema_version"].get<int64_t>() != 1))
    throw_input("{}: schema_version {}, this build reads 1", source, j["schema_version"].dump());
  std::vector<LatentEdit> out;
  std::vector<int64_t> seen;
  for (const auto& e : j["edits"]) {
    if (!e.is_object() || !e.contains("latent") || !e["latent"].is_number_integer())
      throw_input("{}: every edit needs an integer 'latent', found {}", source, e.dump());
    if (e["latent"].is_number_unsigned() && e["latent"].get<uint64_t>() > uint64_t(INT64_MAX))
      throw_input("{}: latent {}: expected 0..{}", source, e["latent"].dump(), n_latents - 1);
    LatentEdit ed;
    ed.latent = e["latent"].get<int64_t>();
    if (ed.latent < 0 || (n_latents >= 0 && ed.latent >= n_latents))
      throw_input("{}: latent {}: expected 0..{}", source, ed.latent, n_latents - 1);
    if (std::find(seen.begin(), seen.end(), ed.latent) != seen.end())
      throw_input("{}: latent {} is edited twice", source, ed.latent);
    seen.push_back(ed.latent);
    if (e.contains("op")) {
      if (!e["op"].is_string()) throw_input("{}: latent {}: op {}, expected zero, scale, clamp or mean", source, ed.latent, e["op"].dump());
      const std::string op = e["op"].get<std::string>();
      if (op != "zero" && op != "scale" && op != "clamp" && op != "mean")
        throw_input("{}: latent {}: op '{}', expected zero, scale, clamp or mean", source, ed.latent, op);
      ed.op = parse_edit_op(op);
    }
    const bool needs_value = ed.op == EditOp::scale || ed.op == EditOp::clamp;
    if (e.contains("value")) {
      const auto& v = e["value"];
      // float32 activations: a double beyond FLT_MAX would be infinite where it is applied.
      if (!v.is_number() || !std::isfinite(v.get<double>()) || std::abs(v.get<double>()) > 3.0e38)
        throw_input("{}: latent {}: value {}, expected a finite number", source, ed.latent, v.dump());
      ed.value = v.get<double>();
    } else if (needs_value) {
      throw_input("{}: latent {} ({}) needs a 'value'", source, ed.latent, edit_op_name(ed.op));
    }
    out.push_back(ed);
  }
  return out;
}

nlohmann::json edits_to_json(const std::vector<LatentEdit>& edits) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& e : edits) {
    nlohmann::json j = {{"latent", e.latent}, {"op", edit_op_name(e.op)}};
    if (e.op == EditOp::scale || e.op == EditOp::clamp) j["value"] = e.value;
    list.push_back(j);
  }
  return {{"format", "conceptlab.edits"}, {"schema_version", 1}, {"edits", list}};
}

std::vector<LatentEdit> read_edits(const std::string& path, int64_t n_latents) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw_input("{}: {}", path, std::filesystem::exists(path, ec) ? "is not a file (expected an edit file)" : "no such edit file");
  std::ifstream in(path);
  return edits_from_json(parse_json(in, path, "an edit file"), path, n_latents);
}

const char* edit_op_name(EditOp op) {
  const auto i = static_cast<size_t>(op);
  CL_ASSERT(i < kEditOpNames.size(), "an EditOp without a name");
  return kEditOpNames[i];
}

bool needs_means(const std::vector<LatentEdit>& edits) {
  for (const auto& e : edits)
    if (e.op == EditOp::mean) return true;
  return false;
}

std::vector<double> latent_means(const CsrMatrix& acts, const std::vector<int64_t>& rows) {
  std::vector<double> sum(static_cast<size_t>(acts.n_cols), 0.0);
  const int64_t n = rows.empty() ? acts.n_rows : static_cast<int64_t>(rows.size());
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = rows.empty() ? i : rows[static_cast<size_t>(i)];
    for (const auto [j, v] : acts.row(r)) sum[static_cast<size_t>(j)] += v;
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
