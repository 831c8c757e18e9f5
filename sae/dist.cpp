// c10d process groups behind Comm: Gloo (CPU tensors; CUDA tensors staged through the host) and
// NCCL (CUDA tensors) where CMake found them in this LibTorch; the rendezvous store is a TCPStore
// served by rank 0 or a FileStore on a shared path.
#include "sae/dist.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "core/error.h"

#ifdef CONCEPTLAB_WITH_GLOO
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#ifdef CONCEPTLAB_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace cl::sae {

namespace {

// The variable's integer value, or `fallback` when unset; InputError on anything else.
int env_int(const char* name, int fallback, int lo, int hi) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  int out = 0;
  const char* end = v + std::char_traits<char>::length(v);
  auto [p, ec] = std::from_chars(v, end, out);
  if (ec != std::errc() || p != end || out < lo || out > hi)
    throw_input("environment: {}='{}', expected an integer in [{}, {}]", name, v, lo, hi);
  return out;
}

}  // namespace

DistParams dist_params_from_environment(bool use_slurm) {
  DistParams p;
  const bool torchrun = std::getenv("WORLD_SIZE") != nullptr || !use_slurm;
  p.world_size = env_int(torchrun ? "WORLD_SIZE" : "SLURM_NTASKS", 1, 1, 1 << 20);
  const char* rank_var = torchrun ? "RANK" : "SLURM_PROCID";
  // Every process would otherwise be rank 0 of the group.
  if (p.world_size > 1 && std::getenv(rank_var) == nullptr)
    throw_input("environment: {}={} but {} is unset; start each process with its own {} (0..{}), as {} does",
                torchrun ? "WORLD_SIZE" : "SLURM_NTASKS", p.world_size, rank_var, rank_var, p.world_size - 1,
                torchrun ? "torchrun" : "srun");
  p.rank = env_int(rank_var, 0, 0, p.world_size - 1);
  p.local_rank = env_int(torchrun ? "LOCAL_RANK" : "SLURM_LOCALID", 0, 0, 1 << 20);
  if (const char* a = std::getenv("MASTER_ADDR"); a != nullptr && *a != '\0') p.master_addr = a;
  p.master_port = env_int("MASTER_PORT", p.master_port, 1, 65535);
  return p;
}

std::string dist_backends() {
  std::string s;
#ifdef CONCEPTLAB_WITH_GLOO
  s += "gloo";
#endif
#ifdef CONCEPTLAB_WITH_NCCL
  s += s.empty() ? "nccl" : ", nccl";
#endif
  return s.empty() ? "none" : s;
}

bool dist_available(torch::Device device) {
#ifdef CONCEPTLAB_WITH_NCCL
  if (device.is_cuda()) return true;
#endif
#ifdef CONCEPTLAB_WITH_GLOO
  return true;
#else
  return false;
#endif
}

#if defined(CONCEPTLAB_WITH_GLOO) || defined(CONCEPTLAB_WITH_NCCL)
namespace {

// c10::Error's what() carries a C++ backtrace; the user needs only the transport's message.
std::string without_backtrace(const std::exception& e) {
  if (const auto* c10e = dynamic_cast<const c10::Error*>(&e)) return c10e->what_without_backtrace();
  return e.what();
}

c10d::ReduceOp to_c10d(ReduceOp op) {
  switch (op) {
    case ReduceOp::min: return c10d::ReduceOp(c10d::ReduceOp::MIN);
    case ReduceOp::max: return c10d::ReduceOp(c10d::ReduceOp::MAX);
    default: return c10d::ReduceOp(c10d::ReduceOp::SUM);
  }
}

// Any c10d process group or backend (1.13 ProcessGroupGloo; 2.x Backend subclasses): the same calls.
template <typename PG>
class C10dComm : public Comm {
 public:
  C10dComm(c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<PG> pg, int rank, int size, bool host_staging,
           std::string name)
      : store_(std::move(store)), pg_(std::move(pg)), host_staging_(host_staging), name_(std::move(name)) {
    rank_ = rank;
    size_ = size;
  }
  std::string backend() const override { return name_; }
  void all_reduce(torch::Tensor& t, ReduceOp op) override {
    const bool stage = host_staging_ && !t.is_cpu();
    std::vector<at::Tensor> v{stage ? t.to(torch::kCPU).contiguous() : t.contiguous()};
    c10d::AllreduceOptions o;
    o.reduceOp = to_c10d(op);
    guarded("all-reduce", [&] { pg_->allreduce(v, o)->wait(); });
    if (stage || !v[0].is_same(t)) t.copy_(v[0]);
  }
  torch::Tensor all_gather(const torch::Tensor& t) override {
    const bool stage = host_staging_ && !t.is_cpu();
    std::vector<at::Tensor> in{stage ? t.to(torch::kCPU).contiguous() : t.contiguous()};
    std::vector<std::vector<at::Tensor>> out(1);
    for (int r = 0; r < size_; ++r) out[0].push_back(torch::empty_like(in[0]));
    guarded("all-gather", [&] { pg_->allgather(out, in)->wait(); });
    auto all = torch::stack(out[0]);
    return stage ? all.to(t.device()) : all;
  }
  void barrier() override {
    auto t = torch::zeros({1}, torch::kFloat32);
    all_reduce(t, ReduceOp::sum);
  }

