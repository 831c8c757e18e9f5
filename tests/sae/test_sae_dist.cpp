// Data-parallel SAE training on c10d Gloo, with the ranks as threads of this process joined by a
// file store: W ranks sharing one global batch follow the single-process run (every
// architecture, resampling and AuxK on, ranks left with no rows of some batches, streamed
// shards), the shard layout, and the rank-agreement errors. Skips where no backend was built.
#include "tests/torch_doctest.h"

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <functional>
#include <thread>

#include "core/embeddings.h"
#include "core/error.h"
#include "sae/batch_source.h"
#include "sae/dist.h"
#include "sae/sae.h"
#include "tests/sae/sae_test_data.h"
#include "tests/test_util.h"

using namespace cl;

namespace {

const torch::Device kCpu(torch::kCPU);

// Runs fn(comm) on `world` threads joined through a fresh file store; rethrows the first error.
void run_ranks(int world, const std::string& store_path, const std::function<void(sae::Comm&)>& fn) {
  std::vector<std::exception_ptr> errs(static_cast<size_t>(world));
  std::vector<std::thread> ts;
  for (int r = 0; r < world; ++r)
    ts.emplace_back([&, r] {
      try {
        sae::DistParams dp;
        dp.rank = r;
        dp.world_size = world;
        dp.init = "file://" + store_path;
        dp.timeout_s = 120;
        auto comm = sae::connect(dp, kCpu);
        fn(*comm);
      } catch (...) {
        errs[static_cast<size_t>(r)] = std::current_exception();
      }
    });
  for (auto& t : ts) t.join();
  for (auto& e : errs)
    if (e) std::rethrow_exception(e);
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(static_cast<double>(a[i]) - b[i]));
  return m;
}

double weights_diff(const SaeWeights& a, const SaeWeights& b) {
  return std::max({max_abs_diff(a.W_enc, b.W_enc), max_abs_diff(a.b_enc, b.b_enc), max_abs_diff(a.W_dec, b.W_dec),
                   max_abs_diff(a.b_dec, b.b_dec)});
}

sae::TrainParams dist_params(const std::string& arch) {
  sae::TrainParams p;
  p.arch = arch;
  p.expansion = 4;
  p.k = 4;
  p.batch = 60;
  p.epochs = 3;
  p.lr = 3e-3;
  p.l1 = 0.05;
  p.dead_window = 90;      // short: dead latents (AuxK, resampling) from the first epoch
  p.resample_every = 4;    // relu-l1 only
  p.aux_k = 8;
  p.checkpoint_every = 0;
  p.seed = 9;
  return p;
}

}  // namespace

TEST_CASE("sae dist: shards partition the rows in rank order") {
  for (int64_t n : {0, 1, 7, 100, 1001})
    for (int w : {1, 2, 3, 8}) {
      int64_t next = 0;
      for (int r = 0; r < w; ++r) {
        auto s = sae::shard_of(n, r, w);
        CHECK(s.lo == next);
        CHECK(s.hi >= s.lo);
        CHECK(s.hi - s.lo <= n / w + 1);
        next = s.hi;
      }
      CHECK(next == n);
    }
}

TEST_CASE("sae dist: W ranks with the global batch train the SAE one process trains") {
  if (!sae::dist_available(kCpu)) {
    MESSAGE("skipped: no c10d backend in this build (" << sae::dist_backends() << ")");
    return;
  }
  test::TempDir tmp;
  const int64_t n = 530, d = 12;
  auto g = test::make_ground_truth(n, d, 24, 5);
  int store_no = 0;
  for (const std::string arch : {"topk", "batchtopk", "matryoshka-batchtopk", "relu-l1"}) {
    for (int world : {2, 3}) {
      CAPTURE(arch);
      CAPTURE(world);
      auto p = dist_params(arch);
      // 3 ranks with batch 3: some ranks hold no row of a batch and still take part in every step.
      if (world == 3 && arch == "topk") p.batch = 3, p.epochs = 1;
      // relu-l1: a strong L1 and a 1-input window kill latents, so every 4th step resamples.
      if (arch == "relu-l1") p.l1 = 1.0, p.lr = 1e-2, p.dead_window = 1;
      const SaeWeights one = sae::train(g.x.data(), n, d, p, kCpu, sae::TrainOptions{});
      std::vector<SaeWeights> got(static_cast<size_t>(world));
      run_ranks(world, tmp.file("store" + std::to_string(store_no++)), [&](sae::Comm& comm) {
        sae::TrainOptions opt;
        opt.comm = &comm;
        got[static_cast<size_t>(comm.rank())] = sae::train(g.x.data(), n, d, p, kCpu, opt);
      });
      const double diff = weights_diff(one, got[0]);
      MESSAGE(arch << ", " << world << " ranks, batch " << p.batch << ": max |w_dist - w_single| = " << diff);
      CHECK(diff < 2e-5);
      CHECK(std::abs(one.threshold - got[0].threshold) <= 1e-5 * (1 + std::abs(one.threshold)));
      for (int r = 1; r < world; ++r) CHECK(weights_diff(got[0], got[static_cast<size_t>(r)]) == 0.0);
      CHECK(got[0].config["world_size"].get<int>() == world);
      CHECK(got[0].metrics.contains("fvu"));
      CHECK(!got[1].metrics.contains("fvu"));  // only rank 0 evaluates
      CHECK(one.metrics["last_epoch"]["fvu"].get<double>() ==
            doctest::Approx(got[0].metrics["last_epoch"]["fvu"].get<double>()).epsilon(1e-6));
      if (arch == "relu-l1") {
        // The comparison covers resampling only if it changed the run.
        auto q = p;
        q.resample_every = 0;
        CHECK(weights_diff(one, sae::train(g.x.data(), n, d, q, kCpu, sae::TrainOptions{})) > 1e-3);
      }
    }
  }
}

