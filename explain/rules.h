// Rankings of latents for a concept, the one home of the rules that `intervene --by`,
// `explain curve --by`, the pipeline's interventions and curves and the viewer's "Add by rule"
// use: by name (latents named after the concept, by CBM importance), by annotation AUROC, by
// decoder direction, by CBM weight, and a seeded random order of the latents the CBM uses (the
// control). The edits a rule picks (top n, one op) and the intervention curves over rules live
// here too, so every caller gets the same latents, labels and seeds.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cbm/logreg.h"
#include "core/csv.h"
#include "core/latent_names.h"
#include "core/sae_weights.h"
#include "core/sparse.h"
#include "explain/concepts.h"
#include "explain/experiment.h"
#include "explain/intervention.h"
#include "explain/plot.h"

namespace cl::explain {

enum class Rule { named, annotation, direction, weight, random };

struct RuleInfo {
  Rule rule;
  const char* name;
  const char* help;
};
// The one name table: parsing, printing, --help and JSON all read it.
inline constexpr std::array<RuleInfo, 5> kRules = {{
    {Rule::named, "named", "latents named after the concept, by CBM importance"},
    {Rule::annotation, "annotation", "latents by AUROC against the concept's 0/1 column"},
    {Rule::direction, "direction", "latents by cosine of their decoder row with the concept vector"},
    {Rule::weight, "weight", "the latents the CBM uses, by importance (no concept)"},
    {Rule::random, "random", "the latents the CBM uses in a seeded random order (the control; no concept)"},
}};
static_assert(static_cast<size_t>(Rule::random) + 1 == kRules.size(), "one kRules entry per Rule");

const char* rule_name(Rule r);
// UsageError naming `what` (e.g. "--by") and the choices for anything else.
Rule parse_rule(const std::string& s, const std::string& what = "rule");
// "named | annotation | direction | weight | random" (for --help and messages).
std::string rule_choices();
// Whether the rule ranks for a concept (named, annotation, direction).
bool rule_needs_concept(Rule r);

// The concept a rule ranks for: `name` for named and for a vocabulary entry (direction with a
// vocabulary), `column` (the 0/1 annotation column) for annotation and for direction without a
// vocabulary; an empty column means the name.
struct ConceptRef {
  std::string name, column;
  const std::string& col() const { return column.empty() ? name : column; }
  const std::string& name_or_col() const { return name.empty() ? column : name; }
};

// What the rules read; each reads only what it needs and says which piece is missing.
struct RuleInputs {
  const CsrMatrix* acts = nullptr;                // [n_images, n_latents] (annotation)
  const std::vector<std::string>* ids = nullptr;  // image ids of acts' rows (annotation: joined to labels_csv)
  const cbm::LogRegFit* model = nullptr;          // the CBM over these latents (named, weight, random)
  const LatentNames* names = nullptr;             // named
  std::string labels_csv, id_col = kDefaultIdCol;     // annotation, direction without vocab: the concept column
  std::string vocab;                              // direction: concept vectors (entry = concept name)
  std::string sae;                                // direction: the SAE whose decoder rows are compared
  std::string embeddings;                         // direction without vocab: the concept's probe direction
};

// The latents of a rule, best first. random: seed picks the order. May be empty (nothing named
// after the concept); InputError/UsageError naming the missing input or a file that disagrees.
std::vector<int64_t> rank_latents(Rule rule, const ConceptRef& c, const RuleInputs& in, uint64_t seed = 0);
// How a ranking is labelled in curves and reports: "weight", "random:SEED", "RULE:CONCEPT".
std::string ranking_label(Rule rule, const ConceptRef& c, const RuleInputs& in, uint64_t seed = 0);

// Edits chosen by a rule: the top_n latents of a concept, each edited with op
// (`conceptlab intervene --concept`, the pipeline's interventions, the viewer's "Add").
struct RuleEdits {
  std::string concept_name;
  std::string by = "named";  // a Rule name
  int top_n = 3;
  std::string op = "zero";   // zero | mean
  std::string concept_col;   // annotation / direction without vocabulary: the 0/1 column (default concept_name)
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(RuleEdits, concept_name, by, top_n, op, concept_col)
void validate(const RuleEdits& r, const std::string& what = "intervention");
// The top_n latents of the rule (fewer when the ranking is shorter, none when nothing is named).
std::vector<int64_t> rule_latents(const RuleEdits& r, const RuleInputs& in);
std::vector<LatentEdit> rule_edits(const RuleEdits& r, const RuleInputs& in);

// Intervention curves: metrics as the first k latents of each rule's ranking are edited.
struct CurveParams {
  std::vector<std::string> by = {"weight", "random"};  // Rule names
  std::string concept_col;   // annotation / direction without vocabulary: the 0/1 column
  std::string concept_name;  // named, direction with a vocabulary: the name or entry (default concept_col)
  int max_k = 20;            // latents edited at most
  int seeds = 5;             // random: orders averaged (order i uses seed + i)
  uint64_t seed = 0;
  std::string op = "zero";   // zero | mean
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(CurveParams, by, concept_col, concept_name, max_k, seeds, seed, op)
void validate(const CurveParams& p, const std::string& what = "curve");

// One curve per rule of p.by (random: one per seed, labelled random:SEED), in p.by order.
std::vector<CurvePoint> intervention_curves(const CsrMatrix& acts, const cbm::LogRegFit& model, const EvalSet& set,
                                            const RuleInputs& in, const CurveParams& p);
// curve.csv: rule, k, auroc, accuracy, balanced_accuracy, worst_group_accuracy.
CsvTable curve_table(const std::vector<CurvePoint>& points);
// The points back from curve_table (InputError naming `source` on a bad cell).
std::vector<CurvePoint> curve_points(const CsvTable& t, const std::string& source);
// Plot series of AUROC against k: one per rule, the random:SEED curves folded into their mean
// with a 95% band.
std::vector<Series> curve_series(const std::vector<CurvePoint>& points);

// Back-compat building blocks (used by rank_latents).
std::vector<int64_t> latents_by_annotation(const CsrMatrix& acts_nl, const ConceptLabels& labels);
std::vector<int64_t> latents_by_direction(const SaeWeights& w, const std::vector<float>& concept_vector);
std::vector<int64_t> latents_named(const LatentNames& names, const std::string& concept_name,
                                   const cbm::LogRegFit& model);
std::vector<int64_t> latents_by_weight(const cbm::LogRegFit& model);

}  // namespace cl::explain
