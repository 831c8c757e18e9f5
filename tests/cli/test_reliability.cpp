// One test per root cause of the reliability issue (issue 16) that has no test of its own
// elsewhere: checksummed HDF5 metadata, crafted .pth files, NaN model arrays and a total AUROC,
// huge features, diverged training, side files named like inputs, outputs committed together,
// outputs checked before work, the output lock, one-line messages for bad text, bad data
// (duplicated ids, overlapping splits, fractional schema versions, resume on other data), demo
// worlds written whole, embed ids outside the image root; and the short fuzz run over every reader.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>

#include <fmt/format.h>

#include "cbm/metrics.h"
#include "core/csv.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/h5.h"
#include "core/json_input.h"
#include "core/linear_model.h"
#include "core/manifest.h"
#include "core/output_claim.h"
#include "core/random.h"
#include "tests/test_util.h"
#include "explain/intervention.h"
#include "tools/demo/world.h"
#include "tools/embed/preprocess.h"

namespace fs = std::filesystem;
using namespace cl;
using test::run_cli;

namespace {

// N x D Gaussian embeddings with ids img0.. and a labels CSV (label alternates a/b).
void write_data(const test::TempDir& t, int64_t n = 200, int64_t d = 16, double scale = 1.0, uint64_t seed = 3) {
  Embeddings e;
  e.n = n, e.dim = d;
  Rng rng(seed);
  for (int64_t i = 0; i < n; ++i) e.ids.push_back("img" + std::to_string(i));
  e.data.resize(static_cast<size_t>(n * d));
  for (auto& v : e.data) v = static_cast<float>(rng.normal() * scale);
  write_embeddings(t.file("e.h5"), e);
  std::string csv = "ImageID,label\n";
  for (int64_t i = 0; i < n; ++i) csv += fmt::format("img{},{}\n", i, i % 2 ? "a" : "b");
  test::write_text(t.file("labels.csv"), csv);
}

// ---- a minimal torch.save writer: a stored zip holding data.pkl and data/<key> storages

void put16(std::string& s, uint32_t v) { s += char(v & 0xff), s += char((v >> 8) & 0xff); }
void put32(std::string& s, uint32_t v) { put16(s, v & 0xffff), put16(s, v >> 16); }

std::string make_zip(const std::vector<std::pair<std::string, std::string>>& entries, uint32_t bad_local = 0) {
  std::string out, cd;
  for (const auto& [name, data] : entries) {
    const uint32_t local = static_cast<uint32_t>(out.size());
    out += "PK\x03\x04";
    put16(out, 20), put16(out, 0), put16(out, 0), put16(out, 0), put16(out, 0);
    put32(out, 0), put32(out, static_cast<uint32_t>(data.size())), put32(out, static_cast<uint32_t>(data.size()));
    put16(out, static_cast<uint32_t>(name.size())), put16(out, 0);
    out += name + data;
    cd += "PK\x01\x02";
    put16(cd, 20), put16(cd, 20), put16(cd, 0), put16(cd, 0), put16(cd, 0), put16(cd, 0);
    put32(cd, 0), put32(cd, static_cast<uint32_t>(data.size())), put32(cd, static_cast<uint32_t>(data.size()));
    put16(cd, static_cast<uint32_t>(name.size())), put16(cd, 0), put16(cd, 0), put16(cd, 0), put16(cd, 0);
    put32(cd, 0), put32(cd, bad_local ? bad_local : local);
    cd += name;
  }
  const uint32_t cd_at = static_cast<uint32_t>(out.size());
  out += cd + "PK\x05\x06";
  put16(out, 0), put16(out, 0), put16(out, static_cast<uint32_t>(entries.size())),
      put16(out, static_cast<uint32_t>(entries.size()));
  put32(out, static_cast<uint32_t>(cd.size())), put32(out, cd_at), put16(out, 0);
  return out;
}

std::string pkl_str(const std::string& s) {
  std::string o = "X";
  put32(o, static_cast<uint32_t>(s.size()));
  return o + s;
}

std::string pkl_int(int64_t v) {
  std::string o = "\x8a\x08";
  for (int k = 0; k < 8; ++k) o += char((static_cast<uint64_t>(v) >> (8 * k)) & 0xff);
  return o;
}

// A _rebuild_tensor_v2 call over storage `key` (FloatStorage).
std::string pkl_tensor(const std::string& key, int64_t offset, const std::vector<int64_t>& size) {
  std::string o = "ctorch._utils\n_rebuild_tensor_v2\n(";
  o += "(" + pkl_str("storage") + "ctorch\nFloatStorage\n" + pkl_str(key) + pkl_str("cpu") + pkl_int(1) + "tQ";
  o += pkl_int(offset);
  o += "(";
  for (auto s : size) o += pkl_int(s);
  o += "t(";
  int64_t stride = 1;
  std::vector<int64_t> st(size.size());
  for (size_t k = size.size(); k-- > 0;) st[k] = stride, stride *= size[k];
  for (auto s : st) o += pkl_int(s);
  o += "ttR";
  return o;
}

// An SAE state dict (D 3, 2 latents); `offset` is the encoder weight's storage offset.
std::string make_pth(int64_t offset = 0, int64_t d = 3) {
  std::string pkl = "\x80\x02}(";
  pkl += pkl_str("tied_bias") + pkl_tensor("0", 0, {1, d});
  pkl += pkl_str("encoder._weight") + pkl_tensor("1", offset, {1, 2, d});
  pkl += pkl_str("encoder._bias") + pkl_tensor("2", 0, {1, 2});
  pkl += pkl_str("decoder._weight") + pkl_tensor("3", 0, {1, d, 2});
  pkl += "u.";
  std::string floats(4 * 64, '\0');
  return make_zip({{"a/data.pkl", pkl}, {"a/data/0", floats}, {"a/data/1", floats}, {"a/data/2", floats},
                   {"a/data/3", floats}});
}

}  // namespace

