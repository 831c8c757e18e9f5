// Where SAE training batches come from (internal to sae/): rows held in memory, or an
// embeddings file streamed in shuffled blocks when it does not fit the memory budget. Every
// shuffle draws from the run's Rng, so the batch order is part of the reproducible state.
//
// Data-parallel ranks each hold one contiguous shard of the rows. The batch order is that of the
// single-process run (every rank draws the same permutation from the same Rng); a rank yields the
// rows of each global batch that fall in its shard, so the ranks' parts sum to the single-process
// batch and a W-rank run follows the 1-rank run with the same global batch.
#pragma once

#include <memory>
#include <vector>

#include <torch/torch.h>

#include "core/embeddings.h"
#include "core/random.h"
#include "sae/dist.h"

namespace cl::sae {

// Rows [lo, hi) of n_rows that this process holds (all of them without a process group).
struct Shard {
  int64_t lo = 0, hi = 0, n_rows = 0;
  bool all() const { return lo == 0 && hi == n_rows; }
};
// Rank r of w gets rows [r n / w, (r + 1) n / w).
Shard shard_of(int64_t n_rows, int rank, int world_size);

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual int64_t rows() const = 0;  // all ranks' rows
  virtual int64_t dim() const = 0;
  virtual void start_epoch(Rng& rng) = 0;
  // The next global batch: returns its row count (0 once the epoch is done); x = its rows this
  // process holds, on the device, unscaled, in batch order; pos (if given) = their positions in
  // the global batch.
  virtual int64_t next(torch::Tensor& x, std::vector<int64_t>* pos = nullptr) = 0;
  // m rows drawn with rng, the same on every rank (rows held elsewhere arrive by all-reduce).
  virtual torch::Tensor sample(int64_t m, Rng& rng) = 0;
  virtual torch::Tensor mean_f64() = 0;  // [D] float64 on the device, over all ranks' rows
  virtual std::vector<int64_t> order() const = 0;  // this epoch's row or block order (checkpoints)
  // Waits for reads in flight (a streamed source prefetches the next buffer during an epoch);
  // after it, others may read the same file. next() is over until the next start_epoch (sample
  // and mean_f64 stop the epoch too: call them between epochs).
  virtual void stop() {}
  // Streamed sources: rows read from the file, seconds spent reading (on the prefetch thread) and
  // seconds the training thread waited for rows. Zeros for rows held in memory.
  struct InputStats {
    int64_t rows_read = 0;
    double read_s = 0, wait_s = 0;
  };
  virtual InputStats input_stats() const { return {}; }
};

// Rows x_nd [shard.hi - shard.lo, d] (the shard's rows), owned by the caller for the source's
// lifetime. comm: the process group when sharded (nullptr for one process).
std::unique_ptr<BatchSource> memory_source(const float* x_nd, Shard shard, int64_t d, int64_t batch,
                                           torch::Device device, Comm* comm = nullptr);
// A file read block by block; buffers hold about memory_gb / 2 of rows (of all ranks together;
// this rank holds its shard's part of them).
std::unique_ptr<BatchSource> stream_source(const EmbeddingsReader& reader, Shard shard, int64_t batch,
                                           double memory_gb, torch::Device device, Comm* comm = nullptr);
// Rows a stream source buffers at once (for the log line).
int64_t stream_buffer_rows(const EmbeddingsReader& reader, int64_t batch, double memory_gb);

}  // namespace cl::sae
