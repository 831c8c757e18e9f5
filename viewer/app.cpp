// The frame loop: a GLFW window with an OpenGL 3 context, Dear ImGui's GLFW + OpenGL3 backends,
// one full-window layout (navigation on the left, the current panel, a status bar), keyboard
// habits (Ctrl+F search, Esc back), and the headless screenshot path used by tests and the README.
#include "viewer/app.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include <GLFW/glfw3.h>
#include <imgui.h>
#include <imgui_impl_glfw.h>
#include <imgui_impl_opengl3.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <spdlog/spdlog.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/parse.h"
#include "viewer/model/intervention_session.h"
#include "viewer/ui.h"

namespace fs = std::filesystem;

namespace cl::viewer {

namespace {

const char* kFontPath = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
constexpr float kFontPx = 16.0f;

void apply_selection(Ui& ui, const std::string& select) {
  if (select.empty() || !ui.model) return;
  if (!ui.model->has_acts()) {  // the Problems panel says why; the selection cannot apply
    spdlog::warn("view: --select {} ignored: no activations loaded", select);
    return;
  }
  const size_t eq = select.find('=');
  const std::string what = select.substr(0, eq), value = select.substr(eq + 1);
  if (what == "latent") {
    double j;
    if (!parse_number(value, j) || j < 0 || j >= double(ui.model->n_latents()))
      throw_usage("--select latent={}: expected a latent in 0..{}", value, ui.model->n_latents() - 1);
    ui.select_latent(static_cast<int64_t>(j), false);
  } else {
    const auto& ids = ui.model->acts.ids;
    const auto it = std::find(ids.begin(), ids.end(), value);
    if (it == ids.end()) throw_usage("--select image={}: no image with this id in {}", value, ui.model->paths.activations);
    ui.select_image(static_cast<int64_t>(it - ids.begin()), false);
  }
}

void draw_navigation(Ui& ui) {
  ImGui::TextDisabled("conceptlab");
  ImGui::Separator();
  struct Item {
    Panel p;
    const char* label;
  };
  static const Item items[] = {{Panel::overview, "Overview"},   {Panel::latents, "Latents"},     {Panel::latent, "Latent detail"},
                               {Panel::global, "Global"},       {Panel::image, "Image"},         {Panel::intervene, "Intervene"},
                               {Panel::subgroups, "Subgroups"}, {Panel::curves, "Curves"},       {Panel::problems, "Problems"}};
  for (const auto& it : items) {
    std::string label = it.label;
    if (it.p == Panel::problems && ui.model && !ui.model->issues.empty())
      label += " (" + std::to_string(ui.model->issues.size()) + ")";
    if (ImGui::Selectable(label.c_str(), ui.panel == it.p)) ui.go(it.p);
  }
  ImGui::Separator();
  if (ui.selected_latent >= 0) {
    ImGui::TextDisabled("latent");
    ImGui::TextWrapped("%s", latent_label(ui, ui.selected_latent).c_str());
  }
  if (ui.selected_image >= 0 && ui.model) {
    ImGui::TextDisabled("image");
    ImGui::TextWrapped("%s", ui.model->acts.ids[static_cast<size_t>(ui.selected_image)].c_str());
  }
  if (!ui.edits.empty()) {
    ImGui::TextDisabled("edits");
    ImGui::Text("%zu latent(s)", ui.active_edits().size());
  }
}

void draw_status(Ui& ui) {
  const auto st = ui.jobs.status();
  if (st.busy) {
    const float frac = st.progress.total > 0 ? float(st.progress.done) / float(st.progress.total) : 0.0f;
    ImGui::Text("%s", st.label.c_str());
    ImGui::SameLine();
    ImGui::ProgressBar(frac, ImVec2(ImGui::GetFontSize() * 12, 0), st.progress.total > 0 ? nullptr : "working");
    ImGui::SameLine();
    if (ImGui::SmallButton("Cancel")) ui.jobs.cancel();
    ImGui::SameLine();
  }
  if (ui.model) {
    ImGui::TextDisabled("%s  |  %lld images x %lld latents  |  opened in %.2f s", ui.model->paths.dir.empty()
                            ? ui.model->paths.activations.c_str() : ui.model->paths.dir.c_str(),
                        static_cast<long long>(ui.model->n_images()), static_cast<long long>(ui.model->n_latents()),
                        ui.model->load_seconds);
  } else {
    ImGui::TextDisabled("opening...");
  }
  if (!ui.status_line.empty()) {
    ImGui::SameLine();
    ImGui::TextDisabled("|  %s", ui.status_line.c_str());
  }
}

void draw_frame(Ui& ui) {
  const ImGuiIO& io = ImGui::GetIO();
  ImGui::SetNextWindowPos(ImVec2(0, 0));
  ImGui::SetNextWindowSize(io.DisplaySize);
  // No background: glClear paints it. A software rasteriser (Mesa llvmpipe) pays for every
  // full-window layer, so the layout avoids stacked opaque fills.
  // Settings are saved (imgui.ini in the workspace): the tables keep their column widths,
  // order and sort between runs.
  ImGui::Begin("##main", nullptr, ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove |
                                      ImGuiWindowFlags_NoBringToFrontOnFocus | ImGuiWindowFlags_NoBackground);
  // Keyboard habits.
  if (io.KeyCtrl && ImGui::IsKeyPressed(GLFW_KEY_F)) {  // 1.86: keys are GLFW codes
    ui.go(Panel::latents);
    ui.focus_search = true;
  }
  if (ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Escape)) && !ImGui::IsAnyItemActive()) ui.back();

