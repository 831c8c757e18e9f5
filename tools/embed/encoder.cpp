// TorchScript encoder: module loading, forward with output checks, image -> embedding.
#include "tools/embed/encoder.h"

#include <filesystem>

#include <torch/script.h>
#include <torch/torch.h>

#include "core/error.h"

namespace cl::embed {

namespace {
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::string shape_string(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}
}  // namespace

struct Encoder::Impl {
  std::string model_path;
  PreprocessParams pre;
  torch::Device device{torch::kCPU};
  bool fp16 = false;
  int64_t dim = 0;
  torch::jit::script::Module module;
};

Encoder::Encoder(const std::string& model_path, const PreprocessParams& pre, Device device, bool fp16)
    : impl_(std::make_unique<Impl>()) {
  if (fp16 && !device.is_cuda()) throw_usage("embed: --fp16 needs a CUDA device (got {})", device.str());
  validate(pre, "preprocessing");
  if (!std::filesystem::exists(model_path)) throw_input("{}: model file not found", model_path);
  auto& m = *impl_;
  m.model_path = model_path;
  m.pre = pre;
  m.device = device;
  m.fp16 = fp16;
  try {
    m.module = torch::jit::load(model_path, device);
  } catch (const c10::Error& e) {
    throw_input("{}: cannot load TorchScript module ({})", model_path, first_line(e.what()));
  }
  m.module.eval();
  if (fp16) m.module.to(torch::kHalf);
}

Encoder::~Encoder() = default;
Encoder::Encoder(Encoder&&) noexcept = default;
Encoder& Encoder::operator=(Encoder&&) noexcept = default;

const std::string& Encoder::model_path() const { return impl_->model_path; }
const PreprocessParams& Encoder::preprocess() const { return impl_->pre; }
Device Encoder::device() const { return impl_->device; }
int64_t Encoder::dim() const { return impl_->dim; }

std::vector<float> Encoder::forward(const float* chw, int64_t n) {
  auto& m = *impl_;
  const int64_t S = m.pre.image_size;
  torch::NoGradGuard no_grad;
  torch::Tensor x = torch::from_blob(const_cast<float*>(chw), {n, 3, S, S}, torch::kFloat).to(m.device);
  if (m.fp16) x = x.to(torch::kHalf);
  torch::jit::IValue out;
  try {
    out = m.module.forward({x});
  } catch (const c10::Error& e) {
    throw_input("{}: model failed on input [{}, 3, {}, {}] ({})", m.model_path, n, S, S, first_line(e.what()));
  }
  if (!out.isTensor()) throw_input("{}: model returned {}, expected a [B, D] tensor", m.model_path, out.tagKind());
  torch::Tensor y = out.toTensor().to(torch::kCPU).to(torch::kFloat).contiguous();
  if (y.dim() != 2 || y.size(0) != n)
    throw_input("{}: model output shape {}, expected [{}, D]", m.model_path, shape_string(y), n);
  if (!torch::isfinite(y).all().item<bool>()) throw_input("{}: model produced NaN/Inf", m.model_path);
  if (m.dim != 0 && y.size(1) != m.dim)
    throw_input("{}: model output dim changed from {} to {}", m.model_path, m.dim, y.size(1));
  m.dim = y.size(1);
  return std::vector<float>(y.data_ptr<float>(), y.data_ptr<float>() + y.numel());
}

std::vector<float> Encoder::embed(const std::vector<cv::Mat>& rgb_images) {
  const int64_t S = input_size(), chw = 3 * S * S, n = static_cast<int64_t>(rgb_images.size());
  std::vector<float> x(static_cast<size_t>(n * chw));
  for (int64_t i = 0; i < n; ++i) {
    CL_ASSERT(rgb_images[i].type() == CV_8UC3, "Encoder::embed expects 8-bit RGB images");
    to_chw(resize_and_crop(rgb_images[i], impl_->pre), impl_->pre, x.data() + i * chw);
  }
  return forward(x.data(), n);
}

std::vector<float> Encoder::embed(const cv::Mat& rgb_image) { return embed(std::vector<cv::Mat>{rgb_image}); }

std::vector<float> Encoder::embed_file(const std::string& path) {
  const int64_t S = input_size();
  std::vector<float> x(static_cast<size_t>(3 * S * S));
  const std::string err = preprocess_file(path, impl_->pre, x.data());
  if (!err.empty()) throw_input("{}: cannot embed this image ({})", path, err);
  return forward(x.data(), 1);
}

}  // namespace cl::embed
