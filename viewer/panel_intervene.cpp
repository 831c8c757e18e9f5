// Live interventions: build an edit set (from the browser, by concept name, or the top-N of a
// rule), zero or scale its latents with checkboxes and sliders, and watch the whole eval set
// re-scored as you move them (on the live evaluator's thread), next to the random control of the
// full experiment. The edit set saves as JSON that `conceptlab intervene --edits` replays.
#include <cmath>

#include <fmt/format.h>

#include "core/error.h"
#include "explain/data.h"
#include "explain/rules.h"
#include "viewer/ui.h"

namespace cl::viewer {

namespace {


std::string rule_help() {
  std::string s;
  for (const auto& r : explain::kRules)
    if (r.rule != explain::Rule::random) s += fmt::format("{}{}: {}", s.empty() ? "" : "\n", r.name, r.help);
  return s;
}

void add_by_rule(Ui& ui) {
  explain::RuleEdits r;
  r.concept_name = ui.concept_buf;
  r.by = explain::rule_name(ui.rule_by);
  r.top_n = ui.rule_top_n;
  if (explain::rule_needs_concept(ui.rule_by) && r.concept_name.empty()) {
    ui.last_error = "type a concept name (a latent name, or an annotated column for 'annotation')";
    return;
  }
  const WorkspaceModel* m = ui.model.get();
  ui.jobs.submit("pick latents", [&ui, m, r](ProgressSink&) -> std::function<void()> {
    const auto picked = explain::rule_latents(r, m->rule_inputs());
    if (picked.empty()) throw_input("rule {} found no latent for '{}'", r.by, r.concept_name);
    return [&ui, picked] {
      for (auto j : picked) ui.add_edit(j);
      ui.status_line = fmt::format("added {} latent(s)", picked.size());
    };
  });
}

void change_subgroup(Ui& ui, const std::string& column) {
  const WorkspaceModel* m = ui.model.get();
  ui.jobs.submit("subgroups", [&ui, m, column](ProgressSink&) -> std::function<void()> {
    auto s = std::make_shared<std::unique_ptr<InterventionSession>>(std::make_unique<InterventionSession>(*m));
    (*s)->set_subgroup_column(column);
    return [&ui, s, column] {
      ui.live.reset();  // stop reading the old session before it goes
      ui.session = std::move(*s);
      ui.live = std::make_unique<LiveEvaluator>(*ui.session);
      ui.group_column = column;
      ui.posted_version = ~0ull;
      ui.full_report.reset();
    };
  });
}

void score_row(const char* name, double before, double after, bool higher_better = true) {
  ImGui::TableNextRow();
  ImGui::TableNextColumn();
  ImGui::TextUnformatted(name);
  metric_tooltip(name);
  ImGui::TableNextColumn();
  ImGui::Text("%.4f", before);
  ImGui::TableNextColumn();
  ImGui::Text("%.4f", after);
  ImGui::TableNextColumn();
  const double d = after - before;
  if (std::isnan(d) || std::abs(d) < 5e-5) ImGui::TextDisabled("%+.4f", d);
  else ImGui::TextColored((d > 0) == higher_better ? ImVec4(0.45f, 0.95f, 0.45f, 1) : ImVec4(1, 0.45f, 0.4f, 1), "%+.4f", d);
}

}  // namespace

void run_full_experiment(Ui& ui) {
  if (!ui.session) return;
  const auto edits = ui.active_edits();
  const InterventionSession* s = ui.session.get();
  const uint64_t version = ui.edits_version;
  ui.jobs.submit("intervention experiment", [&ui, s, edits, version](ProgressSink& sink) -> std::function<void()> {
    auto r = std::make_shared<explain::InterventionReport>(s->evaluate_full(edits, {}, sink));
    return [&ui, r, version] { ui.full_report = *r, ui.full_report_version = version; };
  });
}

namespace {

// Left: the edit set (add by rule, per-latent op and value, save/load, the replay command).
void draw_edit_set(Ui& ui, WorkspaceModel& m) {
  ImGui::Text("Edit set");
  help_marker("Latents to edit on every evaluated image: zero (a' = 0), scale (a' = v a), clamp (a' = v), mean (a' = the "
              "latent's mean). Untick to leave one out. Add latents from a latent's page, or here by rule.");
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 9);
  ImGui::InputTextWithHint("##concept", "concept", ui.concept_buf, sizeof(ui.concept_buf));
  ImGui::SameLine();
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 7);
  if (ImGui::BeginCombo("##by", explain::rule_name(ui.rule_by))) {
    for (const auto& r : explain::kRules)
      if (r.rule != explain::Rule::random && ImGui::Selectable(r.name, r.rule == ui.rule_by)) ui.rule_by = r.rule;
    ImGui::EndCombo();
  }
  ImGui::SameLine();
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 5);
  ImGui::InputInt("##topn", &ui.rule_top_n);
  ui.rule_top_n = std::clamp(ui.rule_top_n, 1, 1000);
  ImGui::SameLine();
  if (ImGui::Button("Add")) add_by_rule(ui);
  if (ImGui::IsItemHovered())
    ImGui::SetTooltip("%s", rule_help().c_str());
  ImGui::Separator();
  int remove = -1;
  if (ImGui::BeginTable("edits", 4, ImGuiTableFlags_RowBg | ImGuiTableFlags_SizingStretchProp | ImGuiTableFlags_ScrollY,
                        ImVec2(0, ImGui::GetContentRegionAvail().y - ImGui::GetFrameHeightWithSpacing() * 5))) {
    ImGui::TableSetupColumn("", ImGuiTableColumnFlags_WidthFixed, ImGui::GetFrameHeight());
    ImGui::TableSetupColumn("latent", 0, 1.6f);
    ImGui::TableSetupColumn("edit", 0, 2.2f);
    ImGui::TableSetupColumn("", ImGuiTableColumnFlags_WidthFixed, ImGui::GetFrameHeight());
    for (size_t i = 0; i < ui.edits.size(); ++i) {
      auto& e = ui.edits[i];
      ImGui::PushID(static_cast<int>(i));
      ImGui::TableNextRow();
      ImGui::TableNextColumn();
      if (ImGui::Checkbox("##on", &e.enabled)) ui.edits_changed();
      ImGui::TableNextColumn();
      if (ImGui::Selectable(latent_label(ui, e.edit.latent).c_str())) ui.select_latent(e.edit.latent, true);
      ImGui::TableNextColumn();
      int op = static_cast<int>(e.edit.op);
      ImGui::SetNextItemWidth(ImGui::GetFontSize() * 4.5f);
      if (ImGui::Combo("##op", &op, explain::kEditOpNames.data(), static_cast<int>(explain::kEditOpNames.size()))) {
        e.edit.op = static_cast<explain::EditOp>(op);
        if (e.edit.op == explain::EditOp::scale && e.edit.value == 0) e.edit.value = 0.5;
        ui.edits_changed();
      }
      if (e.edit.op == explain::EditOp::scale || e.edit.op == explain::EditOp::clamp) {
        ImGui::SameLine();
        ImGui::SetNextItemWidth(-1);
        float v = static_cast<float>(e.edit.value);
        const float hi = e.edit.op == explain::EditOp::scale ? 3.0f
                                                             : std::max(1.0f, m.latents[static_cast<size_t>(e.edit.latent)].max);
        if (ImGui::SliderFloat("##v", &v, 0.0f, hi, "%.3f")) e.edit.value = v, ui.edits_changed();
      }
      ImGui::TableNextColumn();
      if (ImGui::SmallButton("x")) remove = static_cast<int>(i);
      ImGui::PopID();
    }
    ImGui::EndTable();
  }
  if (remove >= 0) ui.edits.erase(ui.edits.begin() + remove), ui.edits_changed();
  if (ui.edits.empty()) ImGui::TextDisabled("No edits yet.");
  if (ImGui::Button("Clear")) ui.edits.clear(), ui.edits_changed();
  ImGui::SameLine();
  if (ImGui::Button("Full experiment")) run_full_experiment(ui);
  if (ImGui::IsItemHovered())
    ImGui::SetTooltip("Bootstrap 95%% intervals (1000 draws) and the random-latent control (20 seeds), as "
                      "`conceptlab intervene` computes them; on the worker thread.");
  char* path_buf = ui.edits_path_buf;
  const size_t path_buf_size = sizeof(ui.edits_path_buf);
  if (!path_buf[0] && !ui.edits_path.empty()) std::snprintf(path_buf, path_buf_size, "%s", ui.edits_path.c_str());
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 16);
  ImGui::InputText("##path", path_buf, path_buf_size);
  ImGui::SameLine();
  if (ImGui::Button("Save")) {
    try {
      save_edits(path_buf, ui.active_edits(), m.paths, ui.session->subgroup_column());
      ui.edits_path = path_buf;
      ui.status_line = fmt::format("saved {} edit(s) to {}", ui.active_edits().size(), path_buf);
    } catch (const std::exception& e) {
      ui.last_error = e.what();
    }
  }
  ImGui::SameLine();
  if (ImGui::Button("Load")) {
    try {
      const auto loaded = load_edits(path_buf, m.n_latents());
      ui.edits.clear();
      for (const auto& e : loaded) ui.add_edit(e.latent, e.op, e.value);
      ui.edits_changed();
    } catch (const std::exception& e) {
      ui.last_error = e.what();
    }
  }
  if (!ui.edits_path.empty()) {
    ImGui::TextDisabled("replay: conceptlab intervene ... --edits %s", ui.edits_path.c_str());
    if (ImGui::IsItemHovered()) ImGui::SetTooltip("%s", edits_to_json({}, m.paths, ui.session->subgroup_column(), ui.edits_path)["replay"].get<std::string>().c_str());
  }
}

