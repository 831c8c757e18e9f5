// Latent browser: every latent in a sortable, filterable table (virtualised with ImGuiListClipper
// so 16k+ rows scroll smoothly), text search over names, arrow keys to move, Enter to open.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "viewer/ui.h"

namespace cl::viewer {

namespace {

LatentColumn column_of(int user_id) { return static_cast<LatentColumn>(user_id); }

// A compact grid of the selected latent's strongest images, sized so `n` of them fit (under the
// latent's heatmap when the overlay is on).
void draw_top_images_preview(Ui& ui, int64_t n) {
  const WorkspaceModel& m = *ui.model;
  if (ui.selected_latent < 0 || !m.has_index()) {
    ImGui::TextDisabled("Select a latent to see the images it fires on.");
    return;
  }
  const int64_t j = ui.selected_latent;
  const int64_t b = m.index.indptr[static_cast<size_t>(j)], e = m.index.indptr[static_cast<size_t>(j) + 1];
  ImGui::TextUnformatted(latent_label(ui, j).c_str());
  ImGui::SameLine();
  ImGui::TextDisabled("fires on %lld images", static_cast<long long>(e - b));
  if (m.has_patches()) {
    ImGui::SameLine();
    ImGui::Checkbox("Overlay", &ui.overlay_on);
  }
  const OverlaySpec spec = ui.overlay_spec(OverlayKind::latent, j);
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const float gap = 4;
  // The largest tile at which all n fit the pane (no smaller than 32 px: then it scrolls).
  float tile = 160;
  auto columns = [&](float t) { return std::max(1, int((avail.x + gap) / (t + gap))); };
  while (tile > 32 && std::ceil(float(n) / float(columns(tile))) * (tile + gap) > avail.y) tile -= 2;
  const int per_row = columns(tile);
  const int64_t shown = std::min<int64_t>(n, e - b);
  for (int64_t i = 0; i < shown; ++i) {
    const int64_t row = m.index.rows[static_cast<size_t>(b + i)];
    if (i % per_row) ImGui::SameLine(0, gap);
    if (row_tile(ui, row, tile, tile, false, ui.overlay_on ? &spec : nullptr)) ui.select_image(row, true);
    if (ImGui::IsItemHovered())
      ImGui::SetTooltip("%s\nactivation %.4f", m.acts.ids[static_cast<size_t>(row)].c_str(), m.index.values[static_cast<size_t>(b + i)]);
  }
}

}  // namespace

void draw_latents(Ui& ui) {
  const WorkspaceModel& m = *ui.model;
  const int n_cls = static_cast<int>(m.classes().size());
  const int n_weight_cols = n_cls == 2 ? 1 : std::min(n_cls, 4);  // binary: one signed weight

  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 18);
  if (ui.focus_search) ImGui::SetKeyboardFocusHere(), ui.focus_search = false;
  if (ImGui::InputTextWithHint("##search", "search names or #index (Ctrl+F)", ui.search, sizeof(ui.search)))
    ui.filter.query = ui.search, ui.table_dirty = true;
  ImGui::SameLine();
  ui.table_dirty |= ImGui::Checkbox("named", &ui.filter.named_only);
  ImGui::SameLine();
  ui.table_dirty |= ImGui::Checkbox("used by the CBM", &ui.filter.used_only);
  ImGui::SameLine();
  ui.table_dirty |= ImGui::Checkbox("hide dead", &ui.filter.hide_dead);

