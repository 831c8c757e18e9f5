// Ui state transitions (selection, history, edits, derived state after loading), the texture
// cache and the small widgets the panels share.
#include "viewer/ui.h"

#include "core/workspace_layout.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>

#include <GL/gl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/csv.h"
#include "core/error.h"
#include "core/parse.h"

namespace cl::viewer {

const char* panel_name(Panel p) {
  const auto i = static_cast<size_t>(p);
  CL_ASSERT(i < kPanelNames.size(), "a Panel without a name");
  return kPanelNames[i];
}

std::optional<Panel> parse_panel(const std::string& s) {
  for (size_t i = 0; i < kPanelNames.size(); ++i)
    if (s == kPanelNames[i]) return static_cast<Panel>(i);
  return std::nullopt;
}

std::string panel_choices() {
  std::string s;
  for (const char* n : kPanelNames) s += (s.empty() ? "" : "|") + std::string(n);
  return s;
}

// ---------------------------------------------------------------------------------------------

TextureCache::~TextureCache() {
  for (auto& [path, e] : entries_)
    if (e.id) glDeleteTextures(1, &e.id);
}

const TextureCache::Entry* TextureCache::get(ThumbnailLoader& loader, const std::string& path) {
  last_drawn_[path] = frame_;
  const auto it = entries_.find(path);
  if (it != entries_.end()) return &it->second;
  loader.request(path);
  return nullptr;
}

const TextureCache::Entry* TextureCache::get(ThumbnailLoader& loader, const std::string& key,
                                             std::function<Thumbnail()> make) {
  last_drawn_[key] = frame_;
  const auto it = entries_.find(key);
  if (it != entries_.end()) return &it->second;
  loader.request(key, std::move(make));
  return nullptr;
}

const TextureCache::Entry* TextureCache::find(const std::string& key) const {
  const auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

void TextureCache::trim(ThumbnailLoader& loader, size_t max_entries) {
  if (entries_.size() <= max_entries) return;
  std::vector<std::pair<uint64_t, std::string>> by_age;
  for (const auto& [key, e] : entries_) {
    const auto it = last_drawn_.find(key);
    const uint64_t f = it == last_drawn_.end() ? 0 : it->second;
    if (f + 1 < frame_) by_age.emplace_back(f, key);  // those drawn in the last frame are on screen
  }
  std::sort(by_age.begin(), by_age.end());
  // Down to three quarters, so a full cache is not trimmed again every frame.
  const size_t target = max_entries * 3 / 4;
  for (size_t i = 0; i < by_age.size() && entries_.size() > target; ++i) {
    const std::string& key = by_age[i].second;
    if (entries_[key].id) glDeleteTextures(1, &entries_[key].id);
    entries_.erase(key);
    last_drawn_.erase(key);
    loader.forget(key);
  }
}

void TextureCache::upload_ready(ThumbnailLoader& loader) {
  ++frame_;
  for (auto& t : loader.take_ready()) {
    Entry e;
    e.error = t.error;
    if (t.error.empty()) {
      glGenTextures(1, &e.id);
      glBindTexture(GL_TEXTURE_2D, e.id);
      glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_LINEAR);
      glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_LINEAR);
      glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
      glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
      glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
      glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA, t.width, t.height, 0, GL_RGBA, GL_UNSIGNED_BYTE, t.rgba.data());
      e.width = t.width, e.height = t.height;
    }
    entries_[t.path] = e;
  }
}

// ---------------------------------------------------------------------------------------------

void Ui::go(Panel p) {
  if (p == panel) return;
  history.push_back(panel);
  if (history.size() > 64) history.erase(history.begin());
  panel = p;
}

void Ui::back() {
  if (history.empty()) return;
  panel = history.back();
  history.pop_back();
}

void Ui::select_latent(int64_t j, bool open) {
  if (!model || j < 0 || j >= model->n_latents()) return;
  if (j != selected_latent || !latent_detail) {
    selected_latent = j;
    grid_limit = 64;
    ensure_concept_directions();  // queued before the detail, which then lists the nearest concepts
    latent_detail.reset();
    latent_detail_pending = true;
    const WorkspaceModel* m = model.get();
    jobs.submit(fmt::format("latent {}", j), [this, m, j](ProgressSink&) -> std::function<void()> {
      auto d = std::make_shared<LatentDetail>(viewer::latent_detail(*m, j));
      return [this, d] {
        if (d->latent == selected_latent) latent_detail = *d, latent_detail_pending = false;
      };
    });
    const auto& r = model->latents[static_cast<size_t>(j)];
    std::snprintf(rename_buf, sizeof(rename_buf), "%s", r.name.c_str());
  }
  if (open) go(Panel::latent);
}

