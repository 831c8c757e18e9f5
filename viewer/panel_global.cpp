// Global explanations: per class, the latents with the largest CBM weights (or mean
// contributions over the class's images) as bars; clicking a bar opens the latent.
#include <fmt/format.h>

#include "viewer/ui.h"

namespace cl::viewer {

void draw_global(Ui& ui) {
  if (ui.global.empty()) {
    ImGui::TextDisabled("Needs the concept bottleneck (cbm.h5) and labels.");
    return;
  }
  ImGui::Text("Global explanations");
  ImGui::SameLine();
  int mode = ui.global_by_contribution ? 1 : 0;
  ImGui::RadioButton("by weight", &mode, 0);
  metric_tooltip("weight");
  ImGui::SameLine();
  ImGui::RadioButton("by mean contribution", &mode, 1);
  metric_tooltip("contribution");
  ui.global_by_contribution = mode == 1;
  help_marker("Per class, the latents that carry the most evidence for it. Weight: the CBM coefficient. Mean "
              "contribution: weight x the latent's mean activation over the class's images. Click a bar to open the latent.");
  ImGui::Separator();
  const size_t n = ui.global.size();
  const float col_w = (ImGui::GetContentRegionAvail().x - 10 * float(n - 1)) / float(std::min<size_t>(n, 2));
  const float bar_h = ImGui::GetTextLineHeight() * 1.5f;
  for (size_t k = 0; k < n; ++k) {
    const auto& g = ui.global[k];
    if (k % 2) ImGui::SameLine(0, 10);
    ImGui::BeginChild(fmt::format("##class{}", k).c_str(), ImVec2(col_w, bar_h * 17 + ImGui::GetTextLineHeight() * 3), true);
    ImGui::Text("%s = %s  (%lld images)", ui.model->paths.label_col.c_str(), g.class_name.c_str(),
                static_cast<long long>(g.n_images));
    const auto& terms = ui.global_by_contribution ? g.by_contribution : g.by_weight;
    std::vector<std::pair<std::string, double>> bars;
    for (const auto& t : terms)
      bars.emplace_back(latent_label(ui, t.latent), ui.global_by_contribution ? t.mean_contribution : t.weight);
    const int hit = bar_chart(fmt::format("bars{}", k).c_str(), bars, ImGui::GetContentRegionAvail().x, bar_h);
    if (hit >= 0) ui.select_latent(terms[static_cast<size_t>(hit)].latent, true);
    ImGui::EndChild();
  }
}

}  // namespace cl::viewer
