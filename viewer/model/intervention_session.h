// Live interventions over a loaded workspace: the edit set the user builds with checkboxes and
// sliders, re-evaluated on the whole eval set as it changes. The unedited logits and scores are
// computed once; an edit costs a pass over the edited latents' non-zeros plus the metrics, so a
// slider can drive it every frame it moves. evaluate_full() is `conceptlab intervene` (bootstrap
// intervals and the random control) through the same library call, so saved edit files replay
// with the CLI to the same numbers.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "explain/experiment.h"
#include "explain/rules.h"
#include "viewer/model/workspace_model.h"

namespace cl::viewer {

struct LiveResult {
  explain::Scored before, after;
  int64_t n_flipped = 0;
  int64_t n_edits = 0;
  // The selected image's probabilities before and after (empty when it is not an eval row).
  std::vector<double> selected_before, selected_after;
  double seconds = 0;
};

class InterventionSession {
 public:
  // Needs the CBM and labels (InputError naming what is missing otherwise).
  explicit InterventionSession(const WorkspaceModel& m);

  // The eval set scored, re-split by subgroup column ("" = none); re-joins the CSV. Not while a
  // LiveEvaluator runs on this session (build a new session and swap instead).
  void set_subgroup_column(const std::string& column);
  const std::string& subgroup_column() const { return subgroup_col_; }
  const explain::EvalSet& eval_set() const { return set_; }

  // Metrics after the edits, without intervals or control (fast). selected_row: an activations row.
  LiveResult evaluate(const std::vector<explain::LatentEdit>& edits, int64_t selected_row = -1) const;
  // The full experiment, exactly as `conceptlab intervene` computes it.
  explain::InterventionReport evaluate_full(const std::vector<explain::LatentEdit>& edits,
                                            const explain::InterveneParams& p = {},
                                            ProgressSink& progress = silent_progress()) const;
  // Intervention curves on this eval set, exactly as `explain curve` and the pipeline compute them.
  std::vector<explain::CurvePoint> curves(const explain::CurveParams& p) const;

 private:
  const WorkspaceModel& m_;
  std::string subgroup_col_;
  explain::EvalSet set_;
  std::vector<double> base_;       // unedited logits of the eval rows [rows, K]
  explain::Scored before_;
  std::vector<double> p_before_;   // [rows, C]
  std::unordered_map<int64_t, size_t> eval_pos_of_acts_row_;
};

// Runs InterventionSession::evaluate on its own thread, latest request wins: a slider can post
// every frame and the frame loop never waits for the metrics.
class LiveEvaluator {
 public:
  explicit LiveEvaluator(const InterventionSession& s);
  ~LiveEvaluator();
  void post(const std::vector<explain::LatentEdit>& edits, int64_t selected_row);
  // The newest finished result, and the request number it answers.
  std::optional<LiveResult> latest(uint64_t* request_id = nullptr) const;
  bool idle() const;  // the newest request is answered
  std::string error() const;  // why the newest request failed ("" when it did not)

 private:
  void loop();
  const InterventionSession& s_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<std::pair<std::vector<explain::LatentEdit>, int64_t>> pending_;
  uint64_t posted_ = 0, answered_ = 0;
  std::optional<LiveResult> result_;
  bool stop_ = false, busy_ = false;
  std::string error_;
  std::thread thread_;
};

// The edit file `conceptlab intervene --edits FILE` reads: {"edits": [{"latent", "op", "value"}],
// "replay": the full command line for this workspace}.
nlohmann::json edits_to_json(const std::vector<explain::LatentEdit>& edits, const WorkspacePaths& p,
                             const std::string& subgroup_col, const std::string& edits_path);
void save_edits(const std::string& path, const std::vector<explain::LatentEdit>& edits, const WorkspacePaths& p,
                const std::string& subgroup_col);
// explain::read_edits: InputError naming the file for any fault (see explain/intervention.h).
std::vector<explain::LatentEdit> load_edits(const std::string& path, int64_t n_latents = -1);

// The CLI arguments (after `conceptlab intervene`) that replay an edit file on this workspace.
std::vector<std::string> replay_arguments(const WorkspacePaths& p, const std::string& subgroup_col,
                                          const std::string& edits_path);

}  // namespace cl::viewer
