// The viewer's GUI state shared by the panels: the loaded model, the selection, the edit set,
// the worker, thumbnails and textures. Panels (one file each, panel_<name>.cpp) are functions
// over it; nothing here runs heavy work on the frame thread.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <imgui.h>

#include "core/device.h"
#include "explain/contrib.h"
#include "explain/experiment.h"
#include "explain/rules.h"
#include "viewer/model/intervention_session.h"
#include "viewer/model/jobs.h"
#include "viewer/model/latent_table.h"
#include "viewer/model/overlays.h"
#include "viewer/model/query.h"
#include "viewer/model/thumbnails.h"
#include "viewer/model/workspace_model.h"

namespace cl::viewer {

enum class Panel { overview, latents, latent, global, image, intervene, subgroups, curves, problems };
// The one name table, in enum order (--panel, screenshots, logs).
inline constexpr std::array<const char*, 9> kPanelNames = {"overview", "latents",   "latent", "global",  "image",
                                                           "intervene", "subgroups", "curves", "problems"};
static_assert(static_cast<size_t>(Panel::problems) + 1 == kPanelNames.size(), "one name per Panel");
const char* panel_name(Panel p);                 // "overview", ...
std::optional<Panel> parse_panel(const std::string& s);
std::string panel_choices();                     // "overview|latents|..."

// GL textures of decoded thumbnails, by image path (uploaded on the frame thread).
class TextureCache {
 public:
  ~TextureCache();
  struct Entry {
    unsigned int id = 0;
    int width = 0, height = 0;
    std::string error;
  };
  // nullptr until decoded; requests the decode on first use.
  const Entry* get(ThumbnailLoader& loader, const std::string& path);
  // The same for a derived picture: make() runs on the loader's threads.
  const Entry* get(ThumbnailLoader& loader, const std::string& key, std::function<Thumbnail()> make);
  const Entry* find(const std::string& key) const;  // nullptr when not decoded; requests nothing
  void upload_ready(ThumbnailLoader& loader);  // once per frame
  // Keeps at most max_entries textures, dropping those drawn longest ago (never one drawn in the
  // last frame); the loader may then make a dropped one again.
  void trim(ThumbnailLoader& loader, size_t max_entries);
  size_t size() const { return entries_.size(); }

 private:
  std::unordered_map<std::string, Entry> entries_;
  std::unordered_map<std::string, uint64_t> last_drawn_;  // key -> frame, for trim
  uint64_t frame_ = 0;
};

// One editable row of the intervention panel.
struct EditRow {
  bool enabled = true;
  explain::LatentEdit edit;
};

struct Ui {
  std::unique_ptr<WorkspaceModel> model;
  std::unique_ptr<InterventionSession> session;
  std::unique_ptr<LiveEvaluator> live;
  JobRunner jobs;
  ThumbnailLoader thumbs{3, 128};
  ThumbnailLoader large{1, 512};
  TextureCache thumb_tex, large_tex;
  Device device{c10::kCPU};

  Panel panel = Panel::overview;
  std::vector<Panel> history;      // Esc goes back
  int64_t selected_latent = -1;
  int64_t selected_image = -1;     // activations row
  std::optional<LatentDetail> latent_detail;
  bool latent_detail_pending = false;
  std::optional<ImageDetail> image_detail;

  // Latent browser.
  LatentFilter filter;
  std::vector<int64_t> visible;    // filtered + sorted latents
  bool table_dirty = true;
  bool focus_search = false;
  char search[128] = "";
  char rename_buf[128] = "";
  int64_t grid_limit = 64;         // top images shown in the latent detail (grows on scroll)

  // Global explanations (computed once after load).
  std::vector<explain::ClassGlobal> global;
  bool global_by_contribution = false;

  // Interventions.
  std::vector<EditRow> edits;
  uint64_t edits_version = 0, posted_version = ~0ull;
  int64_t posted_image = -2;
  std::optional<explain::InterventionReport> full_report;
  uint64_t full_report_version = ~0ull;
  std::string edits_path;          // where Save/Load go
  std::string status_line;
  char concept_buf[64] = "";
  int rule_top_n = 3;
  explain::Rule rule_by = explain::Rule::named;
  char edits_path_buf[512] = "";   // the Save/Load path being typed

