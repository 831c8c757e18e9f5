// `conceptlab sae ...` end to end through the built binary: train, encode, eval --json,
// import, config handling and the error messages users see.
#include "tests/torch_doctest.h"

#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/activations.h"
#include "core/embeddings.h"
#include "core/sae_weights.h"
#include "tests/sae/sae_test_data.h"
#include "tests/test_util.h"

using namespace cl;

TEST_CASE("sae cli: train, encode, eval --json") {
  test::TempDir tmp;
  const auto emb = tmp.file("e.h5"), sae = tmp.file("s.h5"), acts = tmp.file("a.h5");
  test::write_ground_truth_embeddings(emb, 800, 16, 32, 1);
  auto r = test::run_cli({"-q", "sae", "train", "--embeddings", emb, "--out", sae, "--arch", "topk", "--k", "4",
                          "--expansion", "2", "--epochs", "3", "--batch", "128", "--device", "cpu", "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto tj = nlohmann::json::parse(r.out);
  CHECK(tj["epochs_trained"].get<int64_t>() == 3);
  auto w = read_sae(sae);
  CHECK(w.arch == "topk");
  CHECK(w.k == 4);
  CHECK(w.n_latents == 32);
  CHECK(w.config["epochs"].get<int64_t>() == 3);
  CHECK(std::filesystem::exists(sae + ".log.jsonl"));
  CHECK(std::filesystem::exists(sae + ".ckpt"));

  r = test::run_cli({"-q", "sae", "encode", "--sae", sae, "--embeddings", emb, "--out", acts, "--device", "cpu"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto a = read_activations(acts);
  CHECK(a.acts.n_rows == 800);
  CHECK(a.acts.n_cols == 32);
  CHECK(a.ids.front() == "img_0");
  for (int64_t i = 0; i < a.acts.n_rows; ++i) CHECK(a.acts.indptr[i + 1] - a.acts.indptr[i] <= 4);

  r = test::run_cli({"sae", "eval", "--sae", sae, "--embeddings", emb, "--device", "cpu", "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.out);  // exactly one JSON object: parse fails on trailing text
  CHECK(j.is_object());
  CHECK(j["n"].get<int64_t>() == 800);
  CHECK(j["fvu"].get<double>() == doctest::Approx(tj["fvu"].get<double>()).epsilon(1e-6));
  for (const char* key : {"mse", "fvu", "l0", "l1", "dead_fraction", "decoder_norm_max_dev"}) CHECK(j.contains(key));
  CHECK(j["l0"].get<double>() <= 4.0);
}

TEST_CASE("sae cli: mismatched dimension names the file and both dims") {
  test::TempDir tmp;
  test::write_ground_truth_embeddings(tmp.file("e16.h5"), 300, 16, 32, 2);
  test::write_ground_truth_embeddings(tmp.file("e20.h5"), 300, 20, 32, 3);
  auto r = test::run_cli({"-q", "sae", "train", "--embeddings", tmp.file("e16.h5"), "--out", tmp.file("s.h5"),
                          "--expansion", "2", "--epochs", "1", "--batch", "100", "--device", "cpu"});
  REQUIRE(r.exit_code == 0);
  for (const char* verb : {"eval", "encode"}) {
    CAPTURE(verb);
    std::vector<std::string> args = {"-q", "sae", verb, "--sae", tmp.file("s.h5"), "--embeddings", tmp.file("e20.h5"),
                                     "--device", "cpu"};
    if (std::string(verb) == "encode") args.insert(args.end(), {"--out", tmp.file("a.h5")});
    r = test::run_cli(args);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("e20.h5") != std::string::npos);
    CHECK(r.err.find("20") != std::string::npos);
    CHECK(r.err.find("16") != std::string::npos);
    CHECK(!std::filesystem::exists(tmp.file("a.h5")));
  }
}

TEST_CASE("sae cli: config file, flag overrides and bad usage") {
  test::TempDir tmp;
  test::write_ground_truth_embeddings(tmp.file("e.h5"), 300, 16, 32, 4);
  test::write_text(tmp.file("c.json"), R"({"arch": "batchtopk", "k": 3, "expansion": 2, "epochs": 1, "batch": 100})");
  auto r = test::run_cli({"-q", "sae", "train", "--embeddings", tmp.file("e.h5"), "--out", tmp.file("s.h5"), "--config",
                          tmp.file("c.json"), "--k", "5", "--device", "cpu"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto w = read_sae(tmp.file("s.h5"));
  CHECK(w.arch == "batchtopk");
  CHECK(w.k == 5);  // the flag wins over the config
  CHECK(w.n_latents == 32);
  CHECK(w.threshold > 0);

  test::write_text(tmp.file("bad.json"), R"({"learning_rate": 0.1})");
  r = test::run_cli({"-q", "sae", "train", "--embeddings", tmp.file("e.h5"), "--out", tmp.file("t.h5"), "--config",
                     tmp.file("bad.json")});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("learning_rate") != std::string::npos);

  r = test::run_cli({"-q", "sae", "train", "--embeddings", tmp.file("e.h5"), "--out", tmp.file("t.h5"), "--arch", "gated"});
  CHECK(r.exit_code == 2);
  r = test::run_cli({"sae"});
  CHECK(r.exit_code == 2);
}

TEST_CASE("sae cli: import the reference checkpoint") {
  const std::string shared = test::shared_dir();
  if (shared.empty()) {
    MESSAGE("skip: ../shared absent");
    return;
  }
  test::TempDir tmp;
  auto r = test::run_cli({"-q", "sae", "import", "--pth", shared + "/fixtures/seed_sae/autoencoder.pth", "--out",
                          tmp.file("s.h5")});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto w = read_sae(tmp.file("s.h5"));
  CHECK(w.d_in == 64);
  CHECK(w.n_latents == 512);
  CHECK(w.config["model_config"]["n_learned_features"].get<int64_t>() == 512);
}

TEST_CASE("sae relu-l1 with configs/sae-reference.json follows the PyTorch reference from the same weights") {
  // bench/sae_reference.py is the reference recipe written the usual PyTorch way (autograd +
  // torch.optim.Adam). Both start from the weights `sae train --epochs 0` writes and take the same
  // full-batch steps, so L0 and FVU must agree up to float32 round-off.
  if (!test::python_has("torch, h5py, numpy")) {
    MESSAGE("skip: /usr/bin/python3 lacks torch, h5py or numpy");
    return;
  }
  test::TempDir t;
  const int64_t n = 1024, d = 32;
  test::write_ground_truth_embeddings(t.file("e.h5"), n, d, 32, 17);
  const std::string ref = std::string(CONCEPTLAB_SOURCE_DIR) + "/configs/sae-reference.json";
  // Test-sized: 256 latents, every row in one batch, an L1 that switches part of the latents off.
  const std::vector<std::string> size = {"--n-latents", "256", "--batch", std::to_string(n), "--l1", "1e-2",
                                         "--device", "cpu", "--checkpoint-every", "0"};
  auto args = [&](const std::string& out, const std::string& epochs) {
    std::vector<std::string> a = {"-q", "sae", "train", "--embeddings", t.file("e.h5"), "--out", out, "--config", ref,
                                  "--epochs", epochs};
    a.insert(a.end(), size.begin(), size.end());
    return a;
  };
  REQUIRE(test::run_cli(args(t.file("s0.h5"), "0")).exit_code == 0);
  auto ours = test::run_cli(args(t.file("s.h5"), "60"));
  INFO(ours.err);
  REQUIRE(ours.exit_code == 0);
  auto ev = test::run_cli({"-q", "sae", "eval", "--sae", t.file("s.h5"), "--embeddings", t.file("e.h5"), "--json"});
  REQUIRE(ev.exit_code == 0);
  const auto m = nlohmann::json::parse(ev.out);

  auto py = test::run_program("/usr/bin/python3",
                              {std::string(CONCEPTLAB_SOURCE_DIR) + "/bench/sae_reference.py", "--embeddings",
                               t.file("e.h5"), "--init", t.file("s0.h5"), "--epochs", "60", "--batch",
                               std::to_string(n), "--l1", "1e-2", "--threads", "2"});
  INFO(py.err);
  REQUIRE(py.exit_code == 0);
  const auto r = nlohmann::json::parse(py.out);
  MESSAGE("L0 ours " << m["l0"] << " reference " << r["l0"] << "; FVU ours " << m["fvu"] << " reference " << r["fvu"]);
  CHECK(m["l0"].get<double>() > 2);   // sparse but not empty: the comparison means something
  CHECK(m["l0"].get<double>() < 200);
  CHECK(m["l0"].get<double>() == doctest::Approx(r["l0"].get<double>()).epsilon(0.02));
  CHECK(m["fvu"].get<double>() == doctest::Approx(r["fvu"].get<double>()).epsilon(0.02));
  // The reference's tied bias starts at zero: the shipped recipe must say so.
  CHECK(nlohmann::json::parse(test::read_text(ref))["pre_bias_init"] == "zero");
}

TEST_CASE("sae cli: matryoshka train with --prefixes, eval reports the FVU per nested size") {
  test::TempDir t;
  test::write_ground_truth_embeddings(t.file("e.h5"), 600, 16, 32, 3);
  auto train = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = {"-q", "sae", "train", "--embeddings", t.file("e.h5"), "--out", t.file("s.h5"),
                                  "--n-latents", "64", "--k", "4", "--epochs", "2", "--batch", "128", "--device", "cpu"};
    a.insert(a.end(), extra.begin(), extra.end());
    return test::run_cli(a);
  };
  auto r = train({"--arch", "matryoshka-topk", "--prefixes", "8,32"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto ev = test::run_cli({"-q", "sae", "eval", "--sae", t.file("s.h5"), "--embeddings", t.file("e.h5"), "--json"});
  REQUIRE(ev.exit_code == 0);
  const auto m = nlohmann::json::parse(ev.out);
  REQUIRE(m.contains("fvu_prefix"));
  CHECK(m["fvu_prefix"].size() == 3);
  CHECK(m["fvu_prefix"]["64"].get<double>() == doctest::Approx(m["fvu"].get<double>()).epsilon(1e-6));
  CHECK(m["fvu_prefix"]["8"].get<double>() > m["fvu_prefix"]["32"].get<double>());
  // Any SAE, sizes asked for.
  ev = test::run_cli({"-q", "sae", "eval", "--sae", t.file("s.h5"), "--embeddings", t.file("e.h5"), "--json",
                      "--prefixes", "16"});
  REQUIRE(ev.exit_code == 0);
  CHECK(nlohmann::json::parse(ev.out)["fvu_prefix"].size() == 1);
  // Bad sizes are usage errors naming the value.
  for (const auto& bad : std::vector<std::vector<std::string>>{{"--arch", "matryoshka-topk", "--prefixes", "32,8"},
                                                               {"--arch", "matryoshka-topk", "--prefixes", "8,64,128"},
                                                               {"--arch", "topk", "--prefixes", "8"},
                                                               {"--arch", "matryoshka-topk", "--prefixes", "x"}}) {
    CAPTURE(bad[3]);
    r = train(bad);
    CHECK(r.exit_code == 2);
  }
  ev = test::run_cli({"-q", "sae", "eval", "--sae", t.file("s.h5"), "--embeddings", t.file("e.h5"), "--prefixes", "100"});
  CHECK(ev.exit_code == 2);
  CHECK(ev.err.find("above the 64 latents") != std::string::npos);
}

TEST_CASE("sae cli: sweep trains a grid, scores it on held-out rows, writes the table and names a pick") {
  test::TempDir tmp;
  const auto emb = tmp.file("e.h5"), labels = tmp.file("meta.csv"), grid = tmp.file("grid.json"), out = tmp.file("sw");
  const int64_t n = 400, d = 16;
  test::write_ground_truth_embeddings(emb, n, d, 32, 3);
  const Embeddings e = read_embeddings(emb);
  std::string csv = "ImageID,c0,c1\n";
  for (int64_t i = 0; i < n; ++i)
    csv += fmt::format("img_{},{},{}\n", i, e.data[static_cast<size_t>(i * d)] > 0 ? 1 : 0,
                       e.data[static_cast<size_t>(i * d + 1)] > 0 ? 1 : 0);
  test::write_text(labels, csv);
  test::write_text(grid, R"({"arch": ["topk", "matryoshka-topk"], "n_latents": [32], "k": [4]})");
  const std::vector<std::string> base = {"-q", "sae", "sweep", "--embeddings", emb, "--labels", labels,
                                         "--columns", "c0,c1", "--grid", grid, "--device", "cpu",
                                         "--epochs", "3", "--batch", "64"};
  auto args = base;
  args.insert(args.end(), {"--out", out, "--json"});
  auto r = test::run_cli(args);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto j = nlohmann::json::parse(r.out);
  REQUIRE(j["entries"].size() == 2);
  CHECK(j["entries"][1]["label"] == "matryoshka-topk n32 k4 p16");
  CHECK(j["n_heldout"] == 80);
  CHECK(j["entries"][0]["columns"][0]["n_heldout"].get<int64_t>() == 80);
  CHECK(j.contains("pick"));
  for (const char* f : {"sweep.csv", "sweep.json", "sweep.png", "heldout.csv", "sae_00.h5", "sae_01.h5"})
    CHECK(std::filesystem::exists(std::filesystem::path(out) / f));
  CHECK(read_sae((std::filesystem::path(out) / "sae_01.h5").string()).prefixes == std::vector<int64_t>{16, 32});
  // The sweep scores each SAE with `sae bench`'s code on the same split: a bench of the same file
  // with the sweep's holdout and seed gives the same figures.
  {
    const auto b = test::run_cli({"-q", "sae", "bench", "--embeddings", emb, "--labels", labels, "--columns", "c0,c1",
                                  "--saes", (std::filesystem::path(out) / "sae_00.h5").string(), "--baselines", "",
                                  "--device", "cpu", "--out", tmp.file("bench"), "--json"});
    INFO(b.err);
    REQUIRE(b.exit_code == 0);
    const auto bj = nlohmann::json::parse(b.out);
    const auto& mine = j["entries"][0]["bench"];
    const auto& theirs = bj["entries"][0];
    CHECK(mine["sparse_probing"]["mean_auroc"] == theirs["sparse_probing"]["mean_auroc"]);
    CHECK(mine["tpp"]["tpp"] == theirs["tpp"]["tpp"]);
    CHECK(mine["reconstruction"]["fvu"] == theirs["reconstruction"]["fvu"]);
    CHECK(mine["sparse_probing"]["mean_auroc"][0].get<double>() > 0.5);
  }

  // The table for people: one row per SAE and the pick with its reason (same folder again: replaced).
  args = base;
  args.insert(args.end(), {"--out", out});
  r = test::run_cli(args);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("matryoshka-topk n32 k4 p16") != std::string::npos);
  CHECK(r.out.find("pick: ") != std::string::npos);

  // Bad input.
  test::write_text(tmp.file("bad_grid.json"), R"({"kk": [1]})");
  args = base;
  args[10] = tmp.file("bad_grid.json");  // --grid
  args.insert(args.end(), {"--out", tmp.file("o1")});
  r = test::run_cli(args);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("'kk' is not an SAE training field") != std::string::npos);
  args = base;
  args.insert(args.end(), {"--out", tmp.file("o2"), "--holdout", "1.5"});
  r = test::run_cli(args);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("holdout 1.5") != std::string::npos);
  args = base;
  args.insert(args.end(), {"--out", labels});
  r = test::run_cli(args);
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("must be a folder") != std::string::npos);
  args = base;
  args[8] = "c0,nope";  // --columns
  args.insert(args.end(), {"--out", tmp.file("o3")});
  r = test::run_cli(args);
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("nope") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(tmp.file("o3")));  // nothing made for a run that could not start
}
