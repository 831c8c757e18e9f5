// Device choice, made once in main and passed down: "auto" = CUDA when LibTorch sees a GPU.
#pragma once

#include <string>

#include <torch/types.h>

namespace cl {

// flag in {"auto", "cpu", "cuda", "cuda:N"}; throws UsageError on others and InputError when
// CUDA is asked for but unavailable.
torch::Device pick_device(const std::string& flag);

// Gives LibTorch every core (it sees one on these VMs) and picks the fast matmul modes.
void init_torch_threads();

bool cuda_available();

}  // namespace cl