  const float status_h = ImGui::GetFrameHeightWithSpacing() + 4;
  const float nav_w = ImGui::GetFontSize() * 11;
  ImGui::BeginChild("##nav", ImVec2(nav_w, -status_h), true);
  draw_navigation(ui);
  ImGui::EndChild();
  ImGui::SameLine();
  ImGui::BeginChild("##panel", ImVec2(0, -status_h), true);
  if (!ui.last_error.empty()) {
    ImGui::PushStyleColor(ImGuiCol_Text, IM_COL32(255, 120, 100, 255));
    ImGui::TextWrapped("%s", ui.last_error.c_str());
    ImGui::PopStyleColor();
    ImGui::SameLine();
    if (ImGui::SmallButton("dismiss")) ui.last_error.clear();
  }
  if (!ui.model) {
    ImGui::Text("Opening the workspace...");
  } else {
    switch (ui.panel) {
      case Panel::overview: draw_overview(ui); break;
      case Panel::latents: draw_latents(ui); break;
      case Panel::latent: draw_latent(ui); break;
      case Panel::global: draw_global(ui); break;
      case Panel::image: draw_image(ui); break;
      case Panel::intervene: draw_intervene(ui); break;
      case Panel::subgroups: draw_subgroups(ui); break;
      case Panel::curves: draw_curves(ui); break;
      case Panel::problems: draw_problems(ui); break;
    }
  }
  ImGui::EndChild();
  draw_status(ui);
  ImGui::End();
}

// Posts the edit set to the live evaluator when it or the selected image changed.
void post_live(Ui& ui) {
  if (!ui.live) return;
  if (ui.posted_version == ui.edits_version && ui.posted_image == ui.selected_image) return;
  ui.live->post(ui.active_edits(), ui.selected_image);
  ui.posted_version = ui.edits_version;
  ui.posted_image = ui.selected_image;
}

bool write_png(const std::string& path, int w, int h) {
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * 4);
  glPixelStorei(GL_PACK_ALIGNMENT, 1);
  glReadPixels(0, 0, w, h, GL_RGBA, GL_UNSIGNED_BYTE, px.data());
  cv::Mat rgba(h, w, CV_8UC4, px.data()), bgr, flipped;
  cv::cvtColor(rgba, bgr, cv::COLOR_RGBA2BGR);
  cv::flip(bgr, flipped, 0);  // GL rows start at the bottom
  AtomicOutput out(path);
  const std::string tmp = out.temp_path() + ".png";  // OpenCV picks the codec from the extension
  if (!cv::imwrite(tmp, flipped)) return false;
  fs::rename(tmp, out.temp_path());
  out.commit();
  return true;
}

}  // namespace

