// Image detail (the image, its predicted probabilities, the latents behind the prediction, its
// metadata), with patch activations a heatmap overlay on the image and the latents firing where
// it is clicked, and query by example (any image file, embedded with the workspace's encoder and
// encoded with its SAE, then compared with every image).
#include <cmath>

#include <fmt/format.h>

#include "viewer/ui.h"

namespace cl::viewer {

namespace {

void draw_query(Ui& ui) {
  ImGui::Text("Query by example");
  help_marker("Embeds an image file with the workspace's encoder (embed.model), encodes it with the SAE and lists "
              "its latents and the images whose activations are most similar (cosine). Runs on the worker thread.");
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 24);
  ImGui::InputTextWithHint("##qpath", "path to an image file", ui.query_path, sizeof(ui.query_path));
  ImGui::SameLine();
  if (ImGui::Button("Embed and search") && ui.query_path[0]) {
    const WorkspaceModel* m = ui.model.get();
    const std::string path = ui.query_path;
    const Device dev = ui.device;
    ui.jobs.submit("query by example", [&ui, m, path, dev](ProgressSink& s) -> std::function<void()> {
      auto r = std::make_shared<QueryResult>(query_by_example(*m, path, dev, s));
      return [&ui, r] { ui.query = *r; };
    });
  }
  if (!ui.query) return;
  const QueryResult& q = *ui.query;
  const float tile = ImGui::GetFontSize() * 7;
  image_tile(ui, q.image_path, tile * 1.5f, tile * 1.5f, true);
  ImGui::SameLine();
  ImGui::BeginGroup();
  ImGui::Text("%s  (%.2f s)", q.image_path.c_str(), q.seconds);
  for (size_t k = 0; k < q.proba.size(); ++k)
    ImGui::Text("P(%s) = %.3f", ui.model->classes()[k].c_str(), q.proba[k]);
  for (size_t i = 0; i < q.latents.size() && i < 8; ++i) {
    const std::string label = fmt::format("{}  {:.3f}##q{}", latent_label(ui, q.latents[i].first), q.latents[i].second, i);
    if (ImGui::Selectable(label.c_str())) ui.select_latent(q.latents[i].first, true);
  }
  ImGui::EndGroup();
  ImGui::Text("nearest images");
  const int per_row = std::max(1, int(ImGui::GetContentRegionAvail().x / (tile + 8)));
  for (size_t i = 0; i < q.nearest.size(); ++i) {
    if (i % per_row) ImGui::SameLine(0, 8);
    ImGui::BeginGroup();
    if (image_tile(ui, ui.model->image_path(q.nearest[i].first), tile, tile)) ui.select_image(q.nearest[i].first, true);
    ImGui::Text("%.3f", q.nearest[i].second);
    ImGui::EndGroup();
  }
}

// The overlay's switch, opacity and what it draws: the selected latent, or the attribution map of
// the logit whose contributions the panel lists.
void draw_overlay_choice(Ui& ui) {
  const WorkspaceModel& m = *ui.model;
  if (!m.has_patches()) return;
  overlay_controls(ui);
  ImGui::SameLine();
  int kind = static_cast<int>(ui.overlay_kind);
  const std::string latent = "latent " + (ui.selected_latent >= 0 ? latent_label(ui, ui.selected_latent) : "(none)");
  ImGui::RadioButton(latent.c_str(), &kind, static_cast<int>(OverlayKind::latent));
  if (m.has_cbm()) {
    ImGui::SameLine();
    // Named as the contribution bars name their logit.
    const std::string attribution = fmt::format(
        "attribution ({} logit)", m.classes().size() == 2 ? "'" + m.classes()[1] + "'" : std::string("predicted class"));
    ImGui::RadioButton(attribution.c_str(), &kind, static_cast<int>(OverlayKind::attribution));
    help_marker("Sum over latents of CBM weight x patch activation: where on the image the logit the bars explain gets "
                "its evidence (positive evidence drawn; the colour scale tops at this image's largest value).");
  }
  ui.overlay_kind = static_cast<OverlayKind>(kind);
}

// The latents firing in the clicked patch, with the patch outlined on the image.
void draw_patch_listing(Ui& ui, const TileRect& image_rect) {
  if (!ui.patch_listing || ui.patch_listing->row != ui.selected_image) return;
  const PatchListing& l = *ui.patch_listing;
  if (l.patch < 0) {
    ImGui::TextDisabled("Outside the part of the image the encoder saw (no patch there).");
    return;
  }
  const auto [W, H] = patch_image_size(*ui.model, l.row);
  if (image_rect.drawn && W > 0 && H > 0) {
    const ImVec2 o = image_rect.min;
    const float sx = (image_rect.max.x - o.x) / float(W), sy = (image_rect.max.y - o.y) / float(H);
    ImGui::GetWindowDrawList()->AddRect(ImVec2(o.x + float(l.box.x0) * sx, o.y + float(l.box.y0) * sy),
                                        ImVec2(o.x + float(l.box.x1) * sx, o.y + float(l.box.y1) * sy),
                                        IM_COL32(80, 220, 255, 255), 0, 0, 2.0f);
  }
  ImGui::Text("latents firing at %s", l.where.c_str());
  if (l.latents.empty()) ImGui::TextDisabled("none");
  for (size_t i = 0; i < l.latents.size(); ++i) {
    const auto [j, v] = l.latents[i];
    const std::string label = fmt::format("{}  {:.3f}##p{}", latent_label(ui, j), v, i);
    if (ImGui::Selectable(label.c_str(), false, 0, ImVec2(ImGui::GetFontSize() * 18, 0))) ui.select_latent(j, true);
  }
}

}  // namespace