void Ui::select_defaults() {
  if (!model || !model->has_acts()) return;
  // The latent's detail (and the concept directions it lists) is computed when Latent first
  // draws it, not at open: the probes behind the directions take seconds on large sets.
  if (selected_latent < 0) selected_latent = model->default_latent(), latent_detail.reset();
  if (selected_image < 0 && model->n_images() > 0) {
    // The first evaluated image when there is an eval set (its probabilities move with edits).
    const bool eval = model->has_labels() && !model->labelled->eval.rows.empty();
    select_image(eval ? model->acts_row_of_labelled[static_cast<size_t>(model->labelled->eval.rows[0])] : 0, false);
  }
}

void Ui::select_image(int64_t row, bool open) {
  if (!model || row < 0 || row >= model->n_images()) return;
  if (row != selected_image) patch_listing.reset();
  selected_image = row;
  image_detail = viewer::image_detail(*model, row);
  if (open) go(Panel::image);
}

std::vector<explain::LatentEdit> Ui::active_edits() const {
  std::vector<explain::LatentEdit> out;
  for (const auto& e : edits)
    if (e.enabled) out.push_back(e.edit);
  return out;
}

void Ui::add_edit(int64_t latent, explain::EditOp op, double value) {
  for (const auto& e : edits)
    if (e.edit.latent == latent) return;
  edits.push_back({true, {latent, op, value}});
  edits_changed();
}

bool Ui::busy() const {
  return !jobs.idle() || !thumbs.idle() || !large.idle() || !overlay_thumbs.idle() || !overlay_large.idle() ||
         (live && !live->idle()) || latent_detail_pending || patch_open.valid();
}

OverlaySpec Ui::overlay_spec(OverlayKind kind, int64_t latent) const {
  OverlaySpec s;
  s.kind = kind;
  s.latent = latent;
  s.opacity = overlay_pct_applied / 100.0;
  return s;
}

void Ui::on_model_loaded() {
  table_dirty = true;
  global.clear();
  if (model->has_cbm() && model->has_labels()) {
    const auto& L = *model->labelled;
    global = explain::global_explanations(model->cbm, model->classes(), L.data.X, L.data.y, 15);
  }
  live.reset();
  session.reset();
  if (model->has_cbm() && model->has_labels()) {
    try {
      session = std::make_unique<InterventionSession>(*model);
      live = std::make_unique<LiveEvaluator>(*session);
      group_column = model->paths.subgroup_col;
    } catch (const std::exception& e) {
      model->issues.push_back({model->paths.cbm, e.what()});
      spdlog::warn("{}: {}", model->paths.cbm, e.what());
    }
  }
  if (edits_path.empty() && !model->paths.dir.empty()) edits_path = model->paths.dir + "/" + workspace::kEdits;
  open_patch_activations();
}

void Ui::open_patch_activations() {
  if (!model->wants_patches()) return;
  // On a thread of its own, not the worker: a patch file's (image, patch) row ids take seconds to
  // read for a large set (6 s for 100,000 images x 49 patches), and the latent details queued
  // meanwhile should not wait behind them. The overlays' controls appear when they are in.
  const WorkspaceModel* m = model.get();
  patch_open = std::async(std::launch::async, [this, m]() -> std::function<void()> {
    try {
      auto p = std::make_shared<PatchActivations>(m->open_patch_activations());
      return [this, p] { model->set_patch_activations(std::move(*p)); };
    } catch (const std::exception& e) {
      const LoadIssue issue = load_issue(m->paths.patch_activations, e);
      return [this, issue] {
        model->issues.push_back(issue);
        spdlog::warn("{}: {}", issue.file, issue.message);
      };
    }
  });
}