TEST_CASE("reliability: files are written with checksummed HDF5 metadata and corrupted metadata is an error") {
  test::TempDir t;
  write_data(t);
  const auto bytes = test::read_bytes(t.file("e.h5"));
  REQUIRE(bytes.size() > 16);
  CHECK(bytes[8] >= 2);  // superblock version 2+ (checksummed), not 0 (the 1.8-compatible default)
  int n_errors = 0;
  for (size_t at : {size_t{0}, size_t{48}, size_t{200}, size_t{700}, size_t{1500}, size_t{3000}}) {
    auto b = bytes;
    for (size_t k = 0; k < 16 && at + k < b.size(); ++k) b[at + k] = static_cast<unsigned char>(0xA5 ^ k);
    test::write_bytes(t.file("bad.h5"), b);
    auto r = run_cli({"-q", "inspect", t.file("bad.h5")});
    CHECK_MESSAGE((r.exit_code == 0 || r.exit_code == 1), "offset ", at, ": ", r.err);
    n_errors += r.exit_code == 1;
  }
  CHECK(n_errors >= 4);
}

TEST_CASE("reliability: crafted .pth files are refused cleanly") {
  test::TempDir t;
  test::write_text(t.file("ok.pth"), make_pth());
  auto r = run_cli({"-q", "sae", "import", "--pth", t.file("ok.pth"), "--out", t.file("ok.h5")});
  CHECK_MESSAGE(r.exit_code == 0, r.err);

  // Deep nesting: 200000 lists, each appended into the one before.
  std::string deep = "\x80\x02";
  for (int i = 0; i < 200000; ++i) deep += "]";
  for (int i = 0; i < 199999; ++i) deep += "a";
  deep += ".";
  test::write_text(t.file("deep.pth"), make_zip({{"a/data.pkl", deep}}));
  r = run_cli({"-q", "sae", "import", "--pth", t.file("deep.pth"), "--out", t.file("o.h5")});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("nested deeper") != std::string::npos);

  // A local header offset near 2^32 must not wrap the bounds check.
  test::write_text(t.file("wrap.pth"), make_zip({{"a/data.pkl", "\x80\x02}."}}, 0xFFFFFFF0u));
  r = run_cli({"-q", "sae", "import", "--pth", t.file("wrap.pth"), "--out", t.file("o.h5")});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("broken zip entry") != std::string::npos);

  // A storage offset near 2^62 must not wrap (off + 1) * 4 and read before the buffer.
  test::write_text(t.file("off.pth"), make_pth(int64_t{1} << 62));
  r = run_cli({"-q", "sae", "import", "--pth", t.file("off.pth"), "--out", t.file("o.h5")});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("past its storage") != std::string::npos);
  CHECK_FALSE(fs::exists(t.file("o.h5")));

  // D = 0 is not an SAE.
  test::write_text(t.file("d0.pth"), make_pth(0, 0));
  r = run_cli({"-q", "sae", "import", "--pth", t.file("d0.pth"), "--out", t.file("o.h5")});
  CHECK(r.exit_code == 1);
}

