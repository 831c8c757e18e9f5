// Shard layout: the shards of any input list partition it (every position exactly once, each
// shard in input order, in blocks), and shard specs parse or fail as documented.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/embeddings.h"
#include "core/error.h"
#include "tools/embed/shard.h"
#include "tests/test_util.h"

using namespace cl;

TEST_CASE("shard positions: N shards partition the inputs in blocks, each in input order") {
  for (int64_t n : {0, 1, 7, 23, 100}) {
    for (int64_t block : {1, 4, 1024}) {
      for (int64_t count : {1, 2, 3, 7}) {
        CAPTURE(n);
        CAPTURE(block);
        CAPTURE(count);
        std::vector<int64_t> all;
        for (int64_t i = 0; i < count; ++i) {
          const auto pos = embed::shard_positions(n, {i, count}, block);
          CHECK(std::is_sorted(pos.begin(), pos.end()));
          for (int64_t p : pos) CHECK((p / block) % count == i);
          all.insert(all.end(), pos.begin(), pos.end());
        }
        std::sort(all.begin(), all.end());
        REQUIRE(static_cast<int64_t>(all.size()) == n);
        for (int64_t i = 0; i < n; ++i) CHECK(all[static_cast<size_t>(i)] == i);
      }
    }
  }
  CHECK(embed::shard_positions(10, {1, 3}, 2) == std::vector<int64_t>{2, 3, 8, 9});
}

TEST_CASE("shard specs: I/N with 0 <= I < N, anything else is a usage error") {
  CHECK(embed::parse_shard("").count == 1);
  const auto s = embed::parse_shard("2/5");
  CHECK(s.index == 2);
  CHECK(s.count == 5);
  for (const char* bad : {"5/5", "-1/5", "1/0", "1", "a/b", "1/2/3", "/2", "1/", " 1/2", "99999999999999999999/2"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(embed::parse_shard(bad), UsageError);
  }
}

TEST_CASE("merge-embeddings refuses a part whose layout claims more inputs than it holds, without allocating them") {
  test::TempDir tmp;
  // Two well-formed halves of 200 inputs in blocks of 50, except that part 0 claims 10^18 inputs.
  std::vector<std::string> parts;
  for (int64_t index : {0, 1}) {
    Embeddings e;
    e.n = 100;
    e.dim = 4;
    e.data.assign(400, 0.25f);
    for (int64_t i = 0; i < 100; ++i) e.ids.push_back("p" + std::to_string(index) + "_" + std::to_string(i));
    const int64_t n_inputs = index == 0 ? int64_t{1000000000000000000} : 200;
    nlohmann::json cfg = {{"shard", {{"index", index}, {"count", 2}, {"block", 50}, {"n_inputs", n_inputs},
                                     {"block_rows", {50, 50}}}}};
    parts.push_back(tmp.file("part" + std::to_string(index) + ".h5"));
    EmbeddingsWriter w(parts.back(), 4, cfg);
    w.append(e.data.data(), e.n, e.ids);
    w.commit();
  }
  CHECK_THROWS_WITH_AS(embed::merge_embeddings(parts, tmp.file("out.h5")),
                       doctest::Contains("'shard' layout (2 blocks, 100 rows) does not match"), InputError);
  CHECK_FALSE(std::filesystem::exists(tmp.file("out.h5")));
}