// Once the workspace has loaded: the panel, --select, the default selection and --edits.
static void apply_startup_options(Ui& ui, const ViewerOptions& o, Panel panel, bool headless) {
  ui.panel = panel;
  if (ui.model->issues.size() && !ui.model->has_acts()) ui.panel = Panel::problems;
  try {
    apply_selection(ui, o.select);
  } catch (const UsageError& e) {
    if (headless) throw;
    ui.last_error = e.what();
  }
  ui.select_defaults();  // Latent and Image open on something, not an empty page
  if (!o.overlay.empty()) {
    ui.overlay_on = true;
    ui.overlay_kind = *parse_overlay_kind(o.overlay);  // checked by run_viewer
    if (!ui.model->wants_patches())
      spdlog::warn("view: --overlay {}: no patch activations in this workspace (embed.patches), drawn without",
                   o.overlay);
  }
  if (!o.edits_path.empty() && (headless || fs::exists(o.edits_path))) {
    try {
      if (!ui.session) throw_input("{}: interventions need the concept bottleneck and labels (see Problems)", o.edits_path);
      for (const auto& e : load_edits(o.edits_path, ui.model->n_latents())) ui.add_edit(e.latent, e.op, e.value);
      if (headless) run_full_experiment(ui);  // the screenshot shows the random control too
    } catch (const InputError& e) {
      if (headless) throw;  // a screenshot of edits that were not applied would mislead
      ui.last_error = e.what();
      spdlog::error("{}", e.what());
    }
  } else if (!o.edits_path.empty()) {
    ui.status_line = fmt::format("edits will be saved to {}", o.edits_path);
  }
}

namespace {

// A GLFW window with an OpenGL 3.0 context (hidden when headless); null, with the reason logged,
// where there is no display or no GL driver.
GLFWwindow* open_window(const ViewerOptions& o, bool headless) {
  glfwSetErrorCallback([](int code, const char* msg) { spdlog::error("glfw {}: {}", code, msg); });
  if (!glfwInit()) {
    spdlog::error("view: cannot open a window (no display? set DISPLAY, or run under xvfb-run)");
    return nullptr;
  }
  glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
  glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 0);
  if (headless) glfwWindowHint(GLFW_VISIBLE, GLFW_FALSE);
  GLFWwindow* win = glfwCreateWindow(o.width, o.height, "conceptlab", nullptr, nullptr);
  if (!win) {
    spdlog::error("view: cannot create an OpenGL 3.0 window (no display, or no GL driver: install libgl1-mesa-dri)");
    glfwTerminate();
    return nullptr;
  }
  glfwMakeContextCurrent(win);
  spdlog::debug("view: OpenGL {} on {}", reinterpret_cast<const char*>(glGetString(GL_VERSION)),
                reinterpret_cast<const char*>(glGetString(GL_RENDERER)));
  glfwSwapInterval(headless ? 0 : 1);
  return win;
}

// ImGui on the window: style and font scaled to the monitor. ini_path ("" for none) must outlive
// the context. Returns the font size in pixels.
float init_imgui(GLFWwindow* win, float scale, const std::string& ini_path) {
  IMGUI_CHECKVERSION();
  ImGui::CreateContext();
  ImGuiIO& io = ImGui::GetIO();
  io.IniFilename = ini_path.empty() ? nullptr : ini_path.c_str();
  ImGui::StyleColorsDark();
  ImGuiStyle& style = ImGui::GetStyle();
  style.WindowRounding = 0, style.FrameRounding = 3, style.ItemSpacing = ImVec2(8, 6), style.CellPadding = ImVec2(6, 3);
  style.ScaleAllSizes(scale);
  float font_px = 13.0f * scale;
  if (fs::exists(kFontPath) && io.Fonts->AddFontFromFileTTF(kFontPath, kFontPx * scale)) font_px = kFontPx * scale;
  else io.Fonts->AddFontDefault();
  ImGui_ImplGlfw_InitForOpenGL(win, true);
  ImGui_ImplOpenGL3_Init("#version 130");
  return font_px;
}

