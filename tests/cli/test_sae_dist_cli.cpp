// `conceptlab sae train` data-parallel, as torchrun or Slurm would start it: separate processes
// with RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT (Gloo, a TCP store on localhost, or a file
// store): the result against one process with the same global batch, a run killed mid-way and
// resumed on every rank, and the messages of ranks that disagree or fail. Skips without Gloo.
#include "tests/torch_doctest.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/embeddings.h"
#include "core/sae_weights.h"
#include "sae/dist.h"
#include "tests/sae/sae_test_data.h"
#include "tests/test_util.h"

using namespace cl;

namespace {

std::string quote(const std::string& s) { return "'" + s + "'"; }

std::string command_line(const std::vector<std::string>& args) {
  std::string c = quote(CONCEPTLAB_BIN);
  for (const auto& a : args) c += " " + quote(a);
  return c;
}

struct Rank {
  int code = -1;
  std::string out, err;
};

// Starts one process per entry of args_per_rank (rank = index) with torchrun's variables and
// waits for all of them.
std::vector<Rank> run_ranks(const test::TempDir& tmp, const std::vector<std::vector<std::string>>& args_per_rank) {
  const int world = static_cast<int>(args_per_rank.size()), port = test::free_tcp_port();
  std::string script;
  for (int r = 0; r < world; ++r)
    script += fmt::format("(RANK={0} WORLD_SIZE={1} LOCAL_RANK={0} MASTER_ADDR=127.0.0.1 MASTER_PORT={2} {3} > {4} 2> {5}; "
                          "echo $? > {6}) &\n",
                          r, world, port, command_line(args_per_rank[static_cast<size_t>(r)]),
                          quote(tmp.file(fmt::format("out{}", r))), quote(tmp.file(fmt::format("err{}", r))),
                          quote(tmp.file(fmt::format("rc{}", r))));
  script += "wait\n";
  test::run_program("/bin/sh", {"-c", script});
  std::vector<Rank> res(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r) {
    auto& x = res[static_cast<size_t>(r)];
    x.code = std::stoi(test::read_text(tmp.file(fmt::format("rc{}", r))));
    x.out = test::read_text(tmp.file(fmt::format("out{}", r)));
    x.err = test::read_text(tmp.file(fmt::format("err{}", r)));
  }
  return res;
}

double max_abs_diff(const SaeWeights& a, const SaeWeights& b) {
  double m = 0;
  auto cmp = [&](const std::vector<float>& x, const std::vector<float>& y) {
    REQUIRE(x.size() == y.size());
    for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(static_cast<double>(x[i]) - y[i]));
  };
  cmp(a.W_enc, b.W_enc);
  cmp(a.b_enc, b.b_enc);
  cmp(a.W_dec, b.W_dec);
  cmp(a.b_dec, b.b_dec);
  return m;
}

std::string write_data(const test::TempDir& tmp, int64_t n, int64_t d) {
  const auto path = tmp.file("e.h5");
  test::write_ground_truth_embeddings(path, n, d, 24, 3);
  return path;
}

std::vector<std::string> train_args(const std::string& emb, const std::string& out, int epochs) {
  return {"-q", "sae", "train", "--embeddings", emb, "--out", out, "--arch", "batchtopk", "--k", "4", "--expansion",
          "4", "--epochs", std::to_string(epochs), "--batch", "64", "--seed", "7", "--device", "cpu",
          "--checkpoint-every", "1"};
}

}  // namespace

