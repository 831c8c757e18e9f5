// `conceptlab embed` end to end with a TorchScript model the test builds itself: equivalence
// with running the model directly, CSV columns, every bad-image case, --skip-bad and --resume.
#include "tests/torch_doctest.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>

#include <opencv2/imgcodecs.hpp>

#include "core/csv.h"
#include "core/embeddings.h"
#include "core/npy.h"
#include "tests/test_util.h"
#include "tools/embed/embed.h"

namespace fs = std::filesystem;
using cl::test::run_cli;
using cl::test::TempDir;

namespace {

constexpr int kSize = 24;

// A small non-linear encoder: conv -> relu -> 3x3 average pool grid -> linear -> tanh, [B,3,24,24] -> [B,10].
void write_test_model(const std::string& dir) {
  torch::manual_seed(7);
  torch::jit::Module m("test_encoder");
  m.register_buffer("w_conv", torch::randn({6, 3, 3, 3}) * 0.5);
  m.register_buffer("b_conv", torch::randn({6}) * 0.1);
  m.register_buffer("w_lin", torch::randn({54, 10}) * 0.3);
  m.define(R"JIT(
def forward(self, x):
    h = torch.relu(torch.conv2d(x, self.w_conv, self.b_conv, [1, 1], [1, 1]))
    g = torch.adaptive_avg_pool2d(h, [3, 3]).flatten(1)
    return torch.tanh(torch.matmul(g, self.w_lin))
)JIT");
  m.save(dir + "/enc.pt");
  std::ofstream(dir + "/enc.json") << R"J({"image_size": 24, "resize": "shorter_side_center_crop",
    "interpolation": "bilinear_antialias", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})J";
}

cv::Mat random_image(int w, int h, int type, uint64_t seed) {
  cv::Mat m(h, w, type);
  cv::RNG rng(seed);
  rng.fill(m, cv::RNG::UNIFORM, 0, CV_MAT_DEPTH(type) == CV_16U ? 65535 : 255);
  return m;
}

// Writes a small folder of good images of assorted kinds; returns their ids (relative paths).
std::vector<std::string> write_images(const std::string& dir, int n) {
  fs::create_directories(dir + "/sub");
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) {
    std::string id;
    cv::Mat img;
    switch (i % 5) {
      case 0: id = fmt::format("c{:02d}.png", i), img = random_image(40 + i, 30, CV_8UC3, i); break;
      case 1: id = fmt::format("sub/j{:02d}.jpg", i), img = random_image(31, 50, CV_8UC3, i); break;
      case 2: id = fmt::format("g{:02d}.png", i), img = random_image(24, 24, CV_8UC1, i); break;
      case 3: id = fmt::format("w{:02d}.png", i), img = random_image(60, 33, CV_16UC3, i); break;
      default: id = fmt::format("a{:02d}.png", i), img = random_image(26, 29, CV_8UC4, i); break;
    }
    REQUIRE(cv::imwrite(dir + "/" + id, img));
    ids.push_back(id);
  }
  return ids;
}

std::string write_meta(const std::string& path, const std::vector<std::string>& ids) {
  cl::CsvTable t;
  t.header = {"ImageID", "label", "score"};
  for (size_t i = 0; i < ids.size(); ++i)
    t.rows.push_back({ids[i], i % 2 ? "malignant" : "benign", std::to_string(0.5 * i)});
  cl::write_csv(path, t);
  return path;
}

std::vector<std::string> embed_args(const TempDir& t, const std::string& out) {
  return {"-q", "embed", "--model", t.file("enc.pt"), "--csv", t.file("meta.csv"), "--image-root",
          t.file("img"), "--out", out, "--device", "cpu"};
}