 private:
  // A peer that stopped (killed, or failed on its own) surfaces here as a transport error.
  template <typename F>
  void guarded(const char* what, F&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      throw_input("distributed: rank {} of {}: {} failed ({}); another rank stopped or timed out; a run with "
                  "checkpoints continues with --resume OUT.ckpt on every rank",
                  rank_, size_, what, without_backtrace(e));
    }
  }
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<PG> pg_;
  bool host_staging_;
  std::string name_;
};

// A c10d FileStore file is a run of records: a little-endian length (4 bytes in the LibTorch
// versions seen; 8 accepted too) and that many bytes. Anything else (a stale file of another
// program, a truncated copy) would make FileStore spin forever instead of timing out.
bool parses_as_file_store(const std::string& bytes, size_t len_bytes) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    if (bytes.size() - pos < len_bytes) return false;
    uint64_t len = 0;
    std::memcpy(&len, bytes.data() + pos, len_bytes);  // little-endian hosts only, as c10d
    pos += len_bytes;
    if (len > bytes.size() - pos) return false;
    pos += static_cast<size_t>(len);
  }
  return true;
}

// InputError unless path can be a FileStore: its folder exists, it is not a folder, and if it
// exists it holds store records (read under a shared flock, as FileStore itself reads).
void check_store_file(const std::string& init, const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path p(path);
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  if (!fs::is_directory(dir, ec))
    throw_input("--dist-init '{}': folder {} does not exist (the store file must be on a filesystem every rank "
                "sees, e.g. file:///shared/run/store)",
                init, dir.string());
  if (fs::is_directory(p, ec)) throw_input("--dist-init '{}': {} is a folder, expected a file path", init, path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;  // not there yet: the first rank creates it
  std::string bytes;
  if (::flock(fd, LOCK_SH) == 0) {
    char buf[65536];
    ssize_t got = 0;
    while ((got = ::read(fd, buf, sizeof buf)) > 0) bytes.append(buf, static_cast<size_t>(got));
    ::flock(fd, LOCK_UN);
  }
  ::close(fd);
  if (!parses_as_file_store(bytes, 4) && !parses_as_file_store(bytes, 8))
    throw_input("--dist-init '{}': {} exists and is not a c10d file store ({} bytes of something else); remove it, "
                "or name a file that does not exist yet",
                init, path, bytes.size());
}

// "tcp://HOST:PORT" -> host, port; InputError otherwise.
std::pair<std::string, int> parse_tcp(const std::string& init) {
  const std::string rest = init.substr(6);
  const auto colon = rest.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 ||
      std::from_chars(rest.data() + colon + 1, rest.data() + rest.size(), port).ec != std::errc() || port < 1 ||
      port > 65535)
    throw_input("--dist-init '{}': expected tcp://HOST:PORT", init);
  return {rest.substr(0, colon), port};
}

