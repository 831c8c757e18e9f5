// Fuzzes every file reader. Valid files of each kind are made once (core writers here; the SAE
// checkpoint and latent index by the conceptlab binary, the .pth by Python's torch when present,
// so this process never starts LibTorch's thread pools before it forks). Each is mutated
// (truncations, byte flips, overwritten 16-byte runs in the first 8 KiB where HDF5 keeps its
// metadata, inserted and deleted bytes, and for text formats edits of one field to a hostile
// value), and every mutant is read in a forked child under a time limit and a memory limit.
// A child must exit 0 (read fine) or 1 (a clean InputError); anything else is counted:
// "unclean" (another exception type), "crash" (a signal) or "hang" (killed at the time limit).
//   fuzz_readers [--per-kind N] [--seed S] [--timeout-s T] [--kinds a,b] [--keep DIR] [--bin PATH]
//   fuzz_readers --read KIND FILE   (reads one kept mutant in-process, for a debugger)
// Prints one line per kind and a total; exits 1 when any mutant crashed, hung or failed uncleanly
// (a short run is part of the test suite; the long run's counts go in the closing note).
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cbm/dataset.h"
#include "core/activations.h"
#include "core/csv.h"
#include "core/embeddings.h"
#include "core/device.h"
#include "core/error.h"
#include "core/h5.h"
#include "core/progress.h"
#include "core/latent_index.h"
#include "core/latent_names.h"
#include "core/linear_model.h"
#include "core/npy.h"
#include "core/sae_weights.h"
#include "core/vocab.h"
#include "explain/intervention.h"
#include "sae/sae.h"

namespace fs = std::filesystem;
using namespace cl;

namespace {

constexpr int64_t kN = 48, kD = 12, kL = 16;

struct Kind {
  std::string name;
  std::string valid_path;
  bool text = false;
  std::function<void(const std::string&)> read;  // throws on bad input
};

struct Counts {
  int64_t tried = 0, ok = 0, clean = 0, guarded = 0, unclean = 0, crash = 0, hang = 0;
};

int run(const std::vector<std::string>& args) {
  std::string cmd;
  for (const auto& a : args) cmd += "'" + a + "' ";
  return std::system((cmd + ">/dev/null 2>&1").c_str());
}

std::string read_all(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const std::string& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(s.data(), static_cast<std::streamsize>(s.size()));
}

// One mutant of `s`: the kind of mutation is drawn first, then its parameters.
std::string mutate(const std::string& s, bool text, std::mt19937_64& rng) {
  std::string m = s;
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  const size_t head = std::min<size_t>(m.size(), 8192);
  switch (rng() % (text ? 6 : 5)) {
    case 0:  // truncation
      m.resize(pick(m.size()));
      break;
    case 1: {  // 1-8 byte flips anywhere
      const int n = 1 + static_cast<int>(rng() % 8);
      for (int k = 0; k < n && !m.empty(); ++k) m[pick(m.size())] ^= static_cast<char>(1 + rng() % 255);
      break;
    }
    case 2: {  // 16 random bytes over the metadata region
      const size_t at = pick(head);
      for (size_t k = 0; k < 16 && at + k < m.size(); ++k) m[at + k] = static_cast<char>(rng() & 0xff);
      break;
    }
    case 3: {  // 1-4 byte flips in the first 8 KiB
      const int n = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < n && head > 0; ++k) m[pick(head)] ^= static_cast<char>(1 << (rng() % 8));
      break;
    }
    case 4: {  // insert or delete a run
      const size_t at = pick(m.size() + 1), len = 1 + pick(64);
      if (rng() & 1) m.insert(at, std::string(len, static_cast<char>(rng() & 0xff)));
      else m.erase(at, len);
      break;
    }
    default: {  // text: one field (between separators) replaced by a hostile value
      static const std::vector<std::string> kHostile = {
          "", "nan", "-nan", "inf", "-1", "0", "1e308", "-1e308", "99999999999999999999999", "4294967299",
          "\xff\xfe", "null", "[]", "{}", "\"", ",", "\n", "1.7", "-0", std::string(5000, 'x'), "[[[[[[[[[[",
          "{\"a\":", "true", "\"zero\"", "1e-320"};
      std::vector<size_t> cuts{0};
      for (size_t i = 0; i < m.size(); ++i)
        if (m[i] == ',' || m[i] == '\n' || m[i] == ':' || m[i] == '[' || m[i] == '{') cuts.push_back(i + 1);
      const size_t a = cuts[pick(cuts.size())];
      size_t b = a;
      while (b < m.size() && m[b] != ',' && m[b] != '\n' && m[b] != '}' && m[b] != ']') ++b;
      m.replace(a, b - a, kHostile[pick(kHostile.size())]);
    }
  }
  return m;
}

