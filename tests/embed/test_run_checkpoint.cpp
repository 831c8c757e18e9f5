// The embed checkpoint (OUT.partial) round-trips batches with and without a patch section, and a
// torn trailing record is dropped on resume.
#include <doctest/doctest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/test_util.h"
#include "tools/embed/run_checkpoint.h"

using namespace cl;

TEST_CASE("run checkpoint: batches with patches (grid, sizes, patch rows) and without come back as written") {
  test::TempDir t;
  const std::string path = t.file("out.h5.partial");
  const nlohmann::json header = {{"run", 1}};
  embed::BatchResult plain{0, {1, 0, 1}, {"", "missing file", ""}, 2, {1, 2, 3, 4}, 0, 0, {}, {}};
  embed::BatchResult spatial{3, {1, 1, 0}, {"", "", "bad"}, 2, {5, 6, 7, 8}, 1, 2, {}, {10, 20, 30, 40}};
  for (int i = 0; i < 2 * 2 * 2; ++i) spatial.patches.push_back(0.5f * i);
  {
    embed::RunCheckpoint c;
    c.start(path, header);
    c.append(plain);
    c.append(spatial);
  }
  std::ofstream(path, std::ios::binary | std::ios::app) << "\x54\x52\x50\x43\x01torn";
  embed::RunCheckpoint c;
  std::vector<embed::BatchResult> done;
  REQUIRE(c.resume(path, header, 3, &done));
  REQUIRE(done.size() == 2);
  CHECK(done[0].rows == plain.rows);
  CHECK(done[0].reasons == plain.reasons);
  CHECK(done[0].grid_h == 0);
  CHECK(done[0].patches.empty());
  CHECK(done[1].grid_h == 1);
  CHECK(done[1].grid_w == 2);
  CHECK(done[1].sizes == spatial.sizes);
  CHECK(done[1].patches == spatial.patches);
  CHECK(done[1].rows == spatial.rows);
}