// Every rank announces itself in the store, then waits for all the others. A rank that never
// started (a failed node, a wrong WORLD_SIZE, two ranks with one RANK) is then named here, where
// the process group's own rendezvous would only report "(Socket Timeout)".
void wait_for_all_ranks(c10d::Store& store, const DistParams& p, const std::string& where,
                        std::chrono::milliseconds timeout) {
  auto key = [](int r) { return fmt::format("conceptlab/joined/{}", r); };
  std::vector<std::string> keys;
  for (int r = 0; r < p.world_size; ++r) keys.push_back(key(r));
  // Polled with check(): a timed-out wait() leaves a TCPStore client unable to ask more. Who has
  // joined is read every half second, as the store may be gone (rank 0 gave up) by the deadline.
  std::vector<char> joined_now(static_cast<size_t>(p.world_size), 0);
  try {
    // A count, not a flag: a second process with this RANK (or a store file left by an earlier
    // run) is refused at once rather than leaving a rank missing.
    if (store.add(key(p.rank), 1) > 1)
      throw_input("distributed: another process already joined as rank {} at {}; every process needs its own RANK{}",
                  p.rank, where, p.init.rfind("file://", 0) == 0 ? " (or the store file is left from an earlier run: "
                                                                    "use a fresh --dist-init file)"
                                                                  : "");
    const auto start = std::chrono::steady_clock::now(), deadline = start + timeout;
    auto next_census = start;
    auto pause = std::chrono::milliseconds(10);
    while (!store.check(keys)) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= next_census || now >= deadline) {
        for (size_t r = 0; r < keys.size(); ++r) joined_now[r] = store.check({keys[r]});
        next_census = now + std::chrono::milliseconds(500);
      }
      if (now >= deadline) break;
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(200));
    }
    if (store.check(keys)) return;
  } catch (const InputError&) {
    throw;
  } catch (const std::exception&) {
  }
  std::string missing, joined;
  for (int r = 0; r < p.world_size; ++r) {
    std::string& list = joined_now[static_cast<size_t>(r)] || r == p.rank ? joined : missing;
    list += fmt::format("{}{}", list.empty() ? "" : ", ", r);
  }
  throw_input("distributed: rank {} of {} waited {} s at {} but rank(s) {} never joined (joined: {}); start every "
              "rank with the same WORLD_SIZE and its own RANK, or raise --dist-timeout",
              p.rank, p.world_size, timeout.count() / 1000, where, missing.empty() ? "?" : missing,
              joined.empty() ? "none" : joined);
}

}  // namespace
#endif

std::unique_ptr<Comm> connect(const DistParams& p, torch::Device device) {
  if (p.world_size < 1 || p.rank < 0 || p.rank >= p.world_size)
    throw_input("distributed: rank {} of world size {}, expected 0 <= rank < world size", p.rank, p.world_size);
  if (!dist_available(device))
    throw_usage("distributed training: this build has no c10d backend for {} (compiled in: {}); rebuild against a "
                "LibTorch with Gloo (Debian: install libgloo-dev) or NCCL",
                device.str(), dist_backends());
#if defined(CONCEPTLAB_WITH_GLOO) || defined(CONCEPTLAB_WITH_NCCL)
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(p.timeout_s) * 1000);
  c10::intrusive_ptr<c10d::Store> store;
  std::string where;
  try {
    if (p.init.rfind("file://", 0) == 0) {
      const std::string path = p.init.substr(7);
      if (path.empty()) throw_input("--dist-init '{}': expected file:///path/to/a/shared/file", p.init);
      check_store_file(p.init, path);
      store = c10::make_intrusive<c10d::FileStore>(path, p.world_size);
      store->setTimeout(timeout);
      where = path;
    } else {
      std::string host = p.master_addr;
      int port = p.master_port;
      if (p.init.rfind("tcp://", 0) == 0)
        std::tie(host, port) = parse_tcp(p.init);
      else if (p.init != "env://")
        throw_input("--dist-init '{}': expected env://, tcp://HOST:PORT or file:///path", p.init);
      c10d::TCPStoreOptions o;
      o.port = static_cast<uint16_t>(port);
      o.isServer = p.rank == 0;
      o.numWorkers = static_cast<size_t>(p.world_size);
      o.waitWorkers = false;  // wait_for_all_ranks waits, and names the ranks that are missing
      o.timeout = timeout;
      store = c10::make_intrusive<c10d::TCPStore>(host, o);
      where = fmt::format("{}:{}", host, port);
    }
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    throw_input("distributed: rank {} of {} could not reach the rendezvous store {} ({}); check MASTER_ADDR / "
                "MASTER_PORT or --dist-init, and that every rank started",
                p.rank, p.world_size, p.init == "env://" ? fmt::format("{}:{}", p.master_addr, p.master_port) : p.init,
                without_backtrace(e));
  }
  wait_for_all_ranks(*store, p, where, timeout);
  try {
#ifdef CONCEPTLAB_WITH_NCCL
    if (device.is_cuda()) {
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, p.rank, p.world_size, opts);
      return std::make_unique<C10dComm<c10d::ProcessGroupNCCL>>(store, pg, p.rank, p.world_size, false, "nccl");
    }
