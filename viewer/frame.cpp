// Headless ImGui frame: proves the ImGui build links and lays out text without a GL context.
#include "viewer/frame.h"

#include <imgui.h>

namespace cl::viewer {

std::string imgui_version() { return IMGUI_VERSION; }

FrameStats render_text_panel_headless(const std::string& title, const std::string& body, int width, int height) {
  ImGuiContext* ctx = ImGui::CreateContext();
  ImGuiIO& io = ImGui::GetIO();
  io.IniFilename = nullptr;
  io.DisplaySize = ImVec2(static_cast<float>(width), static_cast<float>(height));
  unsigned char* pixels = nullptr;
  int w = 0, h = 0;
  io.Fonts->GetTexDataAsRGBA32(&pixels, &w, &h);
  ImGui::NewFrame();
  ImGui::SetNextWindowPos(ImVec2(0, 0));
  ImGui::SetNextWindowSize(io.DisplaySize);
  ImGui::Begin(title.c_str());
  ImGui::TextUnformatted(body.c_str());
  ImGui::End();
  ImGui::Render();
  FrameStats s;
  ImDrawData* dd = ImGui::GetDrawData();
  s.n_vertices = dd ? dd->TotalVtxCount : 0;
  for (int i = 0; dd && i < dd->CmdListsCount; ++i) s.n_commands += dd->CmdLists[i]->CmdBuffer.Size;
  ImGui::DestroyContext(ctx);
  return s;
}

}  // namespace cl::viewer
