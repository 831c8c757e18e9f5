// Latent detail: what a latent is (name, statistics, weights, annotation AUROCs, the concepts and
// latents nearest its decoder direction) and where it fires (its top images, loaded as you scroll,
// with patch activations under its heatmap when the overlay is on).
#include <cmath>

#include <fmt/format.h>

#include "viewer/ui.h"

namespace cl::viewer {

void draw_latent(Ui& ui) {
  WorkspaceModel& m = *ui.model;
  if (ui.selected_latent < 0) {
    ImGui::TextDisabled("No latent selected: pick one in Latents, Global or an image.");
    return;
  }
  const int64_t j = ui.selected_latent;
  if (!ui.latent_detail && !ui.latent_detail_pending) ui.select_latent(j, false);  // the default latent's first view
  const LatentRow& r = m.latents[static_cast<size_t>(j)];
  ImGui::Text("Latent %lld", static_cast<long long>(j));
  ImGui::SameLine();
  if (!r.name.empty()) {
    ImGui::TextColored(ImVec4(1.0f, 0.85f, 0.4f, 1.0f), "%s", r.name.c_str());
    ImGui::SameLine();
    ImGui::TextDisabled(std::isnan(r.score) ? "(%s)" : "(%s, score %.3f)", r.origin.c_str(), r.score);
    metric_tooltip("score");
  } else {
    ImGui::TextDisabled("(unnamed)");
  }
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 14);
  const bool enter = ImGui::InputTextWithHint("##rename", "name this latent", ui.rename_buf, sizeof(ui.rename_buf),
                                              ImGuiInputTextFlags_EnterReturnsTrue);
  ImGui::SameLine();
  if (ImGui::Button("Rename") || enter) {
    try {
      m.rename_latent(j, ui.rename_buf);
      ui.table_dirty = true;
      ui.status_line = fmt::format("latent {} named '{}' (saved to {})", j, ui.rename_buf, m.paths.names);
    } catch (const std::exception& e) {
      ui.last_error = e.what();
    }
  }
  help_marker("Saved in the workspace's names file with origin 'user'; the CLI (intervene --by named, explain) reads it.");
  ImGui::SameLine();
  if (ImGui::Button("Add to interventions")) {
    ui.add_edit(j);
    ui.status_line = fmt::format("latent {} added to the intervention (zeroed)", j);
  }

