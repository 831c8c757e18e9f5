// Intervention curves (curve.csv of the pipeline): AUROC as the first k latents of each ranking
// rule are zeroed; a steep early drop means the classifier leans on few latents.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "viewer/ui.h"

namespace cl::viewer {

void draw_curves(Ui& ui) {
  if (ui.model->curves.empty()) {
    ImGui::TextDisabled("No curve.csv in this workspace (the pipeline's intervene step writes it).");
    return;
  }
  ImGui::Text("AUROC after zeroing the first k latents of each ranking");
  help_marker("weight: the latents with the largest CBM weights first; annotation: those that best detect the curve's "
              "concept column; random: latents the CBM uses in random order (mean over seeds).");
  double kmax = 1, lo = 1, hi = 0;
  for (const auto& c : ui.model->curves)
    for (size_t i = 0; i < c.x.size(); ++i) kmax = std::max(kmax, c.x[i]), lo = std::min(lo, c.y[i]), hi = std::max(hi, c.y[i]);
  lo = std::floor(lo * 20) / 20, hi = std::ceil(hi * 20) / 20;
  if (hi <= lo) hi = lo + 0.05;
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  const float fs = ImGui::GetFontSize();
  const float left = fs * 4, bottom = fs * 3, w = avail.x - left - fs * 12, h = std::max(fs * 10, avail.y - bottom - fs);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImU32 axis = ImGui::GetColorU32(ImGuiCol_TextDisabled), text = ImGui::GetColorU32(ImGuiCol_Text);
  auto X = [&](double k) { return p0.x + left + float(k / kmax) * w; };
  auto Y = [&](double a) { return p0.y + float((hi - a) / (hi - lo)) * h; };
  dl->AddLine(ImVec2(X(0), Y(lo)), ImVec2(X(kmax), Y(lo)), axis);
  dl->AddLine(ImVec2(X(0), Y(lo)), ImVec2(X(0), Y(hi)), axis);
  for (int t = 0; t <= 5; ++t) {
    const double a = lo + (hi - lo) * t / 5;
    dl->AddLine(ImVec2(X(0) - 4, Y(a)), ImVec2(X(kmax), Y(a)), IM_COL32(255, 255, 255, 18));
    const std::string s = fmt::format("{:.3f}", a);
    dl->AddText(ImVec2(X(0) - ImGui::CalcTextSize(s.c_str()).x - 6, Y(a) - fs / 2), text, s.c_str());
  }
  const int step = std::max(1, int(kmax / 10));
  for (int k = 0; k <= int(kmax); k += step) {
    const std::string s = std::to_string(k);
    dl->AddText(ImVec2(X(k) - ImGui::CalcTextSize(s.c_str()).x / 2, Y(lo) + 4), text, s.c_str());
  }
  dl->AddText(ImVec2(X(kmax / 2) - fs * 4, Y(lo) + fs * 1.4f), text, "latents zeroed (k)");
  static const ImU32 colours[] = {IM_COL32(66, 135, 245, 255), IM_COL32(245, 160, 50, 255), IM_COL32(160, 160, 170, 255),
                                  IM_COL32(90, 200, 110, 255), IM_COL32(220, 80, 70, 255)};
  for (size_t c = 0; c < ui.model->curves.size(); ++c) {
    const auto& cv = ui.model->curves[c];
    const ImU32 col = colours[c % 5];
    for (size_t i = 0; i + 1 < cv.x.size(); ++i)
      dl->AddLine(ImVec2(X(cv.x[i]), Y(cv.y[i])), ImVec2(X(cv.x[i + 1]), Y(cv.y[i + 1])), col, 2.5f);
    for (size_t i = 0; i < cv.x.size(); ++i) dl->AddCircleFilled(ImVec2(X(cv.x[i]), Y(cv.y[i])), 3.5f, col);
    const float ly = p0.y + fs * 1.6f * float(c);
    dl->AddRectFilled(ImVec2(X(kmax) + fs, ly + fs * 0.3f), ImVec2(X(kmax) + fs * 2, ly + fs * 0.9f), col);
    dl->AddText(ImVec2(X(kmax) + fs * 2.5f, ly), text, cv.name.c_str());
  }
  ImGui::Dummy(ImVec2(avail.x, h + bottom));
}

}  // namespace cl::viewer
