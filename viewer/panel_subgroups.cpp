// Linked view: pick a subgroup (a metadata column's value, e.g. ruler = 1), see how the CBM does
// on it against the rest, the latents that fire more on it, and their weights; one click queues
// them for zeroing in the intervention panel.
#include <set>

#include <fmt/format.h>

#include "viewer/ui.h"

namespace cl::viewer {

void draw_subgroups(Ui& ui) {
  WorkspaceModel& m = *ui.model;
  if (!m.has_labels()) {
    ImGui::TextDisabled("Needs labels and the concept bottleneck; see Problems.");
    return;
  }
  const auto& cols = m.subgroup_columns();
  bool changed = false;
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 12);
  if (ImGui::BeginCombo("column", ui.group_column.empty() ? "(choose)" : ui.group_column.c_str())) {
    for (const auto& c : cols)
      if (ImGui::Selectable(c.c_str(), c == ui.group_column)) ui.group_column = c, ui.group_value.clear(), changed = true;
    ImGui::EndCombo();
  }
  if (!ui.group_column.empty() && m.meta.has_col(ui.group_column)) {
    std::set<std::string> values;
    const size_t c = m.meta.col(ui.group_column);
    for (const auto& row : m.meta.rows) values.insert(row[c]);
    if (ui.group_value.empty() && !values.empty()) ui.group_value = *values.rbegin(), changed = true;  // "1" for 0/1 columns
    ImGui::SameLine();
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8);
    if (ImGui::BeginCombo("value", ui.group_value.c_str())) {
      for (const auto& v : values)
        if (ImGui::Selectable(v.empty() ? "(empty)" : v.c_str(), v == ui.group_value)) ui.group_value = v, changed = true;
      ImGui::EndCombo();
    }
  }
  if (changed || (!ui.group && !ui.group_column.empty() && !ui.group_value.empty()) ||
      (ui.group && (ui.group->column != ui.group_column || ui.group->value != ui.group_value))) {
    const WorkspaceModel* mp = ui.model.get();
    const std::string col = ui.group_column, val = ui.group_value;
    ui.group = GroupView{col, val, 0, 0, 0, 0, {}};  // placeholder until the worker answers
    ui.jobs.submit("subgroup", [&ui, mp, col, val](ProgressSink&) -> std::function<void()> {
      auto g = std::make_shared<GroupView>(group_view(*mp, col, val, 25));
      return [&ui, g] {
        if (ui.group_column == g->column && ui.group_value == g->value) ui.group = *g;
      };
    });
  }
  if (!ui.group || ui.group->n_in + ui.group->n_out == 0) {
    ImGui::TextDisabled(ui.group_column.empty() ? "Choose a column (e.g. an artifact) and a value." : "computing...");
    return;
  }
  const GroupView& g = *ui.group;
  ImGui::Text("%s = %s: %lld evaluated images; CBM accuracy %.3f inside vs %.3f on the other %lld", g.column.c_str(),
              g.value.c_str(), static_cast<long long>(g.n_in), g.accuracy_in, g.accuracy_out, static_cast<long long>(g.n_out));
  metric_tooltip("accuracy");
  ImGui::TextDisabled("Latents that fire more inside the group, and the weight the classifier gives them:");
  if (ImGui::Button("Zero those the CBM uses")) {
    int n = 0;
    for (const auto& l : g.latents)
      if (l.weight != 0) ui.add_edit(l.latent), ++n;
    ui.status_line = fmt::format("{} latent(s) of {} = {} added to the intervention", n, g.column, g.value);
    ui.go(Panel::intervene);
  }
  if (ImGui::BeginTable("glat", 6, ImGuiTableFlags_RowBg | ImGuiTableFlags_Borders | ImGuiTableFlags_SizingStretchProp)) {
    ImGui::TableSetupColumn("latent", 0, 2.0f);
    ImGui::TableSetupColumn("mean inside");
    ImGui::TableSetupColumn("mean outside");
    ImGui::TableSetupColumn("lift");
    ImGui::TableSetupColumn("weight");
    ImGui::TableSetupColumn("", ImGuiTableColumnFlags_WidthFixed, ImGui::GetFontSize() * 3);
    ImGui::TableNextRow(ImGuiTableRowFlags_Headers);
    for (int c = 0; c < 6; ++c) {
      ImGui::TableSetColumnIndex(c);
      ImGui::TableHeader(ImGui::TableGetColumnName(c));
      metric_tooltip(c == 3 ? "lift" : c == 4 ? "weight" : "");
    }
    for (const auto& l : g.latents) {
      ImGui::PushID(static_cast<int>(l.latent));
      ImGui::TableNextRow();
      ImGui::TableNextColumn();
      if (ImGui::Selectable(latent_label(ui, l.latent).c_str())) ui.select_latent(l.latent, true);
      ImGui::TableNextColumn();
      ImGui::Text("%.4f", l.mean_in);
      ImGui::TableNextColumn();
      ImGui::Text("%.4f", l.mean_out);
      ImGui::TableNextColumn();
      ImGui::Text("%.4f", l.lift);
      ImGui::TableNextColumn();
      if (l.weight != 0) ImGui::TextColored(l.weight > 0 ? ImVec4(0.5f, 0.7f, 1, 1) : ImVec4(1, 0.5f, 0.45f, 1), "%+.4f", l.weight);
      else ImGui::TextDisabled("0");
      ImGui::TableNextColumn();
      if (ImGui::SmallButton("zero")) ui.add_edit(l.latent), ui.status_line = fmt::format("latent {} added", l.latent);
      ImGui::PopID();
    }
    ImGui::EndTable();
  }
}

}  // namespace cl::viewer