  const float left_w = ImGui::GetContentRegionAvail().x * 0.36f;
  ImGui::BeginChild("##facts", ImVec2(left_w, 0), false);
  if (ImGui::BeginTable("stats", 2, ImGuiTableFlags_Borders | ImGuiTableFlags_SizingFixedFit)) {
    auto row = [](const char* k, const std::string& v) {
      ImGui::TableNextRow();
      ImGui::TableNextColumn();
      ImGui::TextUnformatted(k);
      metric_tooltip(k);
      ImGui::TableNextColumn();
      ImGui::TextUnformatted(v.c_str());
    };
    row("firing rate", fmt::format("{:.4f}", r.firing_rate));
    row("mean", fmt::format("{:.4f}", r.mean));
    row("max", fmt::format("{:.4f}", r.max));
    row("rank", r.rank ? fmt::format("{}", r.rank) : "unused");
    for (size_t k = 0; k < r.class_weight.size(); ++k)
      row("weight", fmt::format("{:+.4f}  ({})", r.class_weight[k], m.classes()[k]));
    ImGui::EndTable();
  }
  if (!ui.latent_detail || ui.latent_detail->latent != j) {
    ImGui::TextDisabled("computing...");
  } else {
    const LatentDetail& d = *ui.latent_detail;
    if (!d.hist.empty()) {
      std::vector<float> h(d.hist.begin(), d.hist.end());
      ImGui::Text("activation histogram (non-zero, log-spaced bins)");
      ImGui::PlotHistogram("##hist", h.data(), static_cast<int>(h.size()), 0, nullptr, 0.0f, FLT_MAX,
                           ImVec2(ImGui::GetContentRegionAvail().x, ImGui::GetFontSize() * 5));
      if (m.index.hist_edges.size() >= 2)
        ImGui::TextDisabled("%.3g .. %.3g", m.index.hist_edges.front(), m.index.hist_edges.back());
    }
    if (!d.annotation_auroc.empty() && ImGui::BeginTable("ann", 2, ImGuiTableFlags_Borders | ImGuiTableFlags_SizingFixedFit)) {
      ImGui::TableSetupColumn("annotation");
      ImGui::TableSetupColumn("AUROC");
      ImGui::TableHeadersRow();
      for (const auto& [name, a] : d.annotation_auroc) {
        ImGui::TableNextRow();
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(name.c_str());
        ImGui::TableNextColumn();
        if (std::isnan(a)) ImGui::TextDisabled("-");
        else if (a >= 0.8) ImGui::TextColored(ImVec4(0.5f, 1.0f, 0.5f, 1.0f), "%.3f", a);
        else ImGui::Text("%.3f", a);
      }
      ImGui::EndTable();
    }
    if (!d.nearest_concepts.empty()) {
      ImGui::Text("nearest concepts (decoder cosine)");
      metric_tooltip("cosine");
      for (const auto& [name, c] : d.nearest_concepts) ImGui::BulletText("%s  %.3f", name.c_str(), c);
    }
    if (!d.nearest_latents.empty()) {
      ImGui::Text("nearest latents (decoder cosine)");
      for (const auto& [l, c] : d.nearest_latents) {
        const std::string label = fmt::format("{}  {:.3f}##nl{}", latent_label(ui, l), c, l);
        if (ImGui::Selectable(label.c_str())) {
          ui.select_latent(l, false);
          break;
        }
      }
    }
  }
  ImGui::EndChild();
  ImGui::SameLine();
  ImGui::BeginChild("##grid", ImVec2(0, 0), true);
  const int64_t n_fire = m.has_index() ? m.index.indptr[static_cast<size_t>(j) + 1] - m.index.indptr[static_cast<size_t>(j)] : 0;
  ImGui::Text("top images (%lld fire)", static_cast<long long>(n_fire));
  if (m.has_patches()) {
    ImGui::SameLine(0, ImGui::GetFontSize() * 2);
    overlay_controls(ui);
  }
  const OverlaySpec spec = ui.overlay_spec(OverlayKind::latent, j);
  const OverlaySpec* overlay = ui.overlay_on ? &spec : nullptr;
  const float tile = ImGui::GetFontSize() * 8.5f;
  const float label_h = ImGui::GetTextLineHeightWithSpacing() * 2;
  const int per_row = std::max(1, int((ImGui::GetContentRegionAvail().x + 8) / (tile + 8)));
  const int64_t shown = std::min(n_fire, ui.grid_limit);
  const int64_t b = m.has_index() ? m.index.indptr[static_cast<size_t>(j)] : 0;
  for (int64_t i = 0; i < shown; ++i) {
    const int64_t row = m.index.rows[static_cast<size_t>(b + i)];
    const float v = m.index.values[static_cast<size_t>(b + i)];
    if (i % per_row) ImGui::SameLine(0, 8);
    ImGui::BeginGroup();
    if (row_tile(ui, row, tile, tile, false, overlay)) ui.select_image(row, true);
    if (ImGui::IsItemHovered()) ImGui::SetTooltip("%s\nactivation %.4f", m.acts.ids[static_cast<size_t>(row)].c_str(), v);
    ImGui::Text("%.3f", v);
    ImGui::PushTextWrapPos(ImGui::GetCursorPos().x + tile);
    const std::string& id = m.acts.ids[static_cast<size_t>(row)];
    ImGui::TextDisabled("%s", id.size() > 18 ? ("..." + id.substr(id.size() - 15)).c_str() : id.c_str());
    ImGui::PopTextWrapPos();
    ImGui::EndGroup();
    (void)label_h;
  }
  // Reaching the bottom loads the next rows of the grid.
  if (shown < n_fire && ImGui::GetScrollY() >= ImGui::GetScrollMaxY() - tile) ui.grid_limit += 4 * per_row;
  ImGui::EndChild();
}

}  // namespace cl::viewer
