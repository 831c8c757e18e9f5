// The viewer's windows, rendered headless (`conceptlab view --screenshot`, under xvfb-run when
// there is no display): every panel draws something, panels and selections differ, the text is
// big enough to read, a broken workspace shows the problems panel instead of crashing, and bad
// options are usage errors. Skips (with a message) where neither a display nor xvfb-run exists.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <map>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "tests/test_util.h"
#include "tests/viewer_model/fixture.h"
#include "viewer/model/overlays.h"
#include "viewer/model/workspace_model.h"

namespace fs = std::filesystem;
using namespace cl;

namespace {

const char* kXvfbRun = "/usr/bin/xvfb-run";

bool can_render() { return fs::exists(kXvfbRun) || std::getenv("DISPLAY"); }

test::RunResult view(const std::vector<std::string>& args) {
  std::vector<std::string> a = {"view"};
  a.insert(a.end(), args.begin(), args.end());
  if (std::getenv("DISPLAY") && !fs::exists(kXvfbRun)) return test::run_cli(a);
  std::vector<std::string> x = {"-a", "-s", "-screen 0 1920x1200x24", CONCEPTLAB_BIN};
  x.insert(x.end(), a.begin(), a.end());
  return test::run_program(kXvfbRun, x);
}

cv::Mat shot(const std::string& ws, const std::string& out, const std::vector<std::string>& extra) {
  std::vector<std::string> args = {ws, "--screenshot", out, "--size", "1280x800"};
  args.insert(args.end(), extra.begin(), extra.end());
  const auto r = view(args);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  cv::Mat img = cv::imread(out, cv::IMREAD_COLOR);
  REQUIRE(!img.empty());
  CHECK(img.cols == 1280);
  CHECK(img.rows == 800);
  return img;
}

double difference(const cv::Mat& a, const cv::Mat& b) { return cv::mean(cv::abs(a - b))[0] + cv::mean(cv::abs(b - a))[0]; }

double spread(const cv::Mat& img) {
  cv::Mat gray;
  cv::cvtColor(img, gray, cv::COLOR_BGR2GRAY);
  cv::Scalar mean, stddev;
  cv::meanStdDev(gray, mean, stddev);
  return stddev[0];
}

// Heights in pixels of the text lines in a region: runs of rows holding bright (text) pixels.
std::vector<int> text_line_heights(const cv::Mat& img, cv::Rect region) {
  cv::Mat gray;
  cv::cvtColor(img(region), gray, cv::COLOR_BGR2GRAY);
  std::vector<int> heights;
  int run = 0;
  for (int y = 0; y < gray.rows; ++y) {
    int bright = 0;
    for (int x = 0; x < gray.cols; ++x) bright += gray.at<uint8_t>(y, x) > 140;
    if (bright > 0) ++run;
    else if (run > 0) heights.push_back(run), run = 0;
  }
  if (run > 0) heights.push_back(run);
  return heights;
}

}  // namespace

