// Data-parallel training's process group: PyTorch's c10d (Gloo on the CPU, NCCL on CUDA where the
// LibTorch has it), joined the way torchrun or a Slurm job starts PyTorch processes (RANK,
// WORLD_SIZE, MASTER_ADDR, MASTER_PORT; or a shared file). The trainer only sees Comm: a few
// collectives on tensors of any device, so the single-process path needs no process group.
#pragma once

#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/device.h"

// Only declared here, so a caller that joins a group (the CLI) does not compile LibTorch's
// headers; the implementations and the trainer include <torch/torch.h>.
namespace at {
class Tensor;
}

namespace cl::sae {

struct DistParams {
  int rank = 0;        // RANK
  int world_size = 1;  // WORLD_SIZE
  int local_rank = 0;  // LOCAL_RANK: picks cuda:LOCAL_RANK when the device is CUDA
  // "env://" (MASTER_ADDR:MASTER_PORT, rank 0 serves the TCP store), "tcp://HOST:PORT", or
  // "file:///shared/path" (a file every rank sees; it must not exist before the run).
  std::string init = "env://";
  std::string master_addr = "127.0.0.1";  // MASTER_ADDR
  int master_port = 29500;                // MASTER_PORT
  int timeout_s = 1800;                   // a collective waiting longer than this fails
};

// torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT); with use_slurm,
// Slurm's (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID) where torchrun's are unset (only then: a
// command run directly inside a multi-task allocation must not wait for ranks that never come).
// InputError naming the variable and its value when one is malformed or out of range, or when
// the world size is above 1 and the rank is unset.
DistParams dist_params_from_environment(bool use_slurm = false);

// True when this build has a c10d backend for the device ("gloo" on the CPU; on CUDA "nccl", or
// Gloo staging through host memory).
bool dist_available(Device device);
std::string dist_backends();  // what was compiled in, for messages: "gloo", "gloo, nccl" or "none"

enum class ReduceOp { sum, min, max };

class Comm {
 public:
  virtual ~Comm() = default;
  int rank() const { return rank_; }
  int size() const { return size_; }
  virtual std::string backend() const = 0;
  // In place on every rank; t may live on any device (Gloo stages CUDA tensors through the host).
  virtual void all_reduce(at::Tensor& t, ReduceOp op = ReduceOp::sum) = 0;
  // t has the same shape on every rank; returns [size, t.sizes()...] in rank order.
  virtual at::Tensor all_gather(const at::Tensor& t) = 0;
  virtual void barrier() = 0;

 protected:
  int rank_ = 0, size_ = 1;
};

// Joins the group (blocks until every rank has joined, up to timeout_s). InputError with the
// backend, the init method and what failed; UsageError when no backend was compiled in.
std::unique_ptr<Comm> connect(const DistParams& p, Device device);

// Every rank passes the same names, each with its own value (a count, or a hash standing in for
// a string); one all-gather compares them all. InputError on every rank at the first name whose
// values differ, naming it and each rank's value (e.g. "e.h5: row count (rank 0: 1000, rank 1: 999)").
using NamedValue = std::pair<std::string, int64_t>;
void check_same_on_all_ranks(Comm& comm, const std::vector<NamedValue>& values);
inline void check_same_on_all_ranks(Comm& comm, int64_t value, const std::string& what) {
  check_same_on_all_ranks(comm, {{what, value}});
}
// Every rank says whether its set-up succeeded; those that did throw InputError naming the ranks
// that did not (theirs print their own error), so no rank waits for a peer that has left.
void agree_or_throw(Comm& comm, bool ok, const std::string& stage);

// Runs setup() on this rank; with a process group every rank then learns whether all succeeded
// (agree_or_throw), so a bad input on one rank stops them all at once with its own message.
template <typename F>
void on_all_ranks(Comm* comm, const std::string& stage, F&& setup) {
  if (comm == nullptr) return setup();
  std::exception_ptr err;
  try {
    setup();
  } catch (...) {
    err = std::current_exception();
  }
  agree_or_throw(*comm, err == nullptr, stage);
  if (err) std::rethrow_exception(err);
}

}  // namespace cl::sae