void Ui::take_patch_activations() {
  if (!patch_open.valid() || patch_open.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return;
  patch_open.get()();
}

void Ui::ensure_concept_directions() {
  if (directions_requested || !model || !model->sae) return;
  directions_requested = true;
  // Fitting a probe per annotated column on the embeddings: seconds, on the worker, once, and
  // only when a latent page first asks for the nearest concepts.
  WorkspaceModel* m = model.get();
  jobs.submit("concept directions", [m](ProgressSink& s) -> std::function<void()> {
    auto issue = m->compute_concept_directions(s);
    if (!issue) return {};
    return [m, issue] {
      m->issues.push_back(*issue);
      spdlog::warn("{}: {}", issue->file, issue->message);
    };
  });
}

// ---------------------------------------------------------------------------------------------

std::string latent_label(const Ui& ui, int64_t j) {
  if (!ui.model || j < 0 || j >= ui.model->n_latents()) return fmt::format("#{}", j);
  const auto& r = ui.model->latents[static_cast<size_t>(j)];
  return r.name.empty() ? fmt::format("#{}", j) : fmt::format("#{} {}", j, r.name);
}

void help_marker(const char* text) {
  ImGui::SameLine();
  ImGui::TextDisabled("(?)");
  if (ImGui::IsItemHovered()) {
    ImGui::BeginTooltip();
    ImGui::PushTextWrapPos(ImGui::GetFontSize() * 32.0f);
    ImGui::TextUnformatted(text);
    ImGui::PopTextWrapPos();
    ImGui::EndTooltip();
  }
}

void metric_tooltip(const char* metric) {
  if (!ImGui::IsItemHovered()) return;
  static const std::map<std::string, const char*> tips = {
      {"AUROC", "Area under the ROC curve of the predicted probability (one-vs-rest, macro-averaged for more than two "
                "classes), ties counted as half. 0.5 = chance."},
      {"accuracy", "Share of images whose most probable class is their label."},
      {"balanced accuracy", "Mean over classes of the share of that class's images predicted correctly (recall)."},
      {"worst-group accuracy", "The lowest accuracy over the subgroups (subgroup value x label) with at least one image."},
      {"flipped", "Images whose predicted class changes when the edits are applied."},
      {"FVU", "Fraction of variance unexplained: sum of squared reconstruction errors / total variance of the embeddings."},
      {"L0", "Mean number of latents active (non-zero) per image."},
      {"dead", "Share of latents that never fired over the last dead_window training images."},
      {"firing rate", "Share of images on which the latent is non-zero."},
      {"mean", "Mean activation over all images, zeros included."},
      {"max", "Largest activation over all images."},
      {"weight", "The CBM's weight of this latent for a class (binary models: the positive class; the other is its negation)."},
      {"rank", "Importance in the CBM: 1 = largest |weight| over classes; 0 = weight zero (not used)."},
      {"score", "Of the name: AUROC of the latent against the annotated column (annotation), cosine of its decoder "
                "direction with the concept vector (direction); none for names typed by a person (user)."},
      {"random control", "The same edits applied to as many latents drawn at random from those the CBM uses, over "
                         "several seeds: mean and 95% interval of the AUROC after."},
      {"lift", "Mean activation inside the group minus mean activation outside it (evaluated images)."},
      {"contribution", "Activation x weight: how much the latent moves the class logit on this image."},
      {"cosine", "Cosine between the latent's decoder row and a concept direction in embedding space."},
  };
  const auto it = tips.find(metric);
  if (it == tips.end()) return;
  ImGui::BeginTooltip();
  ImGui::PushTextWrapPos(ImGui::GetFontSize() * 32.0f);
  ImGui::TextUnformatted(it->second);
  ImGui::PopTextWrapPos();
  ImGui::EndTooltip();
}

namespace {

// The tile's box at p0 with the texture fitted in it (or why there is none); returns where the
// picture landed.
TileRect draw_tile(Ui& ui, const TextureCache::Entry* e, const char* missing, ImVec2 p0, float w, float h) {
  ImDrawList* dl = ImGui::GetWindowDrawList();
  TileRect r;
  dl->AddRectFilled(p0, ImVec2(p0.x + w, p0.y + h), IM_COL32(40, 40, 46, 255));
  if (e && e->id) {
    const float s = std::min(w / float(e->width), h / float(e->height));
    const float dw = e->width * s, dh = e->height * s;
    r = {true, ImVec2(p0.x + (w - dw) / 2, p0.y + (h - dh) / 2), ImVec2(p0.x + (w + dw) / 2, p0.y + (h + dh) / 2)};
    dl->AddImage(reinterpret_cast<ImTextureID>(static_cast<intptr_t>(e->id)), r.min, r.max);
    ++ui.tiles_drawn;
  } else {
    const char* msg = e && !e->error.empty() ? e->error.c_str() : missing;
    dl->AddText(ImVec2(p0.x + 6, p0.y + h / 2 - ImGui::GetFontSize() / 2), IM_COL32(150, 150, 160, 255), msg);
  }
  if (ImGui::IsItemHovered()) dl->AddRect(p0, ImVec2(p0.x + w, p0.y + h), IM_COL32(255, 200, 80, 255), 0, 0, 2.0f);
  return r;
}

}  // namespace

bool image_tile(Ui& ui, const std::string& path, float w, float h, bool large) {
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  const bool clicked = ImGui::InvisibleButton(("##tile" + path).c_str(), ImVec2(w, h));
  // Only tiles on screen ask for a decode: scrolling loads what comes into view.
  const bool visible = ImGui::IsItemVisible();
  const TextureCache::Entry* e = nullptr;
  if (!path.empty() && visible) e = large ? ui.large_tex.get(ui.large, path) : ui.thumb_tex.get(ui.thumbs, path);
  draw_tile(ui, e, path.empty() ? "no image" : "loading", p0, w, h);
  return clicked;
}

bool row_tile(Ui& ui, int64_t row, float w, float h, bool large, const OverlaySpec* overlay, TileRect* drawn) {
  const WorkspaceModel* m = ui.model.get();
  const std::string path = m->image_path(row);
  const bool over = overlay && m->patch_image(row) >= 0;
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  const bool clicked = ImGui::InvisibleButton(fmt::format("##row{}", row).c_str(), ImVec2(w, h));
  const TextureCache::Entry* e = nullptr;
  // Only tiles on screen ask for a picture: scrolling loads what comes into view.
  if (ImGui::IsItemVisible()) {
    TextureCache& plain_tex = large ? ui.large_tex : ui.thumb_tex;
    if (over) {
      const OverlaySpec s = *overlay;
      ThumbnailLoader& loader = large ? ui.overlay_large : ui.overlay_thumbs;
      const int size = loader.size();
      // The model outlives the loaders (Ui declares it first), so their threads may hold it.
      e = (large ? ui.overlay_large_tex : ui.overlay_tex)
              .get(loader, overlay_key(row, s), [m, row, s, size] { return overlay_thumbnail(*m, row, s, size); });
      if (!e || !e->id) {  // while it is computed: the plain image, when that is already here
        const TextureCache::Entry* plain = plain_tex.find(path);
        if (plain && plain->id) e = plain;
      }
    } else if (!path.empty()) {
      e = plain_tex.get(large ? ui.large : ui.thumbs, path);
    }
  }
  const TileRect r = draw_tile(ui, e, !over && path.empty() ? "no image" : "loading", p0, w, h);
  if (drawn) *drawn = r;
  return clicked;
}

void overlay_controls(Ui& ui) {
  if (!ui.model || !ui.model->has_patches()) return;
  ImGui::Checkbox("Overlay", &ui.overlay_on);
  help_marker("Heatmaps from the workspace's patch activations: where on each image the latent fires (or, on the "
              "image panel, where the class logit gets its evidence), upsampled over the part of the image the "
              "encoder saw, inferno colours scaled to each image's own maximum.");
  ImGui::SameLine();
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 7);
  ImGui::SliderInt("opacity", &ui.overlay_pct, 0, 100, "%d%%");
  if (ImGui::IsItemDeactivatedAfterEdit()) ui.overlay_pct_applied = ui.overlay_pct;
}

