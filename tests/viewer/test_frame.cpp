// The viewer library links ImGui and lays out a panel headlessly; longer text draws more.
#include <doctest/doctest.h>

#include "viewer/frame.h"

TEST_CASE("viewer: headless ImGui frame lays out text") {
  CHECK(!cl::viewer::imgui_version().empty());
  auto small = cl::viewer::render_text_panel_headless("Panel", "abc", 640, 480);
  auto big = cl::viewer::render_text_panel_headless("Panel", "abcdefghijklmnopqrstuvwxyz 0123456789", 640, 480);
  CHECK(small.n_vertices > 0);
  CHECK(big.n_vertices > small.n_vertices);
}
