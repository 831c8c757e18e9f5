// A full disk (a file size limit, `ulimit -f`, with SIGXFSZ ignored so writes fail with EFBIG
// instead of killing the process): every HDF5 writer reports it as exit 1 naming the output,
// leaves the previous output byte for byte, leaves no temp file, and does not crash at exit
// (libhdf5's atexit handler used to segfault on the file whose close had failed).
#include <doctest/doctest.h>

#include <filesystem>

#include "core/embeddings.h"
#include "core/random.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;
using namespace cl;

namespace {

// Runs conceptlab with a 64 KiB file size limit (dash's ulimit -f counts 512-byte blocks).
test::RunResult run_limited(const std::vector<std::string>& args) {
  std::string cmd = "ulimit -f 128; trap '' XFSZ; exec '" CONCEPTLAB_BIN "'";
  for (const auto& a : args) cmd += " '" + a + "'";
  return test::run_program("/bin/sh", {"-c", cmd});
}

size_t n_files(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.is_regular_file();
  return n;
}

}  // namespace

TEST_CASE("full disk: writers fail with exit 1 and keep the previous output intact") {
  test::TempDir t;
  Embeddings e;
  e.n = 2000, e.dim = 128;
  Rng rng(3);
  for (int64_t i = 0; i < e.n; ++i) e.ids.push_back("img" + std::to_string(i));
  e.data.resize(static_cast<size_t>(e.n * e.dim));
  for (auto& v : e.data) v = static_cast<float>(rng.normal());
  write_embeddings(t.file("e.h5"), e);
  REQUIRE(test::run_cli({"-q", "sae", "train", "--embeddings", t.file("e.h5"), "--out", t.file("sae.h5"), "--n-latents",
                         "256", "--k", "16", "--epochs", "1"}).exit_code == 0);
  REQUIRE(test::run_cli({"-q", "sae", "encode", "--sae", t.file("sae.h5"), "--embeddings", t.file("e.h5"), "--out",
                         t.file("acts.h5")}).exit_code == 0);
  REQUIRE(test::run_cli({"-q", "export-npy", "--in", t.file("e.h5"), "--out", t.file("e.npy"), "--ids-out",
                         t.file("ids.csv")}).exit_code == 0);
  const std::string acts_before = test::read_text(t.file("acts.h5"));
  const size_t files_before = n_files(t.path.string());

  // Re-encoding over an existing activations file.
  auto r = run_limited({"-q", "sae", "encode", "--sae", t.file("sae.h5"), "--embeddings", t.file("e.h5"), "--out", t.file("acts.h5")});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("acts.h5") != std::string::npos);
  CHECK(r.err.find("disk full") != std::string::npos);
  CHECK(test::read_text(t.file("acts.h5")) == acts_before);
  // Importing embeddings (the embeddings writer).
  r = run_limited({"-q", "import-npy", "--npy", t.file("e.npy"), "--ids", t.file("ids.csv"), "--out", t.file("e2.h5")});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("disk full") != std::string::npos);
  CHECK_FALSE(fs::exists(t.file("e2.h5")));
  // Training: the first checkpoint write fails; no SAE file appears.
  r = run_limited({"-q", "sae", "train", "--embeddings", t.file("e.h5"), "--out", t.file("sae2.h5"), "--n-latents", "256",
                   "--k", "16", "--epochs", "2", "--checkpoint-every", "1"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("disk full") != std::string::npos);
  CHECK(r.err.find("sae2.h5") != std::string::npos);
  CHECK_FALSE(fs::exists(t.file("sae2.h5")));
  // No temp files left behind (a training log may remain: it is the record of the failure).
  fs::remove(t.file("sae2.h5.log.jsonl"));
  CHECK(n_files(t.path.string()) == files_before);
}
