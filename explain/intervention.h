// Interventions on the concept bottleneck: edit latent activations (zero, scale, clamp to a
// value, set to the latent's mean) and re-evaluate a linear model on the edited activations.
// Edited logits are computed as a delta over the edited latents' entries, never a full
// recompute, so an edit costs a pass over the rows' non-zeros.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cbm/logreg.h"
#include "core/sparse.h"

namespace cl::explain {

enum class EditOp {
  zero,   // a' = 0
  scale,  // a' = value * a (zeros stay zero)
  clamp,  // a' = value on every image (a latent forced on, or held at a level)
  mean,   // a' = the latent's mean activation on every image
};
// The one name table, in enum order (parsing, printing, JSON, the viewer's combo).
inline constexpr std::array<const char*, 4> kEditOpNames = {"zero", "scale", "clamp", "mean"};
static_assert(static_cast<size_t>(EditOp::mean) + 1 == kEditOpNames.size(), "one name per EditOp");
EditOp parse_edit_op(const std::string& s);  // "zero" | "scale" | "clamp" | "mean"; UsageError otherwise
const char* edit_op_name(EditOp op);

struct LatentEdit {
  int64_t latent = -1;
  EditOp op = EditOp::zero;
  double value = 0;  // scale factor or clamp value
};

// The edit file (`conceptlab intervene --edits`, the viewer's Save): {"format": "conceptlab.edits"
// (optional), "schema_version": 1 (optional), "edits": [{"latent": N, "op": "zero" | "scale" |
// "clamp" | "mean", "value": V}]}. Every fault is an InputError naming `source` and the edit:
// a latent outside 0..n_latents-1 (n_latents < 0: unchecked) or twice, an unknown op, a scale or
// clamp without a finite value (as float32), another format or a newer schema.
std::vector<LatentEdit> edits_from_json(const nlohmann::json& j, const std::string& source, int64_t n_latents = -1);
// The edit file's JSON for edits ({"format", "schema_version", "edits"}; a value only for scale
// and clamp), which edits_from_json reads back.
nlohmann::json edits_to_json(const std::vector<LatentEdit>& edits);
// The same from a file (InputError when it is missing, a folder or not JSON).
std::vector<LatentEdit> read_edits(const std::string& path, int64_t n_latents = -1);

// Whether any edit needs latent_means() (EditOp::mean).
bool needs_means(const std::vector<LatentEdit>& edits);

// Mean activation of every latent over `rows` (all rows when empty), zeros included.
std::vector<double> latent_means(const CsrMatrix& acts, const std::vector<int64_t>& rows = {});

// The activations with the edits applied (for refits and embedding-space interventions). means
// is latent_means() of the reference rows; needed only for EditOp::mean.
CsrMatrix apply_edits(const CsrMatrix& acts, const std::vector<LatentEdit>& edits,
                      const std::vector<double>& means = {});

// Logits [rows.size(), K] of model m on the edited activations of `rows` (all when empty), from
// the unedited logits base (cbm::decision_function of the same rows) plus the edits' delta.
std::vector<double> edited_logits(const CsrMatrix& acts, const cbm::LogRegFit& m, const std::vector<LatentEdit>& edits,
                                  const std::vector<double>& base_logits, const std::vector<int64_t>& rows = {},
                                  const std::vector<double>& means = {});

// Share of the model's sum |W| held by the given latents (all classes).
double weight_share(const cbm::LogRegFit& m, const std::vector<int64_t>& latents);

}  // namespace cl::explain