// Reads path in a forked child: 0 ok, 1 clean error, 3 other exception; the parent turns a
// signal into a crash and the time limit into a hang.
enum class Outcome { ok, clean, guarded, unclean, crash, hang };

Outcome read_in_child(const Kind& k, const std::string& path, double timeout_s) {
  const pid_t pid = fork();
  if (pid == 0) {
    rlimit lim{size_t{6} << 30, size_t{6} << 30};
    setrlimit(RLIMIT_AS, &lim);
    if (FILE* null = std::fopen("/dev/null", "w")) dup2(fileno(null), 2);
    int code = 0;
    try {
      k.read(path);
    } catch (const InputError&) {
      code = 1;
    } catch (const UsageError&) {
      code = 1;
    } catch (const std::exception& e) {
      std::fprintf(stdout, "    unclean %s: %s\n", k.name.c_str(), e.what());
      std::fflush(stdout);
      code = 3;
    }
    _exit(code);
  }
  const auto t0 = std::chrono::steady_clock::now();
  int status = 0;
  while (true) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > timeout_s) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return Outcome::hang;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  if (WIFSIGNALED(status)) return Outcome::crash;
  const int code = WEXITSTATUS(status);
  return code == 0 ? Outcome::ok : code == 1 ? Outcome::clean : code == 4 ? Outcome::guarded : Outcome::unclean;
}

