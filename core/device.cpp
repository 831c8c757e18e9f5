// Device selection and LibTorch thread set-up.
#include "core/device.h"

#include <thread>

#include <torch/torch.h>

#include "core/error.h"

namespace cl {

bool cuda_available() { return torch::cuda::is_available(); }

torch::Device pick_device(const std::string& flag) {
  if (flag == "auto") return cuda_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (flag == "cpu") return torch::Device(torch::kCPU);
  if (flag == "cuda" || flag.rfind("cuda:", 0) == 0) {
    if (!cuda_available()) throw_input("--device {}: CUDA is not available in this build or machine", flag);
    return torch::Device(flag == "cuda" ? std::string("cuda:0") : flag);
  }
  throw_usage("--device {}: expected auto, cpu, cuda or cuda:N", flag);
}

void init_torch_threads() {
  unsigned n = std::thread::hardware_concurrency();
  if (n > 0) torch::set_num_threads(static_cast<int>(n));
}

}  // namespace cl
