// Where SAE training batches come from (internal to sae/): rows held in memory, or an
// embeddings file streamed in shuffled blocks when it does not fit the memory budget. Every
// shuffle draws from the run's Rng, so the batch order is part of the reproducible state.
#pragma once

#include <memory>
#include <vector>

#include <torch/torch.h>

#include "core/embeddings.h"
#include "core/random.h"

namespace cl::sae {

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual int64_t rows() const = 0;
  virtual int64_t dim() const = 0;
  virtual void start_epoch(Rng& rng) = 0;
  virtual bool next(torch::Tensor& x) = 0;  // next batch on the device, unscaled
  virtual torch::Tensor sample(int64_t m, Rng& rng) = 0;
  virtual torch::Tensor mean_f64() = 0;  // [D] float64 on the device
  virtual std::vector<int64_t> order() const = 0;  // this epoch's row or block order (checkpoints)
};

// Rows x_nd [n, d] that stay owned by the caller for the source's lifetime.
std::unique_ptr<BatchSource> memory_source(const float* x_nd, int64_t n, int64_t d, int64_t batch,
                                           torch::Device device);
// A file read block by block; buffers hold about memory_gb / 2 of rows.
std::unique_ptr<BatchSource> stream_source(const EmbeddingsReader& reader, int64_t batch, double memory_gb,
                                           torch::Device device);
// Rows a stream source buffers at once (for the log line).
int64_t stream_buffer_rows(const EmbeddingsReader& reader, int64_t batch, double memory_gb);

}  // namespace cl::sae