TEST_CASE("sae dist: streamed shards follow the streamed single-process run") {
  if (!sae::dist_available(kCpu)) return;
  test::TempDir tmp;
  const int64_t n = 700, d = 16;
  auto g = test::make_ground_truth(n, d, 24, 6);
  Embeddings e;
  e.n = n;
  e.dim = d;
  e.data = g.x;
  for (int64_t i = 0; i < n; ++i) e.ids.push_back("r" + std::to_string(i));
  const auto path = tmp.file("e.h5");
  write_embeddings(path, e);
  EmbeddingsReader reader(path);
  auto p = dist_params("batchtopk");
  p.memory_gb = 16.0 * 64 * 4 / 1073741824.0;  // ~64 rows of buffer: many refills with carried rows
  const SaeWeights one = sae::train(reader, p, kCpu, sae::TrainOptions{});
  CHECK(one.metrics.contains("fvu"));
  SaeWeights got;
  run_ranks(2, tmp.file("store"), [&](sae::Comm& comm) {
    EmbeddingsReader r(path);
    sae::TrainOptions opt;
    opt.comm = &comm;
    auto w = sae::train(r, p, kCpu, opt);
    if (comm.rank() == 0) got = w;
  });
  const double diff = weights_diff(one, got);
  MESSAGE("streamed, 2 ranks: max |w_dist - w_single| = " << diff);
  CHECK(diff < 2e-5);
  CHECK(got.metrics["fvu"].get<double>() == doctest::Approx(one.metrics["fvu"].get<double>()).epsilon(1e-6));
}

TEST_CASE("sae dist: ranks that disagree or fail stop together with a message naming it") {
  if (!sae::dist_available(kCpu)) return;
  test::TempDir tmp;
  std::vector<std::string> msgs(2);
  run_ranks(2, tmp.file("s1"), [&](sae::Comm& comm) {
    try {
      sae::check_same_on_all_ranks(comm, comm.rank() == 0 ? 1000 : 999, "e.h5: row count");
    } catch (const InputError& e) {
      msgs[static_cast<size_t>(comm.rank())] = e.what();
    }
  });
  for (auto& m : msgs) {
    CHECK(m.find("e.h5: row count") != std::string::npos);
    CHECK(m.find("[999, 1000]") != std::string::npos);
  }
  std::vector<std::string> stage(2);
  run_ranks(2, tmp.file("s2"), [&](sae::Comm& comm) {
    try {
      sae::on_all_ranks(&comm, "to open their inputs", [&] {
        if (comm.rank() == 1) throw_input("missing.h5: no such file");
      });
    } catch (const InputError& e) {
      stage[static_cast<size_t>(comm.rank())] = e.what();
    }
  });
  CHECK(stage[1] == "missing.h5: no such file");  // the failing rank keeps its own error
  CHECK(stage[0].find("rank(s) 1 failed to open their inputs") != std::string::npos);
}

TEST_CASE("sae dist: environment and init errors name the variable and value") {
  struct Env {
    const char* name;
    std::string old;
    bool had;
    explicit Env(const char* n, const char* v) : name(n), had(std::getenv(n) != nullptr) {
      if (had) old = std::getenv(n);
      setenv(n, v, 1);
    }
    ~Env() {
      if (had)
        setenv(name, old.c_str(), 1);
      else
        unsetenv(name);
    }
  };
  {
    Env w("WORLD_SIZE", "two");
    CHECK_THROWS_WITH_AS(sae::dist_params_from_environment(), doctest::Contains("WORLD_SIZE='two'"), InputError);
  }
  {
    Env w("WORLD_SIZE", "2"), r("RANK", "2");
    CHECK_THROWS_WITH_AS(sae::dist_params_from_environment(), doctest::Contains("RANK='2', expected an integer in [0, 1]"),
                         InputError);
  }
  {
    Env w("WORLD_SIZE", "4"), r("RANK", "3"), port("MASTER_PORT", "29999");
    auto p = sae::dist_params_from_environment();
    CHECK(p.world_size == 4);
    CHECK(p.rank == 3);
    CHECK(p.master_port == 29999);
  }
  {
    // Slurm's variables count only when asked (--dist): a command run directly inside a
    // 4-task allocation is one process, not rank 0 of 4 waiting for three more.
    Env n("SLURM_NTASKS", "4"), id("SLURM_PROCID", "2"), w("WORLD_SIZE", "1");
    unsetenv("WORLD_SIZE");
    CHECK(sae::dist_params_from_environment().world_size == 1);
    auto p = sae::dist_params_from_environment(true);
    CHECK(p.world_size == 4);
    CHECK(p.rank == 2);
  }
  if (sae::dist_available(kCpu)) {
    sae::DistParams p;
    p.init = "udp://x";
    CHECK_THROWS_WITH_AS(sae::connect(p, kCpu), doctest::Contains("expected env://, tcp://HOST:PORT or file:///path"),
                         InputError);
    p.init = "tcp://localhost";
    CHECK_THROWS_WITH_AS(sae::connect(p, kCpu), doctest::Contains("expected tcp://HOST:PORT"), InputError);
  }
}
