// Device choice, made once in main and passed down: "auto" = CUDA when LibTorch sees a GPU.
// Only c10's small Device header is included, so library headers that take a device stay cheap.
#pragma once

#include <string>

#include <c10/core/Device.h>

namespace cl {

using Device = c10::Device;

// flag in {"auto", "cpu", "cuda", "cuda:N"}; throws UsageError on others and InputError when
// CUDA is asked for but unavailable.
Device pick_device(const std::string& flag);

// Gives LibTorch every core (it sees one on these VMs) and picks the fast matmul modes.
void init_torch_threads();

bool cuda_available();

}  // namespace cl
