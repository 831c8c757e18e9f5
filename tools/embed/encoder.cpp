// TorchScript encoder: module loading, forward with output checks, image -> embedding.
#include "tools/embed/encoder.h"

#include <cmath>
#include <cstdio>
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

void validate(const OutputParams& p, const std::string& source) {
  if (p.tokens != "auto" && p.tokens != "cls" && p.tokens != "patches" && p.tokens != "all")
    throw_usage("{}: tokens '{}', expected auto, cls, patches or all", source, p.tokens);
  if (p.prefix_tokens < -1) throw_usage("{}: prefix_tokens {}, expected >= 0 (or -1: detect)", source, p.prefix_tokens);
  if (!p.grid.empty()) {
    int h = 0, w = 0;
    char x = 0, rest = 0;
    if (std::sscanf(p.grid.c_str(), "%d%c%d%c", &h, &x, &w, &rest) != 3 || (x != 'x' && x != 'X') || h < 1 || w < 1)
      throw_usage("{}: grid '{}', expected HxW (for example 16x16)", source, p.grid);
  }
}

struct Encoder::Impl {
  std::string model_path;
  OutputParams out;
  PreprocessParams pre;
  torch::Device device{torch::kCPU};
  bool fp16 = false;
  int64_t dim = 0;
  torch::jit::script::Module module;
};

Encoder::Encoder(const std::string& model_path, const PreprocessParams& pre, Device device, bool fp16,
                 const OutputParams& out)
    : impl_(std::make_unique<Impl>()) {
  if (fp16 && !device.is_cuda()) throw_usage("embed: --fp16 needs a CUDA device (got {})", device.str());
  validate(pre, "preprocessing");
  validate(out, "embed");
  impl_->out = out;
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

namespace {

// The model's output for n inputs, on the CPU as float; checks it is a finite tensor with n rows.
torch::Tensor run_model(torch::jit::script::Module& module, const std::string& path, torch::Device device, bool fp16,
                        const float* chw, int64_t n, int64_t S) {
  torch::NoGradGuard no_grad;
  torch::Tensor x = torch::from_blob(const_cast<float*>(chw), {n, 3, S, S}, torch::kFloat).to(device);
  if (fp16) x = x.to(torch::kHalf);
  torch::jit::IValue out;
  try {
    out = module.forward({x});
  } catch (const c10::Error& e) {
    throw_input("{}: model failed on input [{}, 3, {}, {}] ({})", path, n, S, S, first_line(e.what()));
  }
  if (!out.isTensor()) throw_input("{}: model returned {}, expected a tensor [B, D], [B, D, h, w] or [B, T, D]", path, out.tagKind());
  torch::Tensor y = out.toTensor().to(torch::kCPU).to(torch::kFloat).contiguous();
  if (y.dim() < 2 || y.dim() > 4 || y.size(0) != n)
    throw_input("{}: model output shape {}, expected [{}, D], [{}, D, h, w] or [{}, T, D]", path, shape_string(y), n, n, n);
  if (!torch::isfinite(y).all().item<bool>()) throw_input("{}: model produced NaN/Inf", path);
  return y;
}

bool is_square(int64_t t) {
  const auto r = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(t))));
  return t > 0 && r * r == t;
}

// y [n, D] | [n, D, h, w] | [n, T, D] -> the pooled embedding and, when asked, the patch grid.
EncoderOutput split_output(const torch::Tensor& y, const OutputParams& p, const std::string& path, bool want_patches) {
  EncoderOutput o;
  torch::Tensor pooled, patches;  // [n, D], [n, P, D]
  if (y.dim() == 2) {
    if (want_patches)
      throw_input("{}: model output shape {} has no patch grid; patches need a feature map [B, D, h, w] or tokens "
                  "[B, T, D] (export the encoder without its final pooling)", path, shape_string(y));
    pooled = y;
  } else if (y.dim() == 4) {
    o.grid_h = y.size(2);
    o.grid_w = y.size(3);
    if (!p.grid.empty() && p.grid != fmt::format("{}x{}", o.grid_h, o.grid_w) && p.grid != fmt::format("{}X{}", o.grid_h, o.grid_w))
      throw_input("{}: model output shape {} is a {} x {} feature map, the declared grid is {}", path, shape_string(y),
                  o.grid_h, o.grid_w, p.grid);
    patches = y.flatten(2).transpose(1, 2);
    pooled = y.mean({2, 3});
  } else {
    const int64_t T = y.size(1);
    const int64_t prefix = p.prefix_tokens >= 0 ? p.prefix_tokens : (!is_square(T) && is_square(T - 1) ? 1 : 0);
    if (prefix >= T)
      throw_input("{}: model output shape {}: {} prefix tokens leave no patch tokens", path, shape_string(y), prefix);
    const int64_t n_patch = T - prefix;
    if (!p.grid.empty()) {
      int h = 0, w = 0;
      std::sscanf(p.grid.c_str(), "%d%*c%d", &h, &w);
      o.grid_h = h;
      o.grid_w = w;
    } else if (is_square(n_patch)) {
      o.grid_h = o.grid_w = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n_patch))));
    }
    if (o.grid_h * o.grid_w != n_patch)
      throw_input("{}: model output shape {}: {} patch tokens after {} prefix tokens do not form {}; declare the grid "
                  "(--grid HxW) or the prefix tokens (--prefix-tokens N)", path, shape_string(y), n_patch, prefix,
                  p.grid.empty() ? std::string("a square grid") : "the grid " + p.grid);
    patches = y.slice(1, prefix, T);
    const std::string tokens = p.tokens != "auto" ? p.tokens : prefix > 0 ? "cls" : "patches";
    if (tokens == "cls" && prefix == 0)
      throw_input("{}: model output shape {} has no class token (no prefix tokens); use --tokens patches or all, or "
                  "declare --prefix-tokens", path, shape_string(y));
    pooled = tokens == "cls" ? y.select(1, 0) : tokens == "all" ? y.mean(1) : patches.mean(1);
  }
  pooled = pooled.contiguous();
  o.pooled_nd.assign(pooled.data_ptr<float>(), pooled.data_ptr<float>() + pooled.numel());
  if (want_patches) {
    patches = patches.contiguous();
    o.patches_npd.assign(patches.data_ptr<float>(), patches.data_ptr<float>() + patches.numel());
  }
  return o;
}

}  // namespace

// One batch through the model, split into the pooled embedding (and the patches when asked);
// the embedding dimension must stay the same from call to call.
EncoderOutput Encoder::run(const float* chw, int64_t n, bool with_patches) {
  auto& m = *impl_;
  torch::Tensor y = run_model(m.module, m.model_path, m.device, m.fp16, chw, n, m.pre.image_size);
  EncoderOutput o = split_output(y, m.out, m.model_path, with_patches);
  const int64_t d = static_cast<int64_t>(o.pooled_nd.size()) / n;
  if (m.dim != 0 && d != m.dim) throw_input("{}: model output dim changed from {} to {}", m.model_path, m.dim, d);
  m.dim = d;
  return o;
}

EncoderOutput Encoder::forward_patches(const float* chw, int64_t n) { return run(chw, n, true); }

std::vector<float> Encoder::forward(const float* chw, int64_t n) { return std::move(run(chw, n, false).pooled_nd); }

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