// Right: the live scores before/after, the full experiment's intervals and control, subgroups
// and the selected image.
void draw_live_results(Ui& ui, WorkspaceModel& m) {
  const auto& cols = m.subgroup_columns();
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 12);
  if (ImGui::BeginCombo("subgroup column", ui.session->subgroup_column().empty() ? "(none)" : ui.session->subgroup_column().c_str())) {
    if (ImGui::Selectable("(none)")) change_subgroup(ui, "");
    for (const auto& c : cols)
      if (ImGui::Selectable(c.c_str(), c == ui.session->subgroup_column())) change_subgroup(ui, c);
    ImGui::EndCombo();
  }
  uint64_t answered = 0;
  const auto live = ui.live ? ui.live->latest(&answered) : std::nullopt;
  if (ui.live && !ui.live->error().empty()) ImGui::TextColored(ImVec4(1, 0.45f, 0.4f, 1), "%s", ui.live->error().c_str());
  if (!live) {
    ImGui::TextDisabled("evaluating...");
    return;
  }
  ImGui::Text("%zu evaluated images, %lld edit(s): %lld prediction(s) flipped", ui.session->eval_set().rows.size(),
              static_cast<long long>(live->n_edits), static_cast<long long>(live->n_flipped));
  metric_tooltip("flipped");
  ImGui::SameLine();
  ImGui::TextDisabled("(%.1f ms)", live->seconds * 1000);
  if (ImGui::BeginTable("scores", 4, ImGuiTableFlags_Borders | ImGuiTableFlags_SizingFixedFit)) {
    ImGui::TableSetupColumn("metric");
    ImGui::TableSetupColumn("before");
    ImGui::TableSetupColumn("after");
    ImGui::TableSetupColumn("change");
    ImGui::TableHeadersRow();
    score_row("AUROC", live->before.metrics.auroc, live->after.metrics.auroc);
    score_row("accuracy", live->before.metrics.accuracy, live->after.metrics.accuracy);
    score_row("balanced accuracy", live->before.metrics.balanced_accuracy, live->after.metrics.balanced_accuracy);
    if (!std::isnan(live->before.worst_group_accuracy))
      score_row("worst-group accuracy", live->before.worst_group_accuracy, live->after.worst_group_accuracy);
    ImGui::EndTable();
  }
  if (ui.full_report && ui.full_report_version == ui.edits_version) {
    const auto& r = *ui.full_report;
    ImGui::Text("after: AUROC %.4f, 95%% [%.4f, %.4f]", r.after.metrics.auroc, r.after.ci.auroc.lo, r.after.ci.auroc.hi);
    if (r.control) {
      ImGui::Text("random control: AUROC %.4f, 95%% [%.4f, %.4f] (%d seeds, %lld latents)", r.control->auroc_summary.mean,
                  r.control->auroc_summary.lo, r.control->auroc_summary.hi, r.control->seeds,
                  static_cast<long long>(r.control->n_latents));
      metric_tooltip("random control");
    }
  } else if (!ui.edits.empty()) {
    ImGui::TextDisabled("Full experiment: intervals and the random control (button on the left).");
  }
  if (!live->after.groups.empty() && ImGui::BeginTable("groups", 4, ImGuiTableFlags_Borders | ImGuiTableFlags_SizingFixedFit)) {
    ImGui::TableSetupColumn("subgroup | class");
    ImGui::TableSetupColumn("images");
    ImGui::TableSetupColumn("accuracy before");
    ImGui::TableSetupColumn("after");
    ImGui::TableHeadersRow();
    for (size_t g = 0; g < live->after.groups.size(); ++g) {
      const auto& a = live->after.groups[g];
      const double b = g < live->before.groups.size() ? live->before.groups[g].accuracy : std::nan("");
      ImGui::TableNextRow();
      ImGui::TableNextColumn();
      ImGui::TextUnformatted(a.group.c_str());
      ImGui::TableNextColumn();
      ImGui::Text("%lld", static_cast<long long>(a.n));
      ImGui::TableNextColumn();
      ImGui::Text("%.4f", b);
      ImGui::TableNextColumn();
      ImGui::Text("%.4f", a.accuracy);
    }
    ImGui::EndTable();
  }
  for (size_t g = 0; g < live->after.subgroup_auroc.size(); ++g) {
    const auto& a = live->after.subgroup_auroc[g];
    ImGui::Text("AUROC within %s (n %lld): %.4f -> %.4f", a.subgroup.c_str(), static_cast<long long>(a.n),
                live->before.subgroup_auroc[g].auroc, a.auroc);
  }
  if (ui.selected_image >= 0) {
    ImGui::Separator();
    ImGui::Text("selected image %s", m.acts.ids[static_cast<size_t>(ui.selected_image)].c_str());
    if (live->selected_before.empty()) ImGui::TextDisabled("not in the evaluated split");
    for (size_t k = 0; k < live->selected_before.size(); ++k)
      ImGui::Text("P(%s): %.4f -> %.4f", m.classes()[k].c_str(), live->selected_before[k], live->selected_after[k]);
  }
}

}  // namespace

void draw_intervene(Ui& ui) {
  WorkspaceModel& m = *ui.model;
  if (!ui.session) {
    ImGui::TextDisabled("Interventions need the concept bottleneck (cbm.h5) and labels; see Problems.");
    return;
  }
  ImGui::BeginChild("##edits", ImVec2(ImGui::GetContentRegionAvail().x * 0.46f, 0), true);
  draw_edit_set(ui, m);
  ImGui::EndChild();
  ImGui::SameLine();
  ImGui::BeginChild("##results", ImVec2(0, 0), true);
  draw_live_results(ui, m);
  ImGui::EndChild();
}

}  // namespace cl::viewer