#endif
#ifdef CONCEPTLAB_WITH_GLOO
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    // Loopback rendezvous means one machine; otherwise Gloo binds the interface GLOO_SOCKET_IFNAME
    // names (as in PyTorch), or the address this host's name resolves to.
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    const bool local = where.rfind("127.", 0) == 0 || where.rfind("localhost", 0) == 0 || p.init.rfind("file://", 0) == 0;
    if (ifname != nullptr && *ifname != '\0')
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else if (local && p.init.rfind("file://", 0) != 0)
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    opts->threads = 2;
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, p.rank, p.world_size, opts);
    return std::make_unique<C10dComm<c10d::ProcessGroupGloo>>(store, pg, p.rank, p.world_size, !device.is_cpu(),
                                                              "gloo");
#endif
  } catch (const std::exception& e) {
    throw_input("distributed: rank {} of {} could not join the process group via {} ({}); do all ranks have the "
                "same WORLD_SIZE and distinct RANKs?",
                p.rank, p.world_size, where, without_backtrace(e));
  }
#endif
  throw_usage("distributed training: no c10d backend compiled in");
}

void check_same_on_all_ranks(Comm& comm, const std::vector<NamedValue>& values) {
  const auto n = static_cast<int64_t>(values.size());
  // The gather below needs one length on every rank; a rank from another build may list more.
  const torch::Tensor counts = comm.all_gather(torch::full({1}, n, torch::kLong)).flatten();
  if (counts.min().item<int64_t>() != counts.max().item<int64_t>())
    throw_input("distributed: the ranks compare different numbers of settings (rank {}: {}); every rank must run the "
                "same conceptlab build",
                comm.rank(), n);
  if (n == 0) return;
  auto mine = torch::empty({n}, torch::kLong);
  for (int64_t i = 0; i < n; ++i) mine[i] = values[static_cast<size_t>(i)].second;
  const torch::Tensor all = comm.all_gather(mine);  // [size, n]
  const torch::Tensor differs = (all != all[0]).any(0);
  if (!differs.any().item<bool>()) return;
  const int64_t i = differs.nonzero()[0][0].item<int64_t>();
  constexpr int kMaxListed = 8;
  std::string per_rank;
  for (int r = 0; r < comm.size() && r < kMaxListed; ++r)
    per_rank += fmt::format("{}rank {}: {}", r == 0 ? "" : ", ", r, all[r][i].item<int64_t>());
  if (comm.size() > kMaxListed) per_rank += fmt::format(", ... ({} ranks)", comm.size());
  throw_input("distributed: the ranks disagree on {} ({}); rank {} has {}; every rank must be started with the same "
              "inputs and options",
              values[static_cast<size_t>(i)].first, per_rank, comm.rank(), values[static_cast<size_t>(i)].second);
}

void agree_or_throw(Comm& comm, bool ok, const std::string& stage) {
  auto failed = torch::zeros({comm.size()}, torch::kLong);
  if (!ok) failed[comm.rank()] = 1;
  comm.all_reduce(failed, ReduceOp::sum);
  if (!ok || failed.sum().item<int64_t>() == 0) return;
  std::string ranks;
  for (int r = 0; r < comm.size(); ++r)
    if (failed[r].item<int64_t>() != 0) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
  throw_input("distributed: rank(s) {} failed {} (see their own messages); rank {} stops too", ranks, stage,
              comm.rank());
}

}  // namespace cl::sae
