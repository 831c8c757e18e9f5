// Device selection and LibTorch thread set-up.
#include "core/device.h"

#include <thread>

// The two small headers it needs, not <torch/torch.h> (20 s of compile on its own).
#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include "core/error.h"

namespace cl {

bool cuda_available() { return torch::cuda::is_available(); }

Device pick_device(const std::string& flag) {
  if (flag == "auto") return cuda_available() ? Device(c10::kCUDA, 0) : Device(c10::kCPU);
  if (flag == "cpu") return Device(c10::kCPU);
  if (flag == "cuda" || flag.rfind("cuda:", 0) == 0) {
    if (!cuda_available()) throw_input("--device {}: CUDA is not available in this build or machine", flag);
    return Device(flag == "cuda" ? std::string("cuda:0") : flag);
  }
  throw_usage("--device {}: expected auto, cpu, cuda or cuda:N", flag);
}

void init_torch_threads() {
  unsigned n = std::thread::hardware_concurrency();
  if (n > 0) at::set_num_threads(static_cast<int>(n));
}

}  // namespace cl