TEST_CASE("sae train --dist: 2 processes equal 1 with the same global batch, and a killed run resumes") {
  if (!sae::dist_available(torch::Device(torch::kCPU))) {
    MESSAGE("skipped: no c10d backend in this build");
    return;
  }
  test::TempDir tmp;
  const auto emb = write_data(tmp, 600, 16);
  const auto one = tmp.file("one.h5"), two = tmp.file("two.h5");
  auto r = test::run_cli(train_args(emb, one, 40));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);

  // torchrun's way: env:// (TCP store served by rank 0).
  auto ranks = run_ranks(tmp, {train_args(emb, two, 40), train_args(emb, two, 40)});
  for (auto& k : ranks) {
    INFO(k.err);
    REQUIRE(k.code == 0);
  }
  const auto w1 = read_sae(one), w2 = read_sae(two);
  const double diff = max_abs_diff(w1, w2);
  MESSAGE("2 processes vs 1, 40 epochs of batch 64 (batchtopk): max |w_2 - w_1| = " << diff
                                                                                     << ", thresholds " << w2.threshold
                                                                                     << " vs " << w1.threshold);
  CHECK(diff < 1e-5);
  CHECK(w2.threshold == doctest::Approx(w1.threshold).epsilon(1e-5));
  CHECK(w2.config["world_size"].get<int>() == 2);
  CHECK(w2.metrics["fvu"].get<double>() == doctest::Approx(w1.metrics["fvu"].get<double>()).epsilon(1e-5));
  CHECK(test::read_text(two + ".log.jsonl").size() > 0);

  // A run killed after its first checkpoint (rank 1 killed; rank 0 stops with a message), then
  // resumed on both ranks through a file store, ends where the uninterrupted run ends.
  const auto killed = tmp.file("killed.h5");
  const int epochs = 200;
  auto a0 = train_args(emb, killed, epochs), a1 = a0;
  for (auto* a : {&a0, &a1}) a->insert(a->end(), {"--dist-init", "file://" + tmp.file("store1")});
  const std::string script = fmt::format(
      "RANK=1 WORLD_SIZE=2 {1} > /dev/null 2>&1 & P1=$!\n"
      "RANK=0 WORLD_SIZE=2 {0} > /dev/null 2> {2} & P0=$!\n"
      "i=0; while [ ! -f {3} ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n"
      "kill -9 $P1; wait $P0; echo $? > {4}; wait $P1\n",
      command_line(a0), command_line(a1), quote(tmp.file("kerr0")), quote(killed + ".ckpt"), quote(tmp.file("krc0")));
  test::run_program("/bin/sh", {"-c", script});
  const std::string kerr = test::read_text(tmp.file("kerr0"));
  INFO(kerr);
  CHECK(std::stoi(test::read_text(tmp.file("krc0"))) == 1);
  CHECK(kerr.find("another rank stopped") != std::string::npos);
  CHECK(kerr.find("--resume") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(killed));
  REQUIRE(std::filesystem::exists(killed + ".ckpt"));

  auto uninterrupted = tmp.file("full.h5");
  ranks = run_ranks(tmp, {train_args(emb, uninterrupted, epochs), train_args(emb, uninterrupted, epochs)});
  for (auto& k : ranks) REQUIRE(k.code == 0);
  for (auto* a : {&a0, &a1}) {
    a->back() = "file://" + tmp.file("store2");  // a fresh store file per run
    a->insert(a->end(), {"--resume", killed + ".ckpt"});
  }
  ranks = run_ranks(tmp, {a0, a1});
  for (auto& k : ranks) {
    INFO(k.err);
    REQUIRE(k.code == 0);
  }
  const auto wk = read_sae(killed), wf = read_sae(uninterrupted);
  CHECK(max_abs_diff(wk, wf) == 0.0);  // bitwise: the checkpoint holds the whole state
  CHECK(wk.threshold == wf.threshold);
  CHECK(wk.metrics["epochs_trained"].get<int>() == epochs);
}

TEST_CASE("sae train --dist: ranks with other inputs or options, bad variables, and a failing rank") {
  if (!sae::dist_available(torch::Device(torch::kCPU))) return;
  test::TempDir tmp;
  const auto emb = write_data(tmp, 200, 8);
  const auto out = tmp.file("s.h5");
  auto a0 = train_args(emb, out, 2), a1 = a0;
  a1[std::find(a1.begin(), a1.end(), "--epochs") - a1.begin() + 1] = "3";
  auto ranks = run_ranks(tmp, {a0, a1});
  for (auto& k : ranks) {
    CHECK(k.code == 1);
    CHECK(k.err.find("the ranks disagree on the SAE param 'epochs'") != std::string::npos);
  }
  CHECK_FALSE(std::filesystem::exists(out));

  // Rank 1 cannot read its embeddings: it says why, rank 0 names it, neither waits for the other.
  a1 = a0;
  a1[4] = tmp.file("missing.h5");
  ranks = run_ranks(tmp, {a0, a1});
  CHECK(ranks[1].code == 1);
  CHECK(ranks[1].err.find("missing.h5") != std::string::npos);
  CHECK(ranks[0].code == 1);
  CHECK(ranks[0].err.find("rank(s) 1 failed to open their inputs and outputs") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(out));

  // Rank 1 reads another file of the same shape and ids: the ranks would train on a mix of two.
  test::write_ground_truth_embeddings(tmp.file("other.h5"), 200, 8, 24, 99);
  a1 = a0;
  a1[4] = tmp.file("other.h5");
  ranks = run_ranks(tmp, {a0, a1});
  for (auto& k : ranks) {
    INFO(k.err);
    CHECK(k.code == 1);
    CHECK(k.err.find("ids and first and last rows") != std::string::npos);
  }
  CHECK_FALSE(std::filesystem::exists(out));

  auto r = test::run_program("/bin/sh", {"-c", "RANK=2 WORLD_SIZE=2 " + command_line(a0)});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("RANK='2', expected an integer in [0, 1]") != std::string::npos);
  // What torchrun always sets, missing: refused at once instead of a wait or a clash of two rank 0s.
  r = test::run_program("/bin/sh", {"-c", "unset RANK; WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29999 " +
                                              command_line(a0)});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("WORLD_SIZE=2 but RANK is unset") != std::string::npos);
  r = test::run_program("/bin/sh", {"-c", "unset MASTER_ADDR MASTER_PORT; RANK=0 WORLD_SIZE=2 " + command_line(a0)});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("needs MASTER_ADDR and MASTER_PORT") != std::string::npos);
  auto bad_init = a0;
  bad_init.insert(bad_init.end(), {"--dist", "--dist-init", "nfs://x"});
  r = test::run_cli(bad_init);
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("expected env://, tcp://HOST:PORT or file:///path") != std::string::npos);
  // --dist with one rank (WORLD_SIZE unset) is a group of one: an ordinary run.
  auto solo = a0;
  solo.insert(solo.end(), {"--dist", "--dist-init", "file://" + tmp.file("solo_store")});
  r = test::run_cli(solo);
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(std::filesystem::exists(out));
}
