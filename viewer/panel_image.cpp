// Image detail (the image, its predicted probabilities, the latents behind the prediction, its
// metadata) and query by example (any image file, embedded with the workspace's encoder and
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
    const float side = std::min(ImGui::GetContentRegionAvail().x * 0.38f, ImGui::GetFontSize() * 26);
    image_tile(ui, m.image_path(d.row), side, side, true);
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
