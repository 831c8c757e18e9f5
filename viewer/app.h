// `conceptlab view`: the desktop window over a workspace (GLFW + OpenGL3 + Dear ImGui, as in
// Dear ImGui's own GLFW example), or one offscreen frame written as a PNG (--screenshot).
#pragma once

#include <string>
#include <vector>

#include "core/device.h"
#include "viewer/model/workspace_model.h"

namespace cl::viewer {

// The panel names --panel takes, "overview|latents|..." (from the one table in ui.h).
std::string panel_choices();

struct ViewerOptions {
  WorkspacePaths paths;
  std::string screenshot_path;  // non-empty: render headless, write this PNG, exit
  std::string panel = "overview";
  std::string select;           // "latent=N" | "image=ID"
  int width = 1600, height = 1000;
  std::string edits_path;       // edits to load at start (intervene panel)
  Device device{c10::kCPU};     // query by example
  // Heatmap overlays on at start: "latent" (the selected latent's map on the latent and image
  // panels) or "attribution" (the image panel draws the class logit's map); "" off.
  std::string overlay;
  // bench/viewer_bench: after loading settles, time this many more frames (the latents panel
  // scrolls its table a row per frame, so it lays out new rows every frame).
  int bench_frames = 0;
};

// What a screenshot run saw (tests check the panel drawn and the font size).
struct ScreenshotInfo {
  std::string panel;
  float font_px = 0;
  int frames = 0;
  int n_issues = 0;
  std::vector<double> frame_ms;  // with bench_frames: CPU + GPU time of each timed frame (glFinish)
  std::vector<double> cpu_ms;    // the ImGui part of each (layout and draw lists, before GL)
  int thumbnails_drawn = 0;      // textured tiles in the last frame
};

// Returns the process exit code: 0, or 1 when the window or GL context cannot be created (the
// reason on stderr). UsageError for a bad --panel / --select / --size.
int run_viewer(const ViewerOptions& o, ScreenshotInfo* info = nullptr);

}  // namespace cl::viewer