void shutdown(GLFWwindow* win) {
  ImGui_ImplOpenGL3_Shutdown();
  ImGui_ImplGlfw_Shutdown();
  ImGui::DestroyContext();
  glfwDestroyWindow(win);
  glfwTerminate();
}

// Work finished on the worker threads lands in the model and the textures, between frames.
void take_finished_work(Ui& ui) {
  ui.jobs.drain();
  if (auto err = ui.jobs.take_error(); !err.empty()) ui.last_error = err, spdlog::error("{}", err);
  ui.take_patch_activations();
  ui.thumb_tex.upload_ready(ui.thumbs);
  ui.large_tex.upload_ready(ui.large);
  ui.overlay_tex.upload_ready(ui.overlay_thumbs);
  ui.overlay_large_tex.upload_ready(ui.overlay_large);
  // Every (image, latent, opacity) is a texture of its own: keep the recent ones (~32 MB of
  // 128 px tiles, ~32 MB of 512 px images), not every one ever drawn.
  ui.overlay_tex.trim(ui.overlay_thumbs, 512);
  ui.overlay_large_tex.trim(ui.overlay_large, 32);
}

// One frame laid out and rendered into the back buffer; returns [layout end, start] times.
std::pair<std::chrono::steady_clock::time_point, std::chrono::steady_clock::time_point> render_frame(Ui& ui, int fb_w,
                                                                                                        int fb_h) {
  const auto f0 = std::chrono::steady_clock::now();
  ui.tiles_drawn = 0;
  ImGui_ImplOpenGL3_NewFrame();
  ImGui_ImplGlfw_NewFrame();
  ImGui::NewFrame();
  draw_frame(ui);
  ImGui::Render();
  const auto f1 = std::chrono::steady_clock::now();
  glViewport(0, 0, fb_w, fb_h);
  const ImVec4 bg = ImGui::GetStyleColorVec4(ImGuiCol_WindowBg);
  glClearColor(bg.x, bg.y, bg.z, 1.0f);
  glClear(GL_COLOR_BUFFER_BIT);
  ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
  return {f1, f0};
}

// Headless runs: capture once loading, thumbnails and evaluations have settled for a few frames
// (the layout of a frame depends on the one before), or after a minute regardless; with
// --bench-frames, time that many frames first.
struct HeadlessClock {
  enum class Step { draw, start_bench, capture };
  int idle_frames = 0, bench_left = 0;
  bool bench_started = false;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();

  bool timing() const { return bench_left > 0 && bench_started; }
  void timed_frame_done() {
    if (--bench_left == 0) idle_frames = 1000;  // capture now
  }
  Step next(const Ui& ui) {
    idle_frames = (ui.model && !ui.busy()) ? idle_frames + 1 : 0;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (idle_frames >= 4 && bench_left > 0 && !bench_started) {
      bench_started = true;
      return Step::start_bench;
    }
    if (idle_frames < 4 && secs <= 60) return Step::draw;
    if (secs > 60) spdlog::warn("view: still busy after 60 s; capturing anyway");
    if (secs > 60 && bench_left > 0) spdlog::warn("view: the benchmark did not start (still busy)");
    return Step::capture;
  }
};