TEST_CASE("viewer: every panel renders headless, panels and selections differ, text is legible") {
  if (!can_render()) {
    MESSAGE("skipped: no DISPLAY and no xvfb-run (install xvfb)");
    return;
  }
  test::TempDir t;
  const std::string ws = test::make_viewer_workspace(t.path.string());
  const auto m = viewer::WorkspaceModel::load(viewer::WorkspacePaths::from_workspace(ws));
  int64_t grp = -1, c0 = -1;
  for (const auto& r : m->latents) {
    if (r.name == "grp") grp = r.latent;
    if (r.name == "c0") c0 = r.latent;
  }
  REQUIRE(grp >= 0);
  REQUIRE(c0 >= 0);
  const std::string image_id = m->acts.ids[static_cast<size_t>(m->index.rows[static_cast<size_t>(m->index.indptr[grp])])];
  test::write_text(t.file("edits.json"), fmt::format(R"({{"edits": [{{"latent": {}, "op": "zero"}}]}})", grp));

  std::map<std::string, cv::Mat> shots;
  for (const auto& panel : {"overview", "latents", "latent", "global", "image", "intervene", "subgroups", "curves", "problems"}) {
    std::vector<std::string> extra = {"--panel", panel};
    if (std::string(panel) == "latent") extra.insert(extra.end(), {"--select", fmt::format("latent={}", grp)});
    if (std::string(panel) == "image") extra.insert(extra.end(), {"--select", "image=" + image_id});
    if (std::string(panel) == "intervene") extra.insert(extra.end(), {"--edits", t.file("edits.json")});
    shots[panel] = shot(ws, t.file(std::string(panel) + ".png"), extra);
    INFO(panel);
    CHECK(spread(shots[panel]) > 8.0);  // not a blank window
  }
  for (auto a = shots.begin(); a != shots.end(); ++a)
    for (auto b = std::next(a); b != shots.end(); ++b) {
      INFO(a->first << " vs " << b->first);
      CHECK(difference(a->second, b->second) > 0.5);
    }
  // Another latent, another page.
  const cv::Mat other = shot(ws, t.file("latent_c0.png"), {"--panel", "latent", "--select", fmt::format("latent={}", c0)});
  CHECK(difference(other, shots["latent"]) > 0.5);
  // Thumbnails arrived: the latent page holds many distinct colours, not just the UI's greys.
  cv::Mat hsv;
  cv::cvtColor(shots["latent"], hsv, cv::COLOR_BGR2HSV);
  std::vector<cv::Mat> ch;
  cv::split(hsv, ch);
  CHECK(cv::countNonZero(ch[1] > 80) > 5000);  // saturated pixels: the drawn images

  // Legible text: the navigation list's capitals are at least 9 px tall (DejaVu Sans at 16 px
  // measures 10 px here; a 6 px cap height would be unreadable).
  const auto heights = text_line_heights(shots["overview"], cv::Rect(12, 36, 150, 230));
  REQUIRE(heights.size() >= 8);
  std::vector<int> sorted = heights;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted[sorted.size() / 2] >= 9);
  CHECK(sorted[sorted.size() / 2] <= 30);
}

TEST_CASE("viewer: a broken workspace shows the problems panel, bad options are usage errors") {
  if (!can_render()) {
    MESSAGE("skipped: no DISPLAY and no xvfb-run (install xvfb)");
    return;
  }
  test::TempDir t;
  const std::string ws = test::make_viewer_workspace(t.path.string(), 300);
  // Bad options fail before any window opens.
  CHECK(view({ws, "--screenshot", t.file("x.png"), "--panel", "nope"}).exit_code == 2);
  CHECK(view({ws, "--screenshot", t.file("x.png"), "--size", "big"}).exit_code == 2);
  const auto sel = view({ws, "--screenshot", t.file("x.png"), "--select", "latent=99999"});
  CHECK(sel.exit_code == 2);
  CHECK(sel.err.find("99999") != std::string::npos);
  CHECK(view({ws, "--screenshot", ""}).exit_code == 2);  // used to open the interactive window
  CHECK(view({ws, "--screenshot", "/dev/null"}).exit_code == 1);  // a rename would replace the device
  // An edit file with a latent the workspace lacks: exit 1 naming it (used to abort the process).
  test::write_text(t.file("oor.json"), R"({"edits": [{"latent": 16, "op": "zero"}]})");
  const auto oor = view({ws, "--screenshot", t.file("x.png"), "--panel", "intervene", "--edits", t.file("oor.json")});
  CHECK(oor.exit_code == 1);
  CHECK(oor.err.find("oor.json: latent 16") != std::string::npos);
  CHECK(view({ws, "--screenshot", t.file("x.png"), "--edits", t.file("missing.json")}).exit_code == 1);
  const auto none = view({t.file("missing_ws"), "--screenshot", t.file("x.png")});
  CHECK(none.exit_code == 1);
  CHECK(none.err.find("missing_ws") != std::string::npos);
  CHECK_FALSE(fs::exists(t.file("x.png")));

  // Garbage where the activations were: the window opens on the problems panel naming the file.
  test::write_text(ws + "/activations.h5", "garbage");
  const cv::Mat img = shot(ws, t.file("broken.png"), {"--panel", "latents"});
  CHECK(spread(img) > 5.0);
  // A selection on a workspace whose activations are unreadable: the problems panel, exit 0.
  CHECK(view({ws, "--screenshot", t.file("broken3.png"), "--select", "latent=1"}).exit_code == 0);
  const auto r = view({ws, "--screenshot", t.file("broken2.png")});
  CHECK(r.exit_code == 0);
  CHECK(r.err.find("activations.h5") != std::string::npos);
  CHECK(r.err.find("panel problems") != std::string::npos);
}