  const int n_cols = 8 + n_weight_cols;
  // Horizontal lines instead of alternating row colours: on a software rasteriser (Mesa) the
  // blended row fills cost 7 ms a frame at 1600x1000, the lines almost nothing.
  const ImGuiTableFlags flags = ImGuiTableFlags_Sortable | ImGuiTableFlags_BordersOuter | ImGuiTableFlags_BordersInnerH |
                                ImGuiTableFlags_BordersV | ImGuiTableFlags_ScrollY | ImGuiTableFlags_Resizable |
                                ImGuiTableFlags_SizingStretchProp;
  if (ui.table_dirty) {
    ui.visible = filter_latents(m.latents, ui.filter);
    ui.table_dirty = false;
  }
  ImGui::Text("%zu of %lld latents", ui.visible.size(), static_cast<long long>(m.n_latents()));
  help_marker("Click a column header to sort (again to reverse). Up/Down move the selection, Enter opens it. "
              "Hover a header for how the value is computed.");
  // The table on the left, the selected latent's top images on the right: browse with the
  // arrow keys and see what each latent fires on without leaving the list.
  const float preview_w = std::max(ImGui::GetFontSize() * 14, ImGui::GetContentRegionAvail().x * 0.34f);
  const ImVec2 table_size(ImGui::GetContentRegionAvail().x - preview_w - ImGui::GetStyle().ItemSpacing.x, 0);
  ImGui::BeginChild("##table", table_size, false);
  if (!ImGui::BeginTable("latents", n_cols, flags, ImVec2(0, 0))) {
    ImGui::EndChild();
    return;
  }
  if (ui.bench_scroll >= 0) ImGui::SetScrollY(float(ui.bench_scroll) * ImGui::GetTextLineHeightWithSpacing());
  ImGui::TableSetupScrollFreeze(0, 1);
  ImGui::TableSetupColumn("latent", ImGuiTableColumnFlags_DefaultSort * 0, 0.6f, int(LatentColumn::latent));
  ImGui::TableSetupColumn("name", 0, 2.0f, int(LatentColumn::name));
  ImGui::TableSetupColumn("origin", 0, 0.9f, int(LatentColumn::origin));
  ImGui::TableSetupColumn("score", 0, 0.7f, int(LatentColumn::score));
  ImGui::TableSetupColumn("firing rate", ImGuiTableColumnFlags_PreferSortDescending, 0.9f, int(LatentColumn::firing_rate));
  ImGui::TableSetupColumn("mean", ImGuiTableColumnFlags_PreferSortDescending, 0.8f, int(LatentColumn::mean));
  ImGui::TableSetupColumn("max", ImGuiTableColumnFlags_PreferSortDescending, 0.8f, int(LatentColumn::max));
  for (int k = 0; k < n_weight_cols; ++k) {
    const std::string h = n_cls == 2 ? fmt::format("weight ({})", m.classes()[1])
                                     : fmt::format("weight {}", m.classes()[static_cast<size_t>(k)]);
    ImGui::TableSetupColumn(h.c_str(), ImGuiTableColumnFlags_PreferSortDescending, 0.9f, 100 + (n_cls == 2 ? 1 : k));
  }
  ImGui::TableSetupColumn("rank", ImGuiTableColumnFlags_DefaultSort, 0.6f, int(LatentColumn::rank));
  // Headers with tooltips.
  ImGui::TableNextRow(ImGuiTableRowFlags_Headers);
  for (int c = 0; c < n_cols; ++c) {
    ImGui::TableSetColumnIndex(c);
    const char* name = ImGui::TableGetColumnName(c);
    ImGui::TableHeader(name);
    const std::string n = name;
    metric_tooltip(n.rfind("weight", 0) == 0 ? "weight" : name);
  }
  if (ImGuiTableSortSpecs* specs = ImGui::TableGetSortSpecs(); specs && specs->SpecsDirty) {
    if (specs->SpecsCount > 0) {
      const auto& s = specs->Specs[0];
      const int id = static_cast<int>(s.ColumnUserID);
      ui.filter.sort = id >= 100 ? LatentColumn::weight : column_of(id);
      ui.filter.weight_class = id >= 100 ? id - 100 : -1;
      ui.filter.ascending = s.SortDirection == ImGuiSortDirection_Ascending;
    }
    specs->SpecsDirty = false;
    ui.visible = filter_latents(m.latents, ui.filter);
  }
  // Keyboard: move the selection through the visible order.
  int sel_pos = -1;
  for (size_t i = 0; i < ui.visible.size(); ++i)
    if (ui.visible[i] == ui.selected_latent) sel_pos = static_cast<int>(i);
  bool scroll_to_sel = false;
  if (ImGui::IsWindowFocused(ImGuiFocusedFlags_RootAndChildWindows) && !ImGui::IsAnyItemActive() && !ui.visible.empty()) {
    int next = sel_pos;
    if (ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_DownArrow))) next = std::min<int>(sel_pos + 1, int(ui.visible.size()) - 1);
    if (ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_UpArrow))) next = std::max(sel_pos - 1, 0);
    if (ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_PageDown))) next = std::min<int>(sel_pos + 20, int(ui.visible.size()) - 1);
    if (ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_PageUp))) next = std::max(sel_pos - 20, 0);
    if (next != sel_pos && next >= 0) {
      ui.select_latent(ui.visible[static_cast<size_t>(next)], false);
      sel_pos = next;
      scroll_to_sel = true;
    }
    if (sel_pos >= 0 && ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Enter))) ui.go(Panel::latent);
  }
  ImGuiListClipper clipper;
  clipper.Begin(static_cast<int>(ui.visible.size()));
  if (scroll_to_sel && sel_pos >= 0) clipper.ForceDisplayRangeByIndices(sel_pos, sel_pos + 1);
  while (clipper.Step()) {
    for (int i = clipper.DisplayStart; i < clipper.DisplayEnd; ++i) {
      const LatentRow& r = m.latents[static_cast<size_t>(ui.visible[static_cast<size_t>(i)])];
      ImGui::TableNextRow();
      ImGui::TableNextColumn();
      const std::string id = fmt::format("{}", r.latent);
      const bool selected = r.latent == ui.selected_latent;
      if (ImGui::Selectable(id.c_str(), selected, ImGuiSelectableFlags_SpanAllColumns | ImGuiSelectableFlags_AllowDoubleClick))
        ui.select_latent(r.latent, true);
      if (selected && scroll_to_sel) ImGui::SetScrollHereY(0.5f);
      ImGui::TableNextColumn();
      ImGui::TextUnformatted(r.name.c_str());
      ImGui::TableNextColumn();
      ImGui::TextDisabled("%s", r.origin.c_str());
      ImGui::TableNextColumn();
      if (!r.name.empty() && !std::isnan(r.score)) ImGui::Text("%.3f", r.score);
      ImGui::TableNextColumn();
      ImGui::Text("%.4f", r.firing_rate);
      ImGui::TableNextColumn();
      ImGui::Text("%.4f", r.mean);
      ImGui::TableNextColumn();
      ImGui::Text("%.3f", r.max);
      for (int k = 0; k < n_weight_cols; ++k) {
        ImGui::TableNextColumn();
        const size_t c = static_cast<size_t>(n_cls == 2 ? 1 : k);
        if (c < r.class_weight.size() && r.class_weight[c] != 0) ImGui::Text("%+.4f", r.class_weight[c]);
      }
      ImGui::TableNextColumn();
      if (r.rank > 0) ImGui::Text("%lld", static_cast<long long>(r.rank));
    }
  }
  ImGui::EndTable();
  ImGui::EndChild();
  ImGui::SameLine();
  ImGui::BeginChild("##preview", ImVec2(0, 0), true);
  draw_top_images_preview(ui, 64);
  ImGui::EndChild();
}

}  // namespace cl::viewer
