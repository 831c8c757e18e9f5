// Data-parallel SAE training on c10d Gloo, with the ranks as threads of this process joined by a
// file store: W ranks sharing one global batch follow the single-process run (every
// architecture, resampling and AuxK on, ranks left with no rows of some batches, streamed
// shards), the shard layout, and the rank-agreement errors. Skips where no backend was built.
#include "tests/torch_doctest.h"

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <numeric>
#include <thread>

#include <fmt/format.h>

#include "core/embeddings.h"
#include "core/error.h"
#include "sae/batch_source.h"
#include "sae/dist.h"
#include "sae/sae.h"
#include "sae/trainer.h"
#include "tests/sae/sae_test_data.h"
#include "tests/test_util.h"

using namespace cl;

namespace {

const torch::Device kCpu(torch::kCPU);

// Runs fn(comm) on `world` threads joined through a fresh file store; rethrows the first error.
void run_ranks(int world, const std::string& store_path, const std::function<void(sae::Comm&)>& fn,
               torch::Device device = kCpu) {
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
        auto comm = sae::connect(dp, device);
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
      // The ranks evaluate their shards together: every rank has the metrics of all n rows (to
      // float32 rounding: the shards' rows go through the products in other blocks).
      const auto whole = sae::Model(got[0], kCpu).evaluate(g.x.data(), n, sae::ApplyParams{sae::kDefaultApplyBatch, p.dead_window});
      for (int r = 0; r < world; ++r) {
        const auto& m = got[static_cast<size_t>(r)].metrics;
        CHECK(m["n"].get<int64_t>() == n);
        CHECK(m["fvu"].get<double>() == doctest::Approx(whole.fvu).epsilon(1e-6));
        CHECK(m["l0"].get<double>() == doctest::Approx(whole.l0).epsilon(1e-6));
        CHECK(m["n_dead"].get<int64_t>() == whole.n_dead);
      }
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

TEST_CASE("sae dist: the batchtopk cut from small offers, or from K offers when one rank holds the top, is one process's") {
  if (!sae::dist_available(kCpu)) return;
  test::TempDir tmp;
  const int64_t n = 480, d = 12, B = 96, steps = n / B;
  auto g = test::make_ground_truth(n, d, 24, 8);
  auto p = dist_params("batchtopk");
  p.batch = B;
  const auto x_all = torch::from_blob(g.x.data(), {n, d}, torch::kFloat32).clone();
  int store_no = 0;
  // skew 1: values spread evenly, the small offers decide; skew 8: rank 0's rows of every batch
  // are 8x larger, so its values fill the global top K and every rank must offer K.
  for (const double skew : {1.0, 8.0})
    for (int world : {2, 3}) {
      CAPTURE(skew);
      CAPTURE(world);
      auto x = x_all.clone();
      const auto sh0 = sae::shard_of(B, 0, world);
      for (int64_t s = 0; s < steps; ++s) x.slice(0, s * B + sh0.lo, s * B + sh0.hi).mul_(skew);
      // Batch s is rows [s B, (s + 1) B); rank r holds its rows shard_of(B, r, W).
      sae::Trainer one(p, d, n, kCpu);
      one.init(x.slice(0, 0, 256));
      for (int64_t s = 0; s < steps; ++s) one.step(x.slice(0, s * B, (s + 1) * B), steps);
      std::vector<std::unique_ptr<sae::Trainer>> trs(static_cast<size_t>(world));
      run_ranks(world, tmp.file("store" + std::to_string(store_no++)), [&](sae::Comm& comm) {
        auto tr = std::make_unique<sae::Trainer>(p, d, n, kCpu);
        tr->comm = &comm;
        tr->init(x.slice(0, 0, 256));
        const auto sh = sae::shard_of(B, comm.rank(), comm.size());
        std::vector<int64_t> pos(static_cast<size_t>(sh.hi - sh.lo));
        std::iota(pos.begin(), pos.end(), sh.lo);
        for (int64_t s = 0; s < steps; ++s) tr->step(x.slice(0, s * B + sh.lo, s * B + sh.hi), steps, B, &pos);
        trs[static_cast<size_t>(comm.rank())] = std::move(tr);
      });
      const auto& t0 = trs[0]->t;
      const double diff = std::max({(t0.W_enc - one.t.W_enc).abs().max().item<double>(),
                                    (t0.W_dec - one.t.W_dec).abs().max().item<double>(),
                                    (t0.b_enc - one.t.b_enc).abs().max().item<double>(),
                                    (t0.b_dec - one.t.b_dec).abs().max().item<double>()});
      MESSAGE("skew " << skew << ", " << world << " ranks: max |w_dist - w_single| = " << diff << ", "
                      << trs[0]->full_offers << " of " << steps << " steps needed K offers");
      CHECK(diff < 2e-5);
      CHECK(trs[0]->threshold.item<double>() == doctest::Approx(one.threshold.item<double>()).epsilon(1e-5));
      if (skew == 1.0) CHECK(trs[0]->full_offers < steps);
      if (skew == 8.0) CHECK(trs[0]->full_offers == steps);
      for (auto& tr : trs) CHECK(tr->full_offers == trs[0]->full_offers);  // every rank decides alike
    }
}

TEST_CASE("sae dist: ranks evaluating their shards get the metrics of one pass over all rows") {
  if (!sae::dist_available(kCpu)) return;
  test::TempDir tmp;
  const int64_t n = 530, d = 12;
  const auto path = tmp.file("e.h5");
  auto g = test::write_ground_truth_embeddings(path, n, d, 24, 5);
  auto p = dist_params("matryoshka-batchtopk");
  p.epochs = 1;
  const sae::Model model(sae::train(g.x.data(), n, d, p, kCpu, sae::TrainOptions{}), kCpu);
  int store_no = 0;
  // A 3-row window makes the dead count depend on where in the file each latent last fired,
  // which only global row numbers get right. Chunks of one row: a float32 product's rounding
  // depends on the rows it is blocked with, and here only the float64 merge may differ.
  for (int64_t window : {int64_t{3}, int64_t{100000}}) {
    const sae::ApplyParams ap{1, window};
    const sae::Metrics one = model.evaluate(g.x.data(), n, ap);
    if (window == 3) REQUIRE(one.n_dead > 0);
    for (int world : {2, 3}) {
      CAPTURE(window);
      CAPTURE(world);
      std::vector<sae::Metrics> mem(static_cast<size_t>(world)), file(mem.size());
      run_ranks(world, tmp.file("store" + std::to_string(store_no++)), [&](sae::Comm& comm) {
        const auto sh = sae::shard_of(n, comm.rank(), comm.size());
        mem[static_cast<size_t>(comm.rank())] = model.evaluate(g.x.data() + sh.lo * d, sh.lo, sh.hi, n, &comm, ap);
        EmbeddingsReader r(path);
        file[static_cast<size_t>(comm.rank())] = model.evaluate(r, sh.lo, sh.hi, &comm, ap);
      });
      for (const auto* ms : {&mem, &file})
        for (const auto& m : *ms) {
          CHECK(m.n == n);
          CHECK(m.n_dead == one.n_dead);
          CHECK(m.dead_window == one.dead_window);
          CHECK(m.mse == doctest::Approx(one.mse).epsilon(1e-12));
          CHECK(m.fvu == doctest::Approx(one.fvu).epsilon(1e-12));
          CHECK(m.l0 == doctest::Approx(one.l0).epsilon(1e-12));
          CHECK(m.l1 == doctest::Approx(one.l1).epsilon(1e-12));
          REQUIRE(m.fvu_prefix.size() == one.fvu_prefix.size());
          for (size_t i = 0; i < m.fvu_prefix.size(); ++i)
            CHECK(m.fvu_prefix[i] == doctest::Approx(one.fvu_prefix[i]).epsilon(1e-12));
        }
      for (int r = 1; r < world; ++r) CHECK(mem[static_cast<size_t>(r)].fvu == mem[0].fvu);  // the same on every rank
    }
  }
  // A shard alone (no process group) is its own set: its dead count uses its own rows.
  const auto alone = model.evaluate(g.x.data() + 100 * d, 100, 160, n, nullptr, sae::ApplyParams{7, 3});
  const auto copy = model.evaluate(g.x.data() + 100 * d, 60, sae::ApplyParams{7, 3});
  CHECK(alone.n == 60);
  CHECK(alone.n_dead == copy.n_dead);
  CHECK(alone.fvu == copy.fvu);
}

TEST_CASE("sae dist: streamed shards follow the streamed single-process run") {
  if (!sae::dist_available(kCpu)) return;
  test::TempDir tmp;
  const int64_t n = 700, d = 16;
  const auto path = tmp.file("e.h5");
  test::write_ground_truth_embeddings(path, n, d, 24, 6);
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

TEST_CASE("sae dist: one CUDA rank (NCCL where built in) trains the single-process SAE") {
  const torch::Device cuda(torch::kCUDA, 0);
  if (!torch::cuda::is_available() || !sae::dist_available(cuda)) {
    MESSAGE("skipped: no CUDA device, or no c10d backend for it (" << sae::dist_backends() << ")");
    return;
  }
  // One GPU here, and NCCL refuses two ranks on one device: world 1 runs every collective.
  test::TempDir tmp;
  const int64_t n = 530, d = 12;
  auto g = test::make_ground_truth(n, d, 24, 5);
  for (const std::string arch : {"topk", "batchtopk"}) {
    CAPTURE(arch);
    const auto p = dist_params(arch);
    const SaeWeights one = sae::train(g.x.data(), n, d, p, cuda, sae::TrainOptions{});
    SaeWeights got;
    std::string backend;
    run_ranks(1, tmp.file("store-" + arch), [&](sae::Comm& comm) {
      backend = comm.backend();
      auto t = torch::arange(3, torch::TensorOptions().dtype(torch::kFloat32).device(cuda));
      comm.all_reduce(t, sae::ReduceOp::max);
      CHECK(t.device().is_cuda());
      CHECK(t.cpu()[2].item<float>() == 2.0f);
      const auto all = comm.all_gather(t);
      CHECK(all.device().is_cuda());
      CHECK(all.dim() == 2);
      CHECK(all.size(0) == 1);
      sae::TrainOptions opt;
      opt.comm = &comm;
      got = sae::train(g.x.data(), n, d, p, cuda, opt);
    }, cuda);
    const double diff = weights_diff(one, got);
    MESSAGE(arch << " on " << backend << ", 1 CUDA rank: max |w_dist - w_single| = " << diff);
    CHECK(diff < 1e-4);
  }
}

TEST_CASE("sae dist: a rank that never starts is named by the ranks that wait for it") {
  if (!sae::dist_available(kCpu)) return;
  test::TempDir tmp;
  // World 3, ranks 0 and 1 started: both give up after the timeout, naming rank 2.
  for (const std::string& init : {"file://" + tmp.file("store"), fmt::format("tcp://127.0.0.1:{}", test::free_tcp_port())}) {
    CAPTURE(init);
    std::vector<std::string> msgs(2);
    std::vector<std::thread> ts;
    for (int r = 0; r < 2; ++r)
      ts.emplace_back([&, r] {
        sae::DistParams dp;
        dp.rank = r;
        dp.world_size = 3;
        dp.init = init;
        dp.timeout_s = 2;
        try {
          sae::connect(dp, kCpu);
          msgs[static_cast<size_t>(r)] = "joined";
        } catch (const std::exception& e) {
          msgs[static_cast<size_t>(r)] = e.what();
        }
      });
    for (auto& t : ts) t.join();
    for (int r = 0; r < 2; ++r) {
      const std::string& m = msgs[static_cast<size_t>(r)];
      CAPTURE(m);
      CHECK(m.find(fmt::format("rank {} of 3 waited 2 s", r)) != std::string::npos);
      CHECK(m.find("rank(s) 2 never joined (joined: 0, 1)") != std::string::npos);
    }
  }
  // Two processes as rank 0 of 2: the second is refused at once, the first names rank 1 missing.
  std::string first, second;
  const std::string init = "file://" + tmp.file("store-twice");
  auto join_as_0 = [&](std::string& msg) {
    sae::DistParams dp;
    dp.rank = 0;
    dp.world_size = 2;
    dp.init = init;
    dp.timeout_s = 2;
    try {
      sae::connect(dp, kCpu);
      msg = "joined";
    } catch (const std::exception& e) {
      msg = e.what();
    }
  };
  std::thread t([&] { join_as_0(first); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  join_as_0(second);
  t.join();
  CHECK(second.find("another process already joined as rank 0") != std::string::npos);
  CHECK(second.find("use a fresh --dist-init file") != std::string::npos);
  CHECK(first.find("rank(s) 1 never joined (joined: 0)") != std::string::npos);
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
    CHECK(m.find("(rank 0: 1000, rank 1: 999)") != std::string::npos);
  }
  // Several values in one gather: the first that differs is named, with every rank's value.
  run_ranks(2, tmp.file("s3"), [&](sae::Comm& comm) {
    const int64_t r = comm.rank();
    sae::check_same_on_all_ranks(comm, {{"same", 7}, {"also same", -1}});
    try {
      sae::check_same_on_all_ranks(comm, {{"same", 7}, {"dim", 10 + r}, {"later", r}});
      msgs[static_cast<size_t>(r)] = "no error";
    } catch (const InputError& e) {
      msgs[static_cast<size_t>(r)] = e.what();
    }
  });
  for (auto& m : msgs) {
    CHECK(m.find("disagree on dim (rank 0: 10, rank 1: 11)") != std::string::npos);
    CHECK(m.find("later") == std::string::npos);
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
    // File stores: refused at once, not after a wait (or never, as FileStore spins on junk).
    test::TempDir tmp;
    p.world_size = 2;
    p.timeout_s = 60;
    p.init = "file://" + tmp.file("no/such/folder/store");
    CHECK_THROWS_WITH_AS(sae::connect(p, kCpu), doctest::Contains("does not exist"), InputError);
    std::filesystem::create_directories(tmp.file("dir"));
    p.init = "file://" + tmp.file("dir");
    CHECK_THROWS_WITH_AS(sae::connect(p, kCpu), doctest::Contains("is a folder, expected a file path"), InputError);
    test::write_text(tmp.file("junk"), "junk\n");
    p.init = "file://" + tmp.file("junk");
    CHECK_THROWS_WITH_AS(sae::connect(p, kCpu), doctest::Contains("exists and is not a c10d file store"), InputError);
  }
  {
    // WORLD_SIZE without RANK would make every process rank 0.
    Env w("WORLD_SIZE", "2"), r("RANK", "0");
    unsetenv("RANK");
    CHECK_THROWS_WITH_AS(sae::dist_params_from_environment(), doctest::Contains("WORLD_SIZE=2 but RANK is unset"),
                         InputError);
  }
}