void draw_image(Ui& ui) {
  WorkspaceModel& m = *ui.model;
  if (ImGui::IsWindowFocused(ImGuiFocusedFlags_RootAndChildWindows) && !ImGui::IsAnyItemActive() && ui.selected_image >= 0) {
    if (ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_RightArrow))) ui.select_image(std::min(ui.selected_image + 1, m.n_images() - 1), false);
    if (ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_LeftArrow))) ui.select_image(std::max<int64_t>(ui.selected_image - 1, 0), false);
  }
  if (!ui.image_detail || ui.selected_image < 0) {
    ImGui::TextDisabled("No image selected: click one in a latent's top images (Left/Right step through images).");
  } else {
    const ImageDetail& d = *ui.image_detail;
    draw_overlay_choice(ui);
    const float side = std::min(ImGui::GetContentRegionAvail().x * 0.38f, ImGui::GetFontSize() * 26);
    const OverlaySpec spec = ui.overlay_spec(ui.overlay_kind, ui.selected_latent);
    TileRect shown;
    const bool clicked = row_tile(ui, d.row, side, side, true, ui.overlay_on ? &spec : nullptr, &shown);
    // A click lists what fires in the patch under it: the rect maps the cursor to the original image.
    const auto [W, H] = patch_image_size(m, d.row);
    if (clicked && shown.drawn && W > 0) {
      const ImVec2 at = ImGui::GetIO().MousePos;
      const double x = (at.x - shown.min.x) / (shown.max.x - shown.min.x) * W;
      const double y = (at.y - shown.min.y) / (shown.max.y - shown.min.y) * H;
      ui.patch_listing = latents_at(m, d.row, x, y);
    }
    if (W > 0 && ImGui::IsItemHovered() && !ui.patch_listing) ImGui::SetTooltip("click: the latents firing here");
    ImGui::SameLine();
    ImGui::BeginGroup();
    ImGui::Text("%s", d.id.c_str());
    if (!d.label.empty()) ImGui::Text("%s = %s", m.paths.label_col.c_str(), d.label.c_str());
    if (!d.proba.empty()) {
      ImGui::Text("predicted by the concept bottleneck:");
      for (size_t k = 0; k < d.proba.size(); ++k) {
        ImGui::ProgressBar(float(d.proba[k]), ImVec2(ImGui::GetFontSize() * 10, 0), fmt::format("{:.3f}", d.proba[k]).c_str());
        ImGui::SameLine();
        ImGui::Text("P(%s)", m.classes()[k].c_str());
      }
    }
    ImGui::Spacing();
    if (!d.contributions.empty()) {
      ImGui::Text("latents behind the %s logit (activation x weight)",
                  m.classes().size() == 2 ? ("'" + m.classes()[1] + "'").c_str() : "predicted class");
      metric_tooltip("contribution");
      std::vector<std::pair<std::string, double>> bars;
      for (const auto& [l, c] : d.contributions) bars.emplace_back(latent_label(ui, l), c);
      if (bars.size() > 10) bars.resize(10);
      const int hit = bar_chart("contrib", bars, ImGui::GetContentRegionAvail().x, ImGui::GetTextLineHeight() * 1.4f);
      if (hit >= 0) ui.select_latent(d.contributions[static_cast<size_t>(hit)].first, true);
    }
    ImGui::EndGroup();
    draw_patch_listing(ui, shown);
    if (ImGui::CollapsingHeader("active latents", ImGuiTreeNodeFlags_DefaultOpen)) {
      for (size_t i = 0; i < d.top_latents.size(); ++i) {
        if (i % 4) ImGui::SameLine(ImGui::GetContentRegionAvail().x * 0.25f * float(i % 4) + 8);
        const std::string label = fmt::format("{}  {:.3f}##a{}", latent_label(ui, d.top_latents[i].first), d.top_latents[i].second, i);
        if (ImGui::Selectable(label.c_str(), false, 0, ImVec2(ImGui::GetContentRegionAvail().x * 0.24f, 0)))
          ui.select_latent(d.top_latents[i].first, true);
      }
    }
    if (ImGui::CollapsingHeader("metadata") && ImGui::BeginTable("meta", 2, ImGuiTableFlags_Borders | ImGuiTableFlags_SizingFixedFit)) {
      for (const auto& [k, v] : d.metadata) {
        ImGui::TableNextRow();
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(k.c_str());
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(v.c_str());
      }
      ImGui::EndTable();
    }
  }
  ImGui::Separator();
  draw_query(ui);
}

}  // namespace cl::viewer