// The screenshot and what the caller wants to know about it; 0 or the exit code of a failure.
int capture(const Ui& ui, const ViewerOptions& o, int fb_w, int fb_h, float font_px, int frames, ScreenshotInfo* info) {
  int exit_code = 0;
  if (!write_png(o.screenshot_path, fb_w, fb_h)) {
    spdlog::error("{}: cannot write the screenshot", o.screenshot_path);
    exit_code = 1;
  } else {
    spdlog::info("view: wrote {} ({}x{}, panel {})", o.screenshot_path, fb_w, fb_h, panel_name(ui.panel));
  }
  if (info) {
    info->panel = panel_name(ui.panel), info->font_px = font_px, info->frames = frames;
    info->n_issues = ui.model ? int(ui.model->issues.size()) : 0;
    info->thumbnails_drawn = ui.tiles_drawn;
  }
  return exit_code;
}

}  // namespace

int run_viewer(const ViewerOptions& o, ScreenshotInfo* info) {
  const auto panel = parse_panel(o.panel);
  if (!panel) throw_usage("--panel '{}': expected one of {}", o.panel, panel_choices());
  if (!o.select.empty() && o.select.rfind("latent=", 0) != 0 && o.select.rfind("image=", 0) != 0)
    throw_usage("--select '{}': expected latent=N or image=ID", o.select);
  if (!o.overlay.empty() && !parse_overlay_kind(o.overlay))
    throw_usage("--overlay '{}': expected one of {}", o.overlay, fmt::join(kOverlayKindNames, "|"));
  if (o.width < 320 || o.height < 240 || o.width > 8192 || o.height > 8192)
    throw_usage("--size {}x{}: expected 320x240 to 8192x8192", o.width, o.height);
  const bool headless = !o.screenshot_path.empty();

  GLFWwindow* win = open_window(o, headless);
  if (!win) return 1;
  float xs = 1, ys = 1;
  glfwGetWindowContentScale(win, &xs, &ys);
  const float scale = std::max(1.0f, std::max(xs, ys));
  // The layout persists in the workspace; screenshots ignore it so they are reproducible.
  const std::string ini = (!headless && !o.paths.dir.empty()) ? (fs::path(o.paths.dir) / "imgui.ini").string() : "";
  const float font_px = init_imgui(win, scale, ini);

  int exit_code = 0;
  {
    Ui ui;
    ui.device = o.device;
    ui.ui_scale = scale;
    ui.edits_path = o.edits_path;
    const WorkspacePaths paths = o.paths;
    ui.jobs.submit("open workspace", [&ui, paths](ProgressSink& s) -> std::function<void()> {
      // The patch activations open after the first frame (Ui::open_patch_activations).
      std::shared_ptr<WorkspaceModel> m(WorkspaceModel::load(paths, s, false).release());
      return [&ui, m]() mutable {
        ui.model.reset(new WorkspaceModel(std::move(*m)));
        ui.on_model_loaded();
      };
    });
    bool applied = false;
    int frames = 0;
    HeadlessClock clock;
    clock.bench_left = o.bench_frames;
    while (!glfwWindowShouldClose(win)) {
      if (headless) glfwPollEvents();
      else glfwWaitEventsTimeout(ui.busy() ? 0.016 : 0.25);  // idle: no busy loop
      take_finished_work(ui);
      if (ui.model && !applied) {
        applied = true;
        apply_startup_options(ui, o, *panel, headless);
      }
      post_live(ui);
      int fb_w, fb_h;
      glfwGetFramebufferSize(win, &fb_w, &fb_h);
      const bool timing = clock.timing();
      if (timing) ui.bench_scroll = frames % 1000;  // a row per frame: every frame lays out new rows
      const auto [f1, f0] = render_frame(ui, fb_w, fb_h);
      ++frames;
      if (timing) {
        glFinish();  // the frame's rendering, not only its submission
        if (info) {
          info->frame_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - f0).count());
          info->cpu_ms.push_back(std::chrono::duration<double, std::milli>(f1 - f0).count());
        }
        clock.timed_frame_done();
      } else if (headless && clock.next(ui) == HeadlessClock::Step::capture) {
        exit_code = capture(ui, o, fb_w, fb_h, font_px, frames, info);
        break;
      }
      glfwSwapBuffers(win);
    }
  }  // the Ui (threads, textures) goes before the GL context
  shutdown(win);
  return exit_code;
}

}  // namespace cl::viewer