TEST_CASE("viewer: heatmap overlays change the image and latent panels, and only with patch activations") {
  if (!can_render()) {
    MESSAGE("skipped: no DISPLAY and no xvfb-run (install xvfb)");
    return;
  }
  test::TempDir t;
  const std::string ws = test::make_viewer_workspace(t.path.string(), 300);
  // Without patch activations the option is accepted and draws the plain panel.
  const cv::Mat plain_latent = shot(ws, t.file("latent_plain.png"), {"--panel", "latent"});
  const cv::Mat no_patches = shot(ws, t.file("latent_nopatch.png"), {"--panel", "latent", "--overlay", "latent"});
  CHECK(difference(plain_latent, no_patches) < 0.2);
  CHECK(view({ws, "--screenshot", t.file("x.png"), "--overlay", "nope"}).exit_code == 2);

  test::write_viewer_patches(ws);
  const auto m = viewer::WorkspaceModel::load(viewer::WorkspacePaths::from_workspace(ws));
  REQUIRE(m->has_patches());
  REQUIRE(m->issues.empty());
  // The panels open on the default latent; the image: one of its top images where the class
  // logit's attribution map has positive evidence too, so both overlays draw something.
  const int64_t l = m->default_latent();
  std::string image_id;
  const auto b = static_cast<size_t>(m->index.indptr[static_cast<size_t>(l)]);
  const auto e = static_cast<size_t>(m->index.indptr[static_cast<size_t>(l) + 1]);
  for (size_t i = b; i < e && image_id.empty(); ++i) {
    const int64_t row = m->index.rows[i];
    if (viewer::overlay_vmax(viewer::overlay_map(*m, row, {viewer::OverlayKind::attribution, -1, 0.6})) > 0)
      image_id = m->acts.ids[static_cast<size_t>(row)];
  }
  REQUIRE(!image_id.empty());

  const std::vector<std::string> latent = {"--panel", "latent", "--select", fmt::format("latent={}", l)};
  const std::vector<std::string> image = {"--panel", "image", "--select", "image=" + image_id};
  auto with = [](std::vector<std::string> a, const char* kind) {
    a.insert(a.end(), {"--overlay", kind});
    return a;
  };
  const cv::Mat latent_off = shot(ws, t.file("latent_off.png"), latent);
  const cv::Mat latent_on = shot(ws, t.file("latent_on.png"), with(latent, "latent"));
  const cv::Mat image_off = shot(ws, t.file("image_off.png"), image);
  const cv::Mat image_on = shot(ws, t.file("image_on.png"), with(image, "latent"));
  const cv::Mat image_attr = shot(ws, t.file("image_attr.png"), with(image, "attribution"));
  MESSAGE("mean |difference|: latent panel " << difference(latent_off, latent_on) << ", image panel "
          << difference(image_off, image_on) << " (latent), " << difference(image_off, image_attr) << " (attribution)");
  CHECK(difference(latent_off, latent_on) > 0.5);
  CHECK(difference(image_off, image_on) > 0.5);
  CHECK(difference(image_off, image_attr) > 0.5);
  CHECK(difference(image_on, image_attr) > 0.05);  // the latent's map is not the logit's
  // The overlays are inferno colours: the overlay shots hold more warm, saturated pixels.
  auto warm = [](const cv::Mat& img) {
    cv::Mat hsv;
    cv::cvtColor(img, hsv, cv::COLOR_BGR2HSV);
    cv::Mat mask;
    cv::inRange(hsv, cv::Scalar(0, 120, 120), cv::Scalar(30, 255, 255), mask);  // reds to yellows
    return cv::countNonZero(mask);
  };
  CHECK(warm(latent_on) > warm(latent_off) + 1000);
  CHECK(warm(image_on) > warm(image_off) + 1000);

  // A broken patch file: a problem naming it, the panel drawn as without patches (but for the
  // count in the navigation's "Problems (1)").
  test::write_text(ws + "/activations.patches.h5", "garbage");
  const auto r =
      view({ws, "--screenshot", t.file("broken.png"), "--size", "1280x800", "--panel", "latent", "--overlay", "latent"});
  CHECK(r.exit_code == 0);
  CHECK(r.err.find("activations.patches.h5") != std::string::npos);
  CHECK(difference(cv::imread(t.file("broken.png")), plain_latent) < 0.2);
}