  // Subgroups (linked view).
  std::string group_column, group_value;
  std::optional<GroupView> group;

  // Heatmap overlays (with patch activations): one switch for the latent and image panels. The
  // slider moves overlay_pct; overlays use overlay_pct_applied, set when the slider is let go,
  // so a drag does not queue every tile at every step.
  bool overlay_on = false;
  OverlayKind overlay_kind = OverlayKind::latent;  // the image panel's choice
  int overlay_pct = int(default_overlay_opacity() * 100 + 0.5), overlay_pct_applied = overlay_pct;
  ThumbnailLoader overlay_thumbs{2, 128};
  ThumbnailLoader overlay_large{1, 512};
  TextureCache overlay_tex, overlay_large_tex;
  std::optional<PatchListing> patch_listing;  // the image panel's click
  std::future<std::function<void()>> patch_open;  // opening the patch activations (its result, run on the frame thread)
  // The spec the panels draw for a latent's map, or for the image panel's choice.
  OverlaySpec overlay_spec(OverlayKind kind, int64_t latent) const;

  // Query by example.
  char query_path[512] = "";
  std::optional<QueryResult> query;

  std::string last_error;
  float ui_scale = 1.0f;
  int tiles_drawn = 0;             // textured image tiles drawn this frame (bench)
  int64_t bench_scroll = -1;       // bench: scroll the latent table to this row

  void go(Panel p);
  void back();
  void select_latent(int64_t j, bool open = true);
  void select_image(int64_t row, bool open = true);
  std::vector<explain::LatentEdit> active_edits() const;
  void edits_changed() { ++edits_version; }
  void add_edit(int64_t latent, explain::EditOp op = explain::EditOp::zero, double value = 0);
  // When nothing is selected yet: the classifier's most important latent and the first evaluated
  // image, so the Latent and Image panels never open blank.
  void select_defaults();
  bool busy() const;               // jobs, thumbnails or live evaluation still working
  void on_model_loaded();          // derived state: table, global, session, curves
  void open_patch_activations();   // on patch_open's thread; the overlays' controls appear when done
  void take_patch_activations();   // frame thread: installs them (or the problem) once opened
  void ensure_concept_directions();
  bool directions_requested = false;
};

// Shared widgets.
std::string latent_label(const Ui& ui, int64_t j);     // "#12 hair" or "#12"
void help_marker(const char* text);                     // "(?)" with a tooltip
void metric_tooltip(const char* metric);                // tooltip explaining how a metric is computed
// Draws the image (or a placeholder) in a w x h box; returns true when clicked.
bool image_tile(Ui& ui, const std::string& path, float w, float h, bool large = false);
// Where a tile's picture landed on screen (drawn false while it is loading or missing).
struct TileRect {
  bool drawn = false;
  ImVec2 min, max;
};
// The image of an activations row, under the overlay when one is given and the workspace has
// patch activations (the plain image, when already decoded, stands in while it is computed).
bool row_tile(Ui& ui, int64_t row, float w, float h, bool large = false, const OverlaySpec* overlay = nullptr,
              TileRect* drawn = nullptr);
// The "Overlay" checkbox and opacity slider (shared by the panels); nothing without patches.
void overlay_controls(Ui& ui);
// Horizontal bars for (label, value); returns the index clicked or -1.
int bar_chart(const char* id, const std::vector<std::pair<std::string, double>>& bars, float width, float bar_h);

// The intervention experiment with intervals and the random control, on the worker thread.
void run_full_experiment(Ui& ui);

void draw_overview(Ui& ui);
void draw_latents(Ui& ui);
void draw_latent(Ui& ui);
void draw_global(Ui& ui);
void draw_image(Ui& ui);
void draw_intervene(Ui& ui);
void draw_subgroups(Ui& ui);
void draw_curves(Ui& ui);
void draw_problems(Ui& ui);

}  // namespace cl::viewer