int bar_chart(const char* id, const std::vector<std::pair<std::string, double>>& bars, float width, float bar_h) {
  int clicked = -1;
  if (bars.empty()) return clicked;
  double lo = 0, hi = 0;
  for (const auto& b : bars) lo = std::min(lo, b.second), hi = std::max(hi, b.second);
  const double span = std::max(hi - lo, 1e-12);
  float label_w = 0;
  for (const auto& b : bars) label_w = std::max(label_w, ImGui::CalcTextSize(b.first.c_str()).x);
  label_w = std::min(label_w + 12, width * 0.45f);
  const float value_w = ImGui::CalcTextSize("-0.0000").x + 10;
  const float plot_w = std::max(40.0f, width - label_w - value_w);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  ImGui::PushID(id);
  for (size_t i = 0; i < bars.size(); ++i) {
    const ImVec2 p = ImGui::GetCursorScreenPos();
    ImGui::PushID(static_cast<int>(i));
    if (ImGui::InvisibleButton("bar", ImVec2(width, bar_h))) clicked = static_cast<int>(i);
    const bool hovered = ImGui::IsItemHovered();
    ImGui::PopID();
    const float x0 = p.x + label_w + float((0 - lo) / span) * plot_w;
    const float x1 = p.x + label_w + float((bars[i].second - lo) / span) * plot_w;
    const ImU32 col = bars[i].second >= 0 ? IM_COL32(66, 135, 245, 255) : IM_COL32(220, 80, 70, 255);
    if (hovered) dl->AddRectFilled(p, ImVec2(p.x + width, p.y + bar_h), IM_COL32(255, 255, 255, 20));
    dl->AddRectFilled(ImVec2(std::min(x0, x1), p.y + 2), ImVec2(std::max(x0, x1) + 1, p.y + bar_h - 2), col);
    dl->AddText(ImVec2(p.x, p.y + (bar_h - ImGui::GetFontSize()) / 2), ImGui::GetColorU32(ImGuiCol_Text),
                bars[i].first.c_str());
    const std::string v = fmt::format("{:.4g}", bars[i].second);
    dl->AddText(ImVec2(p.x + label_w + plot_w + 6, p.y + (bar_h - ImGui::GetFontSize()) / 2),
                ImGui::GetColorU32(ImGuiCol_Text), v.c_str());
  }
  ImGui::PopID();
  return clicked;
}

}  // namespace cl::viewer
