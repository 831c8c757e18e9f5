// Viewer foundations: an ImGui frame built without a window, so panel code can be exercised
// (and later screenshotted) headlessly. The interactive app arrives with the viewer issue.
#pragma once

#include <string>

namespace cl::viewer {

struct FrameStats {
  int n_vertices = 0;
  int n_commands = 0;
};

std::string imgui_version();

// Builds a font atlas and renders one frame of a text panel into ImGui draw lists (no GL).
FrameStats render_text_panel_headless(const std::string& title, const std::string& body, int width, int height);

}  // namespace cl::viewer
