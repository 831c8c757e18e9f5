// Problems panel: every workspace file that could not be used, and why (the other panels that
// need it stay empty and say so).
#include "viewer/ui.h"

namespace cl::viewer {

void draw_problems(Ui& ui) {
  const WorkspaceModel& m = *ui.model;
  ImGui::Text("Problems");
  ImGui::Separator();
  if (m.issues.empty()) {
    ImGui::TextDisabled("Every file of the workspace loaded.");
    return;
  }
  ImGui::TextWrapped("These files could not be used; the panels that need them stay empty. Re-run the step that "
                     "writes a file (`conceptlab run CONFIG --force STEP`) to replace it.");
  ImGui::Spacing();
  for (const auto& i : m.issues) {
    ImGui::PushStyleColor(ImGuiCol_Text, IM_COL32(255, 120, 100, 255));
    ImGui::TextWrapped("%s", i.file.c_str());
    ImGui::PopStyleColor();
    ImGui::Indent();
    ImGui::TextWrapped("%s", i.message.c_str());
    ImGui::Unindent();
    ImGui::Spacing();
  }
}

}  // namespace cl::viewer