std::vector<std::string> plus(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEST_CASE("embed matches the model run directly on the same preprocessed tensors (folder mode)") {
  TempDir t;
  write_test_model(t.path.string());
  auto ids = write_images(t.file("img"), 11);
  auto r = run_cli({"-q", "embed", "--model", t.file("enc.pt"), "--images", t.file("img"), "--out", t.file("e.h5"),
                    "--batch", "4", "--device", "cpu", "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto rep = nlohmann::json::parse(r.out);
  CHECK(rep["n_rows"] == 11);
  CHECK(rep["dim"] == 10);

  auto e = cl::read_embeddings(t.file("e.h5"));
  std::sort(ids.begin(), ids.end());
  CHECK(e.ids == ids);  // relative paths, sorted
  REQUIRE(e.dim == 10);
  CHECK(e.config["preprocess"]["image_size"] == kSize);

  auto pre = cl::embed::load_preprocess(t.file("enc.json"));
  auto m = torch::jit::load(t.file("enc.pt"));
  torch::NoGradGuard ng;
  float max_diff = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    auto x = torch::zeros({1, 3, kSize, kSize});
    REQUIRE(cl::embed::preprocess_file(t.file("img/" + ids[i]), pre, x.data_ptr<float>()) == "");
    auto y = m.forward({x}).toTensor().contiguous();
    for (int64_t d = 0; d < e.dim; ++d) max_diff = std::max(max_diff, std::abs(y.data_ptr<float>()[d] - e.row(i)[d]));
  }
  CHECK(max_diff <= 1e-4f);
  // Not trivially zero: embeddings differ between images.
  CHECK(std::abs(e.row(0)[0] - e.row(1)[0]) + std::abs(e.row(0)[1] - e.row(1)[1]) > 1e-4);
}

TEST_CASE("embed CSV mode copies the other columns and bad usage or inputs fail with exit codes") {
  TempDir t;
  write_test_model(t.path.string());
  auto ids = write_images(t.file("img"), 5);
  write_meta(t.file("meta.csv"), ids);
  auto r = run_cli(embed_args(t, t.file("e.h5")));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto e = cl::read_embeddings(t.file("e.h5"));
  CHECK(e.ids == ids);  // CSV order
  const cl::Column* label = cl::find_column(e.columns, "label");
  const cl::Column* score = cl::find_column(e.columns, "score");
  REQUIRE(label);
  REQUIRE(score);
  CHECK(label->strings[1] == "malignant");
  CHECK(score->numeric);
  CHECK(score->numbers[4] == 2.0);
  CHECK(!cl::find_column(e.columns, "ImageID"));
  CHECK(!fs::exists(t.file("e.h5.partial")));

  CHECK(run_cli(plus(embed_args(t, t.file("x.h5")), {"--image-col", "nope"})).exit_code == 1);
  CHECK(run_cli({"embed", "--model", t.file("enc.pt"), "--out", t.file("x.h5")}).exit_code == 2);  // no source
  CHECK(run_cli(plus(embed_args(t, t.file("x.h5")), {"--fp16"})).exit_code == 2);                // CPU
  auto noprep = run_cli(plus(embed_args(t, t.file("x.h5")), {"--preprocess", t.file("missing.json")}));
  CHECK(noprep.exit_code == 1);
  CHECK(noprep.err.find("missing.json") != std::string::npos);
  // Flags alone are enough when there is no JSON, and override it when there is.
  auto flags = run_cli(plus(embed_args(t, t.file("f.h5")), {"--preprocess", t.file("missing.json"), "--image-size", "24",
                                                            "--mean", "0.485", "0.456", "0.406", "--std", "0.229", "0.224",
                                                            "0.225"}));
  INFO(flags.err);
  REQUIRE(flags.exit_code == 0);
  auto f = cl::read_embeddings(t.file("f.h5"));
  CHECK(f.data == e.data);
  CHECK(!fs::exists(t.file("x.h5")));
}

TEST_CASE("bad images: default fails before writing anything and names each one with its reason") {
  TempDir t;
  write_test_model(t.path.string());
  auto ids = write_images(t.file("img"), 6);
  cl::test::write_text(t.file("img/empty.png"), "");
  cl::test::write_text(t.file("img/text.jpg"), "not an image");
  // A PNG signature with a corrupt body passes the cheap check and fails only when decoded.
  cl::test::write_bytes(t.file("img/corrupt.png"),
                        {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R', 1, 2, 3});
  auto all = ids;
  for (std::string b : {"missing.png", "empty.png", "text.jpg", "corrupt.png"}) all.insert(all.begin() + 2, b);
  write_meta(t.file("meta.csv"), all);

  auto r = run_cli(embed_args(t, t.file("e.h5")));
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("missing.png: missing file") != std::string::npos);
  CHECK(r.err.find("empty.png: empty file") != std::string::npos);
  CHECK(r.err.find("text.jpg: not an image") != std::string::npos);
  CHECK(r.err.find("--skip-bad") != std::string::npos);
  CHECK(!fs::exists(t.file("e.h5")));

  // Only the decode-time failure left: still fails, still nothing written.
  fs::remove(t.file("img/text.jpg"));
  cl::test::write_text(t.file("img/empty.png"), "");
  std::vector<std::string> only_corrupt = ids;
  only_corrupt.insert(only_corrupt.begin() + 3, "corrupt.png");
  write_meta(t.file("meta2.csv"), only_corrupt);
  auto args = embed_args(t, t.file("e.h5"));
  args[5] = t.file("meta2.csv");
  auto r2 = run_cli(args);
  CHECK(r2.exit_code == 1);
  CHECK(r2.err.find("corrupt.png: cannot decode") != std::string::npos);
  CHECK(!fs::exists(t.file("e.h5")));

  // --skip-bad: the good rows, in order, plus a CSV naming every skipped id and why.
  auto s = run_cli(plus(embed_args(t, t.file("s.h5")), {"--skip-bad", "--batch", "3"}));
  INFO(s.err);
  REQUIRE(s.exit_code == 0);
  auto e = cl::read_embeddings(t.file("s.h5"));
  CHECK(e.ids == ids);
  REQUIRE(e.columns.size() == 2);
  CHECK(cl::find_column(e.columns, "label")->strings.size() == ids.size());
  auto skipped = cl::read_csv(t.file("s.h5.skipped.csv"));
  REQUIRE(skipped.n_rows() == 4);
  CHECK(skipped.header == std::vector<std::string>({"id", "reason"}));
  std::map<std::string, std::string> why;
  for (auto& row : skipped.rows) why[row[0]] = row[1];
  CHECK(why["missing.png"] == "missing file");
  CHECK(why["empty.png"] == "empty file (0 bytes)");
  CHECK(why["text.jpg"] == "missing file");  // removed above
  CHECK(why["corrupt.png"].find("cannot decode") == 0);

  // Good rows are the same embeddings as a clean run over just the good images.
  write_meta(t.file("meta.csv"), ids);
  REQUIRE(run_cli(embed_args(t, t.file("clean.h5"))).exit_code == 0);
  auto clean = cl::read_embeddings(t.file("clean.h5"));
  REQUIRE(clean.data.size() == e.data.size());
  for (size_t i = 0; i < e.data.size(); ++i) REQUIRE(std::abs(clean.data[i] - e.data[i]) <= 1e-5f);
}

TEST_CASE("resume after an interrupted run gives a bitwise identical file") {
  TempDir t;
  write_test_model(t.path.string());
  auto ids = write_images(t.file("img"), 13);
  ids.insert(ids.begin() + 5, "gone.png");  // a skipped row before the interruption
  write_meta(t.file("meta.csv"), ids);
  const std::vector<std::string> common = {"--batch", "2", "--skip-bad"};

  auto full = run_cli(plus(embed_args(t, t.file("full.h5")), common));
  INFO(full.err);
  REQUIRE(full.exit_code == 0);

  // Interrupted after 6 rows (3 checkpointed batches): a child process runs the export and its
  // progress sink kills the process once 6 images are done. No output, a checkpoint.
  const pid_t pid = ::fork();
  if (pid == 0) {
    struct KillAt : cl::ProgressSink {
      void on_update(const cl::ProgressState& s) override {
        if (s.label == "embed" && s.done >= 6) ::raise(SIGKILL);
      }
    } kill_at;
    cl::embed::EmbedParams p;
    p.model = t.file("enc.pt");
    p.csv = t.file("meta.csv");
    p.image_root = t.file("img");
    p.out = t.file("r.h5");
    p.batch = 2;
    p.skip_bad = true;
    try {
      cl::embed::embed_images(p, cl::embed::resolve_preprocess(p), cl::Device(torch::kCPU), kill_at);
    } catch (...) {
    }
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  CHECK(!fs::exists(t.file("r.h5")));
  REQUIRE(fs::exists(t.file("r.h5.partial")));
  // Simulate a kill in the middle of writing the next record: a torn tail must be dropped.
  {
    std::ofstream app(t.file("r.h5.partial"), std::ios::binary | std::ios::app);
    app << "\x54\x52\x50\x43\x01garbage";
  }
  // A different batch size is a different run: refused, naming the difference.
  auto wrong = run_cli(plus(embed_args(t, t.file("r.h5")), {"--batch", "3", "--skip-bad", "--resume"}));
  CHECK(wrong.exit_code == 1);
  CHECK(wrong.err.find("batch") != std::string::npos);

  auto res = run_cli(plus(embed_args(t, t.file("r.h5")), plus(common, {"--resume", "--json"})));
  INFO(res.err);
  REQUIRE(res.exit_code == 0);
  auto rep = nlohmann::json::parse(res.out);
  CHECK(rep["n_resumed"] == 6);
  CHECK(rep["n_skipped"] == 1);
  CHECK(!fs::exists(t.file("r.h5.partial")));

  auto a = cl::read_embeddings(t.file("full.h5")), b = cl::read_embeddings(t.file("r.h5"));
  CHECK(a.ids == b.ids);
  CHECK(a.n == 13);
  REQUIRE(a.data.size() == b.data.size());
  CHECK(std::memcmp(a.data.data(), b.data.data(), a.data.size() * sizeof(float)) == 0);
  REQUIRE(a.columns.size() == b.columns.size());
  for (size_t c = 0; c < a.columns.size(); ++c) {
    CHECK(a.columns[c].name == b.columns[c].name);
    CHECK(a.columns[c].strings == b.columns[c].strings);
    CHECK(a.columns[c].numbers == b.columns[c].numbers);
  }
  CHECK(a.config == b.config);
  CHECK(cl::test::read_text(t.file("full.h5.skipped.csv")) == cl::test::read_text(t.file("r.h5.skipped.csv")));

  // --resume without a checkpoint simply runs from the start.
  auto fresh = run_cli(plus(embed_args(t, t.file("n.h5")), plus(common, {"--resume"})));
  CHECK(fresh.exit_code == 0);
  auto c = cl::read_embeddings(t.file("n.h5"));
  CHECK(std::memcmp(a.data.data(), c.data.data(), a.data.size() * sizeof(float)) == 0);
}

TEST_CASE("embed refuses to overwrite its inputs and reports a bad model") {
  TempDir t;
  write_test_model(t.path.string());
  auto ids = write_images(t.file("img"), 3);
  write_meta(t.file("meta.csv"), ids);
  CHECK(run_cli(embed_args(t, t.file("meta.csv"))).exit_code == 1);
  cl::test::write_text(t.file("bad.pt"), "not a model");
  std::ofstream(t.file("bad.json")) << R"({"image_size": 24})";
  auto args = embed_args(t, t.file("e.h5"));
  args[3] = t.file("bad.pt");
  auto r = run_cli(args);
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("bad.pt") != std::string::npos);
}

TEST_CASE("real encoder on derm7pt images matches the Python reference embeddings (optional: needs ../shared)") {
  const std::string shared = cl::test::shared_dir();
  if (shared.empty()) {
    MESSAGE("skip: ../shared absent");
    return;
  }
  const std::string d7 = shared + "/derm7pt";
  // Every 21st image: 49 images across all diagnosis folders.
  auto meta = cl::read_csv(d7 + "/meta.csv");
  cl::CsvTable sub;
  sub.header = meta.header;
  for (size_t i = 0; i < meta.n_rows(); i += 21) sub.rows.push_back(meta.rows[i]);
  TempDir t;
  cl::write_csv(t.file("meta.csv"), sub);
  auto r = run_cli({"-q", "embed", "--model", d7 + "/encoder/mobilenet_v1_224_embed.pt", "--csv", t.file("meta.csv"),
                    "--image-root", d7 + "/images", "--out", t.file("e.h5"), "--device", "cpu"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto mine = cl::read_embeddings(t.file("e.h5"));
  auto ref = cl::read_embeddings(d7 + "/embeddings_mnv1.h5");
  std::map<std::string, int64_t> ref_row;
  for (int64_t i = 0; i < ref.n; ++i) ref_row[ref.ids[i]] = i;
  REQUIRE(mine.dim == ref.dim);
  REQUIRE(mine.n == static_cast<int64_t>(sub.n_rows()));
  double min_cos = 1;
  for (int64_t i = 0; i < mine.n; ++i) {
    REQUIRE(ref_row.count(mine.ids[i]));
    const float *a = mine.row(i), *b = ref.row(ref_row[mine.ids[i]]);
    double ab = 0, aa = 0, bb = 0;
    for (int64_t d = 0; d < mine.dim; ++d) ab += a[d] * b[d], aa += a[d] * a[d], bb += b[d] * b[d];
    min_cos = std::min(min_cos, ab / std::sqrt(aa * bb));
  }
  MESSAGE("derm7pt subset: min cosine vs reference " << min_cos);
  CHECK(min_cos >= 0.999);
  // The columns of meta.csv travel with the embeddings.
  CHECK(cl::find_column(mine.columns, "melanoma"));
  CHECK(cl::find_column(mine.columns, "hair"));
}

namespace {

// Runs a shell command (paths here are generated temp paths without quotes); returns exit status.
int shell(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}


}  // namespace

TEST_CASE("export_torchscript.py --help works without torch and exports a torchvision model when torch is there") {
  const std::string script = std::string(CONCEPTLAB_SOURCE_DIR) + "/tools/export_torchscript.py";
  if (shell("test -x /usr/bin/python3") != 0) {
    MESSAGE("skip: no /usr/bin/python3");
    return;
  }
  CHECK(shell("/usr/bin/python3 " + script + " --help >/dev/null") == 0);
  if (!cl::test::python_has("torch, torchvision")) {
    MESSAGE("skip: /usr/bin/python3 has no torch/torchvision");
    return;
  }
  TempDir t;
  REQUIRE(shell("/usr/bin/python3 " + script + " --source torchvision --model resnet18 --weights none --out " +
                t.file("r18.pt") + " >/dev/null") == 0);
  auto pre = cl::embed::load_preprocess(t.file("r18.json"));
  CHECK(pre.image_size == 224);
  auto ids = write_images(t.file("img"), 3);
  auto r = run_cli({"-q", "embed", "--model", t.file("r18.pt"), "--images", t.file("img"), "--out", t.file("e.h5"),
                    "--device", "cpu"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(cl::read_embeddings(t.file("e.h5")).dim == 512);
}

TEST_CASE("embeddings match PyTorch in Python on the same tensors (only when python3 has torch)") {
  if (!cl::test::python_has("torch, numpy")) {
    MESSAGE("skip: /usr/bin/python3 has no torch");
    return;
  }
  TempDir t;
  write_test_model(t.path.string());
  auto ids = write_images(t.file("img"), 4);
  REQUIRE(run_cli({"-q", "embed", "--model", t.file("enc.pt"), "--images", t.file("img"), "--out", t.file("e.h5"),
                   "--device", "cpu"})
              .exit_code == 0);
  auto e = cl::read_embeddings(t.file("e.h5"));
  auto pre = cl::embed::load_preprocess(t.file("enc.json"));
  std::vector<float> x(static_cast<size_t>(e.n) * 3 * kSize * kSize);
  for (int64_t i = 0; i < e.n; ++i)
    REQUIRE(cl::embed::preprocess_file(t.file("img/" + e.ids[i]), pre, x.data() + i * 3 * kSize * kSize) == "");
  cl::write_npy(t.file("x.npy"), x.data(), {e.n, 3, kSize, kSize});
  REQUIRE(shell("/usr/bin/python3 -c 'import torch, numpy as np; m = torch.jit.load(\"" + t.file("enc.pt") +
                "\"); np.save(\"" + t.file("y.npy") + "\", m(torch.from_numpy(np.load(\"" + t.file("x.npy") +
                "\"))).detach().numpy().astype(np.float32))'") == 0);
  auto y = cl::read_npy(t.file("y.npy")).as<float>();
  REQUIRE(y.size() == e.data.size());
  for (size_t i = 0; i < y.size(); ++i) REQUIRE(std::abs(y[i] - e.data[i]) <= 1e-4f);
}

TEST_CASE("resume after a real SIGKILL mid-run gives a bitwise identical file") {
  TempDir t;
  // A deliberately slow model (~0.4 GFLOP per batch) so the run is still going when killed.
  torch::manual_seed(3);
  torch::jit::Module m("slow_encoder");
  m.register_buffer("w_in", torch::randn({27, 512}) * 0.2);
  m.register_buffer("w", torch::randn({512, 512}) * (1.0 / std::sqrt(512.0)));
  m.define(R"JIT(
def forward(self, x):
    h = torch.matmul(torch.adaptive_avg_pool2d(x, [3, 3]).flatten(1), self.w_in)
    for i in range(400):
        h = torch.tanh(torch.matmul(h, self.w))
    return h
)JIT");
  m.save(t.file("enc.pt"));
  std::ofstream(t.file("enc.json")) << R"J({"image_size": 24})J";
  auto ids = write_images(t.file("img"), 60);
  write_meta(t.file("meta.csv"), ids);
  const std::vector<std::string> common = {"--batch", "2"};
  REQUIRE(run_cli(plus(embed_args(t, t.file("full.h5")), common)).exit_code == 0);

  auto args = plus(embed_args(t, t.file("r.h5")), common);
  pid_t pid = ::fork();
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    std::vector<char*> argv;
    std::string bin = CONCEPTLAB_BIN;
    argv.push_back(bin.data());
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  // Kill once a few batches (4 KB each) are checkpointed.
  const std::string part = t.file("r.h5.partial");
  int status = 0;
  bool exited = false;
  for (int i = 0; i < 20000; ++i) {
    std::error_code ec;
    if (fs::exists(part, ec) && fs::file_size(part, ec) > 12000) break;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      break;
    }
    ::usleep(1000);
  }
  REQUIRE_MESSAGE(!exited, "the run finished before it could be killed");
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  REQUIRE(WIFSIGNALED(status));
  CHECK(!fs::exists(t.file("r.h5")));
  REQUIRE(fs::exists(part));

  auto res = run_cli(plus(embed_args(t, t.file("r.h5")), plus(common, {"--resume", "--json"})));
  INFO(res.err);
  REQUIRE(res.exit_code == 0);
  auto rep = nlohmann::json::parse(res.out);
  CHECK(rep["n_resumed"].get<int>() >= 4);
  CHECK(rep["n_resumed"].get<int>() < 60);
  auto a = cl::read_embeddings(t.file("full.h5")), b = cl::read_embeddings(t.file("r.h5"));
  CHECK(a.ids == b.ids);
  REQUIRE(a.data.size() == b.data.size());
  CHECK(std::memcmp(a.data.data(), b.data.data(), a.data.size() * sizeof(float)) == 0);
}

TEST_CASE("reliability: embed refuses ids outside the image root unless allowed") {
  TempDir t;
  write_test_model(t.path.string());
  const auto ids = write_images(t.file("root"), 5);
  REQUIRE(cv::imwrite(t.file("outside.png"), random_image(30, 30, CV_8UC3, 99)));
  std::string csv = "ImageID\n";
  for (const auto& id : ids) csv += id + "\n";
  csv += "../outside.png\n" + t.file("outside.png") + "\n";  // one relative escape, one absolute path
  cl::test::write_text(t.file("list.csv"), csv);
  const std::vector<std::string> base = {"-q", "embed", "--model", t.file("enc.pt"), "--csv", t.file("list.csv"),
                                         "--image-root", t.file("root"), "--device", "cpu"};
  auto with = [&](std::vector<std::string> extra) {
    auto a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return run_cli(a);
  };
  auto r = with({"--out", t.file("e1.h5")});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("outside the image root") != std::string::npos);
  CHECK_FALSE(fs::exists(t.file("e1.h5")));
  r = with({"--out", t.file("e2.h5"), "--skip-bad"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(cl::EmbeddingsReader(t.file("e2.h5")).rows() == 5);
  CHECK(cl::read_csv(t.file("e2.h5.skipped.csv")).rows.size() == 2);
  r = with({"--out", t.file("e3.h5"), "--allow-outside-root"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(cl::EmbeddingsReader(t.file("e3.h5")).rows() == 7);
}

TEST_CASE("embed --shard I/N three ways, merge-embeddings: the unsharded file, and mismatched parts are refused") {
  TempDir t;
  write_test_model(t.path.string());
  auto ids = write_images(t.file("img"), 23);
  write_meta(t.file("meta.csv"), ids);
  // One unreadable image: with --skip-bad each part skips it, and the order must survive.
  {
    std::ofstream(t.file("img/" + ids[9]), std::ios::trunc) << "not an image";
  }
  const auto base = plus(embed_args(t, t.file("whole.h5")), {"--batch", "2", "--skip-bad"});
  auto r = run_cli(base);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  std::vector<std::string> parts;
  for (int i : {2, 0, 1}) {  // any order
    const std::string part = t.file(fmt::format("part{}.h5", i));
    r = run_cli(plus(embed_args(t, part), {"--batch", "2", "--skip-bad", "--shard", fmt::format("{}/3", i),
                                           "--shard-block", "4"}));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    parts.push_back(part);
  }
  const auto p0 = cl::read_embeddings(t.file("part0.h5"));
  CHECK(p0.n == 8);  // blocks 0 and 3: inputs 0-3 and 12-15
  CHECK(p0.config["shard"]["block_rows"] == nlohmann::json({4, 4}));
  CHECK(cl::read_embeddings(t.file("part2.h5")).config["shard"]["block_rows"] == nlohmann::json({3, 3}));  // 8-11 less #9, 20-22

  std::vector<std::string> merge = {"-q", "merge-embeddings"};
  merge.insert(merge.end(), parts.begin(), parts.end());
  r = run_cli(plus(merge, {"--out", t.file("merged.h5"), "--json"}));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(nlohmann::json::parse(r.out)["rows"] == 22);
  const auto whole = cl::read_embeddings(t.file("whole.h5")), merged = cl::read_embeddings(t.file("merged.h5"));
  CHECK(merged.ids == whole.ids);
  CHECK(merged.n == 22);
  CHECK(merged.data == whole.data);  // bitwise
  CHECK(merged.config == whole.config);
  REQUIRE(merged.columns.size() == whole.columns.size());
  for (size_t c = 0; c < whole.columns.size(); ++c) {
    CHECK(merged.columns[c].name == whole.columns[c].name);
    CHECK(merged.columns[c].numeric == whole.columns[c].numeric);
    CHECK(merged.columns[c].strings == whole.columns[c].strings);
    CHECK(merged.columns[c].numbers == whole.columns[c].numbers);
  }

  // Mismatched parts: a missing shard, a repeated one, another export, an unsharded file.
  auto refused = [&](const std::vector<std::string>& files, const std::string& why) {
    std::vector<std::string> args = {"merge-embeddings"};
    args.insert(args.end(), files.begin(), files.end());
    args.insert(args.end(), {"--out", t.file("bad.h5")});
    const auto res = run_cli(args);
    CAPTURE(why);
    CHECK(res.exit_code == 1);
    CHECK(res.err.find(why) != std::string::npos);
    CHECK(!fs::exists(t.file("bad.h5")));
  };
  refused({t.file("part0.h5"), t.file("part2.h5")}, "shard 1 of 3 missing");
  refused({t.file("part0.h5"), t.file("part0.h5"), t.file("part2.h5")}, "are both shard 0/3");
  refused({t.file("part0.h5"), t.file("part1.h5"), t.file("whole.h5")}, "not a part of a sharded export");
  r = run_cli(plus(embed_args(t, t.file("other1.h5")), {"--batch", "2", "--skip-bad", "--shard", "1/3", "--shard-block",
                                                        "4", "--image-size", "20"}));
  REQUIRE(r.exit_code == 0);
  refused({t.file("part0.h5"), t.file("other1.h5"), t.file("part2.h5")}, "config 'preprocess'");
  r = run_cli(plus(embed_args(t, t.file("blk1.h5")), {"--batch", "2", "--skip-bad", "--shard", "1/3", "--shard-block", "2"}));
  REQUIRE(r.exit_code == 0);
  refused({t.file("part0.h5"), t.file("blk1.h5"), t.file("part2.h5")}, "blocks of 2");

  // Bad --shard values are usage errors; a shard without inputs says so.
  for (const char* bad : {"3/3", "-1/3", "1/0", "x", "1/", "1/3/4"}) {
    CAPTURE(bad);
    CHECK(run_cli(plus(embed_args(t, t.file("x.h5")), {"--shard", bad})).exit_code == 2);
  }
  r = run_cli(plus(embed_args(t, t.file("x.h5")), {"--shard", "2/3", "--shard-block", "100"}));
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("lower --shard-block") != std::string::npos);
}