TEST_CASE("reliability: NaN in a model bias is refused and AUROC is total on NaN scores") {
  test::TempDir t;
  LinearModel m;
  m.classes = {"a", "b"};
  m.n_rows = 1, m.n_features = 2;
  m.weights = {0.5f, -0.5f};
  m.bias = {std::nanf("")};
  write_linear(t.file("m.h5"), m);
  CHECK_THROWS_WITH_AS(read_linear(t.file("m.h5")), doctest::Contains("bias contains nan"), InputError);
  m.bias = {0.f};
  m.classes = {"a", "a"};
  write_linear(t.file("m2.h5"), m);
  CHECK_THROWS_AS(read_linear(t.file("m2.h5")), InputError);

  const std::vector<double> s = {std::nan(""), 0.1, std::nan(""), 0.7};
  const std::vector<int> l = {0, 1, 0, 1};
  CHECK(std::isnan(cbm::auroc_sorted(s.data(), l.data(), s.size())));
  CHECK(std::isnan(cbm::average_precision_sorted(s.data(), l.data(), s.size())));
  CHECK(std::isnan(cbm::auroc_sorted(s.data() + 1, l.data() + 1, 1, std::nan(""), 1, 1)));
}

TEST_CASE("reliability: cbm fit refuses huge features instead of running without end") {
  test::TempDir t;
  write_data(t, 200, 8, 1e20);
  auto r = run_cli({"-q", "cbm", "fit", "--features", t.file("e.h5"), "--labels", t.file("labels.csv"), "--label-col",
                    "label", "--splits", "2", "--no-standardize"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("|x| <=") != std::string::npos);
  // Standardised, the same features fit.
  r = run_cli({"-q", "cbm", "fit", "--features", t.file("e.h5"), "--labels", t.file("labels.csv"), "--label-col",
               "label", "--splits", "2", "--standardize"});
  CHECK_MESSAGE(r.exit_code == 0, r.err);
}

TEST_CASE("reliability: a diverged SAE training stops with exit 1 and writes no SAE") {
  test::TempDir t;
  write_data(t);
  auto r = run_cli({"-q", "sae", "train", "--embeddings", t.file("e.h5"), "--out", t.file("s.h5"), "--n-latents", "32",
                    "--k", "4", "--epochs", "3", "--lr", "1e30", "--batch", "32"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("diverged") != std::string::npos);
  CHECK_FALSE(fs::exists(t.file("s.h5")));

  test::TempDir big;
  write_data(big, 100, 8, 1e37);
  r = run_cli({"-q", "sae", "train", "--embeddings", big.file("e.h5"), "--out", big.file("s.h5"), "--n-latents", "16",
               "--k", "4", "--epochs", "1"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("values up to") != std::string::npos);
}

TEST_CASE("reliability: out-of-range numbers and unknown options are one-line usage errors") {
  test::TempDir t;
  write_data(t);
  const std::vector<std::string> base = {"-q", "sae", "train", "--embeddings", t.file("e.h5"), "--out", t.file("s.h5")};
  auto with = [&](std::vector<std::string> extra) {
    auto a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return run_cli(a);
  };
  for (const auto& bad : std::vector<std::vector<std::string>>{{"--epochs", "99999999999999999999999"},
                                                               {"--epochs", "2000000000"},
                                                               {"--seed", "-99999999999999999999"},
                                                               {"--batch", "0"},
                                                               {"--no-such-flag", "1"}}) {
    CAPTURE(bad[0]);
    auto r = with(bad);
    CHECK(r.exit_code == 2);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK_FALSE(fs::exists(t.file("s.h5")));
  }
  auto r = run_cli({"-q", "explain", "stats", "--activations", t.file("a.h5"), "--out", t.file("i.h5"), "--bins",
                    "99999999999999999999"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("out of range") != std::string::npos);
}

TEST_CASE("reliability: side files named like an input are refused before any work") {
  test::TempDir t;
  write_data(t);
  fs::copy_file(t.file("e.h5"), t.file("s.h5.log.jsonl"));
  const std::string before = test::read_text(t.file("s.h5.log.jsonl"));
  auto r = run_cli({"-q", "sae", "train", "--embeddings", t.file("s.h5.log.jsonl"), "--out", t.file("s.h5"),
                    "--n-latents", "16", "--k", "4", "--epochs", "1"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("overwrite input") != std::string::npos);
  CHECK(test::read_text(t.file("s.h5.log.jsonl")) == before);

  // An unwritable or missing output folder is found before training, in one line.
  r = run_cli({"-q", "sae", "train", "--embeddings", t.file("e.h5"), "--out", t.file("missing/s.h5"), "--n-latents",
               "16", "--k", "4", "--epochs", "1"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("does not exist") != std::string::npos);
  CHECK(r.err.find('\n') == r.err.size() - 1);
}

TEST_CASE("reliability: a command with two outputs commits both or neither") {
  test::TempDir t;
  write_data(t);
  REQUIRE(run_cli({"-q", "export-npy", "--in", t.file("e.h5"), "--out", t.file("x.npy")}).exit_code == 0);
  const std::string npy_before = test::read_text(t.file("x.npy"));
  // The ids output names an input: refused before the .npy is replaced.
  auto r = run_cli({"-q", "export-npy", "--in", t.file("e.h5"), "--out", t.file("x.npy"), "--ids-out", t.file("e.h5")});
  CHECK(r.exit_code == 1);
  CHECK(test::read_text(t.file("x.npy")) == npy_before);
  r = run_cli({"-q", "export-npy", "--in", t.file("e.h5"), "--out", t.file("x.npy"), "--ids-out",
               t.file("nowhere/ids.csv")});
  CHECK(r.exit_code == 1);
  CHECK(test::read_text(t.file("x.npy")) == npy_before);
  r = run_cli({"-q", "export-npy", "--in", t.file("e.h5"), "--out", t.file("x.npy"), "--ids-out", t.file("ids.csv")});
  CHECK(r.exit_code == 0);
  CHECK(fs::exists(t.file("ids.csv")));
  for (const auto& e : fs::directory_iterator(t.path))
    CHECK_MESSAGE(e.path().filename().string().find(".staged-") == std::string::npos, e.path());
}

TEST_CASE("reliability: a second run on an output that is being written is refused") {
  test::TempDir t;
  write_data(t);
  {
    OutputLock held(t.file("s.h5"));
    auto r = run_cli({"-q", "sae", "train", "--embeddings", t.file("e.h5"), "--out", t.file("s.h5"), "--n-latents",
                      "16", "--k", "4", "--epochs", "1"});
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("another conceptlab run") != std::string::npos);
    CHECK_THROWS_AS(OutputLock(t.file("s.h5")), InputError);
  }
  CHECK_FALSE(fs::exists(OutputLock::lock_path(t.file("s.h5"))));
  auto r = run_cli({"-q", "sae", "train", "--embeddings", t.file("e.h5"), "--out", t.file("s.h5"), "--n-latents", "16",
                    "--k", "4", "--epochs", "1"});
  CHECK_MESSAGE(r.exit_code == 0, r.err);
  CHECK_FALSE(fs::exists(OutputLock::lock_path(t.file("s.h5"))));
}

TEST_CASE("reliability: bad text and bad data give one line naming the file") {
  test::TempDir t;
  write_data(t);
  // Latin-1 CSV.
  test::write_text(t.file("latin1.csv"), "ImageID,label\nimg0,caf\xe9\nimg1,b\n");
  auto r = run_cli({"-q", "cbm", "fit", "--features", t.file("e.h5"), "--labels", t.file("latin1.csv"), "--label-col",
                    "label"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("latin1.csv: line 2") != std::string::npos);
  CHECK(r.err.find("UTF-8") != std::string::npos);
  // A folder where the CSV should be.
  fs::create_directory(t.file("dir.csv"));
  r = run_cli({"-q", "cbm", "fit", "--features", t.file("e.h5"), "--labels", t.file("dir.csv"), "--label-col", "label"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("not a regular file") != std::string::npos);
  // A duplicated id with conflicting labels.
  std::string csv = test::read_text(t.file("labels.csv")) + "img3,b\n";
  test::write_text(t.file("dup.csv"), csv);
  r = run_cli({"-q", "cbm", "fit", "--features", t.file("e.h5"), "--labels", t.file("dup.csv"), "--label-col", "label"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("listed twice") != std::string::npos);
  // Overlapping train and test id lists.
  std::string train, test_ids;
  for (int i = 0; i < 150; ++i) train += fmt::format("img{}\n", i);
  for (int i = 140; i < 200; ++i) test_ids += fmt::format("img{}\n", i);
  test::write_text(t.file("train.txt"), train);
  test::write_text(t.file("test.txt"), test_ids);
  r = run_cli({"-q", "cbm", "fit", "--features", t.file("e.h5"), "--labels", t.file("labels.csv"), "--label-col",
               "label", "--train-ids", t.file("train.txt"), "--test-ids", t.file("test.txt")});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("in both lists") != std::string::npos);
  // schema_version 1.7 is not 1.
  {
    h5::File f = h5::create(t.file("v.h5"));
    h5::write_attr(f.get(), "format", std::string(kEmbeddingsFormat));
    h5::write_attr(f.get(), "schema_version", 1.7);
    h5::flush(f);
  }
  CHECK_THROWS_WITH_AS(EmbeddingsReader(t.file("v.h5")), doctest::Contains("whole number"), InputError);
}

TEST_CASE("reliability: --resume refuses a checkpoint of a run on other data") {
  test::TempDir t;
  write_data(t, 200, 16, 1.0, 3);
  auto r = run_cli({"-q", "sae", "train", "--embeddings", t.file("e.h5"), "--out", t.file("s.h5"), "--n-latents", "16",
                    "--k", "4", "--epochs", "2", "--checkpoint-every", "1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  REQUIRE(fs::exists(t.file("s.h5.ckpt")));
  test::TempDir other;
  write_data(other, 200, 16, 1.0, 99);  // same shape, other values
  r = run_cli({"-q", "sae", "train", "--embeddings", other.file("e.h5"), "--out", other.file("s.h5"), "--n-latents",
               "16", "--k", "4", "--epochs", "3", "--resume", t.file("s.h5.ckpt")});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("other data") != std::string::npos);
  r = run_cli({"-q", "sae", "train", "--embeddings", t.file("e.h5"), "--out", t.file("s.h5"), "--n-latents", "16",
               "--k", "4", "--epochs", "3", "--resume", t.file("s.h5.ckpt")});
  CHECK_MESSAGE(r.exit_code == 0, r.err);
}

TEST_CASE("reliability: demo-data replaces a world whole and refuses other non-empty folders") {
  test::TempDir t;
  fs::create_directory(t.file("mine"));
  test::write_text(t.file("mine/notes.txt"), "keep me");
  // Refused before any work (the demo encoder takes a minute to build).
  auto r = run_cli({"-q", "demo-data", "--out", t.file("mine"), "--n", "12", "--image-size", "64"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("not empty") != std::string::npos);
  CHECK(test::read_text(t.file("mine/notes.txt")) == "keep me");
  CHECK_THROWS_AS(demo::prepare_world_dir(t.file("mine")), InputError);
  CHECK(fs::exists(t.file("mine/notes.txt")));

  // A previous world (marked) loses its images, metadata and encoder, nothing else.
  fs::create_directories(t.file("w/images"));
  for (const char* f : {"w/images/stale.jpg", "w/meta.csv", "w/encoder.pt", "w/encoder.json", "w/workspace.json"})
    test::write_text(t.file(f), "old");
  test::write_text(t.file(std::string("w/") + demo::kWorldMarker), "conceptlab demo world\n");
  demo::prepare_world_dir(t.file("w"));
  for (const char* f : {"w/images", "w/meta.csv", "w/encoder.pt", "w/encoder.json"}) CHECK_FALSE(fs::exists(t.file(f)));
  CHECK(fs::exists(t.file("w/workspace.json")));
  CHECK_NOTHROW(demo::prepare_world_dir(t.file("new")));  // missing: fine
  test::write_text(t.file("afile"), "x");
  CHECK_THROWS_AS(demo::prepare_world_dir(t.file("afile")), InputError);
}

#ifdef CONCEPTLAB_FUZZ_BIN
TEST_CASE("reliability: every reader survives mutated files (short fuzz run)") {
  auto r = test::run_program(CONCEPTLAB_FUZZ_BIN, {"--per-kind", "120", "--seed", "7", "--timeout-s", "30", "--bin",
                                                   CONCEPTLAB_BIN});
  INFO(r.out);
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("crashes    0  hangs    0") != std::string::npos);
}
#endif

TEST_CASE("reliability: JSON nested past the limit is one line naming the file, never a stack overflow") {
  test::TempDir t;
  constexpr int kDeep = 200000;
  std::string deep_object;
  for (int i = 0; i < kDeep; ++i) deep_object += "{\"a\":";
  deep_object += "1" + std::string(kDeep, '}');
  test::write_text(t.file("deep_object.json"), deep_object);
  test::write_text(t.file("deep_array.json"), std::string(kDeep, '[') + std::string(kDeep, ']'));
  for (const char* name : {"deep_object.json", "deep_array.json"}) {
    CAPTURE(name);
    // A pipeline config and a command's --config (before this limit: SIGSEGV).
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"-q", "run", t.file(name), "--workspace", t.file("ws")},
             {"-q", "sae", "train", "--config", t.file(name), "--embeddings", t.file("none.h5"), "--out", t.file("s.h5")}}) {
      const auto r = run_cli(args);
      CHECK(r.exit_code == 1);
      CHECK(r.err.find(t.file(name) + ": JSON nested deeper than 256 levels") != std::string::npos);
      CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    }
    // Edit files (intervene --edits, view --edits), manifests, preprocessing files.
    CHECK_THROWS_WITH_AS(explain::read_edits(t.file(name), 64), doctest::Contains("nested deeper"), InputError);
    CHECK_THROWS_WITH_AS(read_manifest(t.file(name)), doctest::Contains("nested deeper"), InputError);
    CHECK_THROWS_WITH_AS(embed::load_preprocess(t.file(name)), doctest::Contains("nested deeper"), InputError);
  }
  // A config stored in an HDF5 attribute (every format's root "config").
  {
    h5::File f = h5::create(t.file("a.h5"));
    f.path = t.file("a.h5");
    h5::write_header(f, "conceptlab.test", deep_object);
    CHECK_THROWS_WITH_AS(h5::read_attr_json(f, f.get(), "config"), doctest::Contains("a.h5: attribute 'config'"), InputError);
  }
  // The limit itself: 256 levels parse, 257 do not.
  CHECK(parse_json(std::string(256, '[') + std::string(256, ']'), "ok").is_array());
  CHECK_THROWS_AS(parse_json(std::string(257, '[') + std::string(257, ']'), "x"), InputError);
}