std::string self_dir() { return fs::canonical("/proc/self/exe").parent_path().string(); }

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::off);  // the children's logs would drown the counts
  setenv("CONCEPTLAB_HDF5_FAULT_EXIT", "4", 1);
  h5::install_fault_guard();
  int64_t per_kind = 2000;
  uint64_t seed = 1;
  double timeout_s = 20;
  std::string keep_dir, only, bin = self_dir() + "/../tools/conceptlab", read_kind, read_file;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--per-kind") per_kind = std::stoll(next());
    else if (a == "--seed") seed = std::stoull(next());
    else if (a == "--timeout-s") timeout_s = std::stod(next());
    else if (a == "--keep") keep_dir = next();
    else if (a == "--kinds") only = "," + next() + ",";
    else if (a == "--bin") bin = next();
    else if (a == "--read") read_kind = next(), read_file = next();
    else {
      std::fprintf(stderr, "usage: fuzz_readers [--per-kind N] [--seed S] [--timeout-s T] [--kinds a,b] [--keep DIR] [--bin PATH]\n");
      return 2;
    }
  }
  const fs::path dir = fs::temp_directory_path() / ("conceptlab-fuzz-" + std::to_string(getpid()));
  fs::create_directories(dir);
  auto f = [&](const std::string& name) { return (dir / name).string(); };

  // ---- valid files
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> gauss;
  std::vector<float> x(static_cast<size_t>(kN * kD));
  for (auto& v : x) v = gauss(rng);
  write_npy<float>(f("x.npy"), x.data(), {kN, kD});
  CsvTable ids;
  ids.header = {"ImageID", "label", "hair"};
  for (int64_t i = 0; i < kN; ++i)
    ids.rows.push_back({fmt::format("img_{:03d}.jpg", i), i % 2 ? "malignant" : "benign", i % 3 ? "0" : "1"});
  write_csv(f("meta.csv"), ids);
  if (run({bin, "-q", "import-npy", "--npy", f("x.npy"), "--ids", f("meta.csv"), "--out", f("emb.h5")}) != 0 ||
      run({bin, "-q", "sae", "train", "--embeddings", f("emb.h5"), "--out", f("sae.h5"), "--n-latents",
           std::to_string(kL), "--k", "4", "--epochs", "2", "--batch", "16", "--device", "cpu",
           "--checkpoint-every", "1"}) != 0 ||
      run({bin, "-q", "sae", "encode", "--sae", f("sae.h5"), "--embeddings", f("emb.h5"), "--out", f("acts.h5"),
           "--device", "cpu"}) != 0 ||
      run({bin, "-q", "cbm", "fit", "--features", f("acts.h5"), "--labels", f("meta.csv"), "--label-col", "label",
           "--splits", "2", "--out", f("cbm.h5")}) != 0 ||
      run({bin, "-q", "explain", "stats", "--activations", f("acts.h5"), "--out", f("index.h5")}) != 0) {
    std::fprintf(stderr, "fuzz_readers: making the valid files with %s failed\n", bin.c_str());
    return 2;
  }
  Vocab voc;
  voc.dim = kD;
  for (const char* n : {"hair", "ruler", "ink", "pigment network"}) voc.names.push_back(n);
  voc.embeddings.resize(voc.names.size() * kD);
  for (auto& v : voc.embeddings) v = gauss(rng);
  write_vocab(f("vocab.h5"), voc);
  LatentNames names;
  names.set({2, "hair", "annotation", 0.91});
  names.set({5, "ruler", "direction", 0.4});
  write_latent_names(f("names.h5"), names);
  write_all(f("edits.json"),
            R"({"format": "conceptlab.edits", "schema_version": 1, "edits": [{"latent": 2, "op": "zero", "value": 0},)"
            R"( {"latent": 5, "op": "scale", "value": 0.5}, {"latent": 7, "op": "clamp", "value": 1.25}]})");
  const bool have_pth =
      std::system(("/usr/bin/python3 -c \"import torch; t=torch.randn; torch.save({'model_state_dict': {'tied_bias': t(1," +
                   std::to_string(kD) + "), 'encoder._weight': t(1," + std::to_string(kL) + "," + std::to_string(kD) +
                   "), 'encoder._bias': t(1," + std::to_string(kL) + "), 'decoder._weight': t(1," +
                   std::to_string(kD) + "," + std::to_string(kL) + ")}}, '" + f("ref.pth") +
                   "')\" >/dev/null 2>&1")
                      .c_str()) == 0;

  const Activations acts_valid = read_activations(f("acts.h5"));
  cbm::Features feats;
  feats.kind = "activations";
  feats.ids = acts_valid.ids;
  feats.X = acts_valid.acts;
  sae::TrainParams tp;
  tp.n_latents = kL;
  tp.k = 4;
  tp.epochs = 2;
  tp.batch = 16;
  tp.checkpoint_every = 1;

  std::vector<Kind> kinds = {
      {"embeddings", f("emb.h5"), false,
       [](const std::string& p) {
         read_embeddings(p, true);
         EmbeddingsReader r(p);
         for (const auto& c : r.columns())
           for (size_t i = 0; i < r.ids().size(); ++i) c.value_string(i);
       }},
      {"activations", f("acts.h5"), false, [](const std::string& p) { read_activations(p); }},
      {"sae", f("sae.h5"), false, [](const std::string& p) { sae::Model::load(p, Device(c10::kCPU)); }},
      {"linear", f("cbm.h5"), false, [](const std::string& p) { read_linear(p); }},
      {"vocab", f("vocab.h5"), false, [](const std::string& p) { read_vocab(p); }},
      {"index", f("index.h5"), false, [](const std::string& p) { read_latent_index(p); }},
      {"names", f("names.h5"), false, [](const std::string& p) { read_latent_names(p); }},
      {"checkpoint", f("sae.h5.ckpt"), false,
       [&](const std::string& p) {
         sae::TrainOptions opt;
         opt.resume_path = p;
         sae::train(x.data(), kN, kD, tp, Device(c10::kCPU), opt, silent_progress());
       }},
      {"npy", f("x.npy"), false, [](const std::string& p) { read_npy(p); }},
      {"csv", f("meta.csv"), true,
       [&](const std::string& p) {
         cbm::LoadParams lp;
         lp.features_path = "acts.h5";
         lp.labels_path = p;
         lp.label_col = "label";
         cbm::load_dataset(lp, feats);
       }},
      {"edits", f("edits.json"), true, [](const std::string& p) { explain::read_edits(p, kL); }},
  };
  if (have_pth)
    kinds.push_back({"pth", f("ref.pth"), false, [](const std::string& p) { sae::import_reference_pth(p); }});
  else
    std::printf("pth: skipped (python3 with torch not found to make a valid file)\n");

  if (!read_kind.empty()) {  // reproduce one kept mutant in this process (for a debugger)
    for (const auto& k : kinds)
      if (k.name == read_kind) {
        try {
          k.read(read_file);
          std::printf("read fine\n");
        } catch (const std::exception& e) {
          std::printf("error: %s\n", e.what());
        }
        return 0;
      }
    std::fprintf(stderr, "--read: unknown kind %s\n", read_kind.c_str());
    return 2;
  }
  Counts total;
  bool bad = false;
  for (const auto& k : kinds) {
    if (!only.empty() && only.find("," + k.name + ",") == std::string::npos) continue;
    const std::string valid = read_all(k.valid_path);
    if (read_in_child(k, k.valid_path, timeout_s) != Outcome::ok) {
      std::printf("%s: the valid file does not read; harness broken\n", k.name.c_str());
      return 2;
    }
    Counts c;
    std::mt19937_64 mr(seed * 1000003 + std::hash<std::string>{}(k.name));
    const std::string mpath = f("mutant-" + k.name + fs::path(k.valid_path).extension().string());
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < per_kind; ++i) {
      const std::string m = mutate(valid, k.text, mr);
      write_all(mpath, m);
      const Outcome o = read_in_child(k, mpath, timeout_s);
      ++c.tried;
      switch (o) {
        case Outcome::ok: ++c.ok; break;
        case Outcome::clean: ++c.clean; break;
        case Outcome::guarded: ++c.guarded; break;
        case Outcome::unclean: ++c.unclean; break;
        case Outcome::crash: ++c.crash; break;
        case Outcome::hang: ++c.hang; break;
      }
      if (o != Outcome::ok && o != Outcome::clean && o != Outcome::guarded && !keep_dir.empty()) {
        fs::create_directories(keep_dir);
        write_all((fs::path(keep_dir) / fmt::format("{}-{}-{}", k.name, i, o == Outcome::crash ? "crash" : o == Outcome::hang ? "hang" : "unclean")).string(), m);
      }
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%-12s tried %6lld  read %6lld  clean errors %6lld  hdf5 faults caught %4lld  unclean %4lld  crashes %4lld  hangs %4lld  (%.1f s)\n",
                k.name.c_str(), (long long)c.tried, (long long)c.ok, (long long)c.clean, (long long)c.guarded,
                (long long)c.unclean, (long long)c.crash, (long long)c.hang, secs);
    std::fflush(stdout);
    total.tried += c.tried, total.ok += c.ok, total.clean += c.clean, total.unclean += c.unclean;
    total.guarded += c.guarded;
    total.crash += c.crash, total.hang += c.hang;
    bad = bad || c.unclean || c.crash || c.hang;
  }
  std::printf("total        tried %6lld  read %6lld  clean errors %6lld  hdf5 faults caught %4lld  unclean %4lld  crashes %4lld  hangs %4lld\n",
              (long long)total.tried, (long long)total.ok, (long long)total.clean, (long long)total.guarded,
              (long long)total.unclean, (long long)total.crash, (long long)total.hang);
  std::error_code ec;
  fs::remove_all(dir, ec);
  return bad ? 1 : 0;
}
