// Overview panel: the dataset and its class balance, the SAE's metrics, its bench row against
// the baselines (with a bench step), the classifiers' scores.
#include <cmath>

#include <fmt/format.h>

#include "viewer/ui.h"

namespace cl::viewer {

namespace {

double num(const nlohmann::json& j, std::initializer_list<const char*> path) {
  const nlohmann::json* p = &j;
  for (const char* k : path) {
    if (!p->is_object() || !p->contains(k)) return std::nan("");
    p = &(*p)[k];
  }
  return p->is_number() ? p->get<double>() : std::nan("");
}

void metric_row(const char* name, double v, const char* fmt_spec = "{:.4f}") {
  ImGui::TableNextRow();
  ImGui::TableNextColumn();
  ImGui::TextUnformatted(name);
  metric_tooltip(name);
  ImGui::TableNextColumn();
  const std::string s = std::isnan(v) ? std::string("-") : fmt::format(fmt::runtime(fmt_spec), v);
  ImGui::TextUnformatted(s.c_str());
}

}  // namespace

void draw_overview(Ui& ui) {
  const WorkspaceModel& m = *ui.model;
  ImGui::Text("Workspace");
  ImGui::Separator();
  ImGui::Text("%lld images, %lld latents", static_cast<long long>(m.n_images()), static_cast<long long>(m.n_latents()));
  if (!m.paths.label_col.empty()) ImGui::Text("label: %s", m.paths.label_col.c_str());
  if (m.has_labels()) {
    const auto& L = *m.labelled;
    std::vector<int64_t> all(m.classes().size(), 0), eval(m.classes().size(), 0);
    for (int y : L.data.y) all[static_cast<size_t>(y)]++;
    for (int y : L.eval.y) eval[static_cast<size_t>(y)]++;
    ImGui::Text("evaluated on %zu images (%s)", L.eval.rows.size(),
                m.paths.eval_split.empty() ? "all rows" : ("split " + m.paths.eval_split).c_str());
    if (ImGui::BeginTable("classes", 4, ImGuiTableFlags_Borders | ImGuiTableFlags_SizingFixedFit)) {
      ImGui::TableSetupColumn("class");
      ImGui::TableSetupColumn("images");
      ImGui::TableSetupColumn("evaluated");
      ImGui::TableSetupColumn("balance", ImGuiTableColumnFlags_WidthFixed, ImGui::GetFontSize() * 14);
      ImGui::TableHeadersRow();
      for (size_t k = 0; k < all.size(); ++k) {
        ImGui::TableNextRow();
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(m.classes()[k].c_str());
        ImGui::TableNextColumn();
        ImGui::Text("%lld", static_cast<long long>(all[k]));
        ImGui::TableNextColumn();
        ImGui::Text("%lld", static_cast<long long>(eval[k]));
        ImGui::TableNextColumn();
        ImGui::ProgressBar(L.data.y.empty() ? 0.0f : float(all[k]) / float(L.data.y.size()), ImVec2(-1, 0));
      }
      ImGui::EndTable();
    }
  }
  ImGui::Spacing();
  ImGui::Text("Sparse autoencoder");
  ImGui::Separator();
  const nlohmann::json& sae = m.report.contains("sae") ? m.report["sae"] : (m.sae ? m.sae->metrics : nlohmann::json());
  if (m.sae) ImGui::Text("%s, %lld latents, input dim %lld", m.sae->arch.c_str(), static_cast<long long>(m.sae->n_latents),
                         static_cast<long long>(m.sae->d_in));
  if (ImGui::BeginTable("sae", 2, ImGuiTableFlags_Borders | ImGuiTableFlags_SizingFixedFit)) {
    metric_row("FVU", num(sae, {"fvu"}));
    metric_row("L0", num(sae, {"l0"}), "{:.2f}");
    metric_row("dead", num(sae, {"dead_fraction"}), "{:.3f}");
    ImGui::EndTable();
  }
  const BenchSummary bench = bench_summary(m.report);
  if (!bench.rows.empty()) {
    ImGui::Spacing();
    ImGui::Text("SAE bench (held out; bench/bench.md)");
    ImGui::Separator();
    if (ImGui::BeginTable("bench", 5, ImGuiTableFlags_Borders | ImGuiTableFlags_SizingFixedFit)) {
      ImGui::TableSetupColumn("dictionary");
      ImGui::TableSetupColumn("FVU");
      ImGui::TableSetupColumn("L0");
      ImGui::TableSetupColumn(fmt::format("probing k={}", bench.probe_k).c_str());
      ImGui::TableSetupColumn(fmt::format("TPP n={}", bench.tpp_n).c_str());
      ImGui::TableHeadersRow();
      for (const auto& r : bench.rows) {
        ImGui::TableNextRow();
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(r.kind == "sae" ? fmt::format("{} (this SAE)", r.label).c_str() : r.label.c_str());
        for (double v : {r.fvu, r.l0, r.probe_auroc, r.tpp}) {
          ImGui::TableNextColumn();
          ImGui::TextUnformatted(std::isnan(v) ? "-" : fmt::format("{:.3f}", v).c_str());
        }
      }
      ImGui::EndTable();
    }
    if (!std::isnan(bench.dense_probe_auroc))
      ImGui::TextDisabled("dense probe on the embeddings (the ceiling): %.3f", bench.dense_probe_auroc);
  }
  ImGui::Spacing();
  ImGui::Text("Classifiers (test split)");
  ImGui::Separator();
  const nlohmann::json& c = m.classify.is_object() && !m.classify.empty() ? m.classify
                            : m.report.contains("classify") ? m.report["classify"] : nlohmann::json();
  if (ImGui::BeginTable("clf", 4, ImGuiTableFlags_Borders | ImGuiTableFlags_SizingFixedFit)) {
    ImGui::TableSetupColumn("model");
    ImGui::TableSetupColumn("AUROC");
    ImGui::TableSetupColumn("accuracy");
    ImGui::TableSetupColumn("balanced accuracy");
    ImGui::TableHeadersRow();
    auto row = [&](const char* name, const nlohmann::json& t) {
      ImGui::TableNextRow();
      ImGui::TableNextColumn();
      ImGui::TextUnformatted(name);
      for (const char* k : {"auroc", "accuracy", "balanced_accuracy"}) {
        ImGui::TableNextColumn();
        const double v = num(t, {k});
        ImGui::TextUnformatted(std::isnan(v) ? "-" : fmt::format("{:.4f}", v).c_str());
      }
    };
    if (c.contains("cbm")) row("concept bottleneck (latents)", c["cbm"].value("test", nlohmann::json()));
    if (c.contains("probe")) row("probe (embeddings)", c["probe"].value("test", nlohmann::json()));
    if (c.contains("unbiased"))
      row(fmt::format("bottleneck without the {} bias", c["unbiased"].value("subgroup_col", std::string())).c_str(),
          c["unbiased"].value("test", nlohmann::json()));
    ImGui::EndTable();
  }
  if (c.empty()) ImGui::TextDisabled("no classify.json in this workspace");
  if (!m.issues.empty()) {
    ImGui::Spacing();
    ImGui::PushStyleColor(ImGuiCol_Text, IM_COL32(255, 170, 90, 255));
    ImGui::Text("%zu file(s) could not be used: see Problems", m.issues.size());
    ImGui::PopStyleColor();
  }
}

}  // namespace cl::viewer
