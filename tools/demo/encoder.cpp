// Demo encoder construction: weights are computed here (no training, no downloads) and the
// forward pass is TorchScript source compiled by LibTorch, so the saved file loads anywhere
// torch::jit::load / torch.jit.load works.
#include "tools/demo/encoder.h"

#include <array>
#include <cmath>
#include <fstream>
#include <random>

#include <torch/script.h>
#include <torch/torch.h>

#include "core/error.h"
#include "core/random.h"

namespace cl::demo {

namespace {

// Colour prototypes (RGB 0..255) of the demo world's materials.
const std::vector<std::array<double, 3>> kPrototypes = {
    {228, 185, 160}, {188, 140, 110}, {150, 105, 85}, {105, 70, 55},   {45, 35, 30},   {195, 85, 95},
    {215, 160, 125}, {125, 150, 185}, {232, 222, 215}, {115, 45, 140}, {228, 220, 205}, {8, 8, 8},
    {32, 25, 25},    {245, 245, 245}, {200, 62, 70},   {215, 140, 55},  {236, 236, 238}};

constexpr int kKernel = 9;
constexpr int kBank = 6;  // filters per scale
constexpr int kGrid = 3;  // spatial pooling grid (plus one global average)

torch::Tensor gaussian2d(double sigma) {
  auto t = torch::zeros({kKernel, kKernel}, torch::kDouble);
  const int h = kKernel / 2;
  auto a = t.accessor<double, 2>();
  for (int y = -h; y <= h; ++y)
    for (int x = -h; x <= h; ++x) a[y + h][x + h] = std::exp(-(x * x + y * y) / (2 * sigma * sigma));
  return t / t.sum();
}

// Second derivative of a Gaussian across direction theta (positive on dark lines), zero mean.
torch::Tensor ridge_kernel(double sigma, double theta) {
  auto t = torch::zeros({kKernel, kKernel}, torch::kDouble);
  const int h = kKernel / 2;
  auto a = t.accessor<double, 2>();
  const double nx = -std::sin(theta), ny = std::cos(theta);
  for (int y = -h; y <= h; ++y)
    for (int x = -h; x <= h; ++x) {
      double u = x * nx + y * ny, r2 = x * x + y * y;
      a[y + h][x + h] = (u * u / (sigma * sigma) - 1) / (sigma * sigma) * std::exp(-r2 / (2 * sigma * sigma));
    }
  t = t - t.mean();
  return t / t.abs().sum() * 4.0;
}

// One filter bank applied at three scales (full, 1/2, 1/4 resolution): dark/bright lines in four
// orientations and dark/bright spots; edge and corner energy at 1/2 and 1/4 resolution
// (coarse corners respond to lobed lesion borders, not to fine texture); colour prototype
// similarity at 1/2 resolution. Every map is averaged globally and on a 3x3 grid.
const char* kForward = R"JIT(
def pool(self, m):
    return torch.cat([m.mean([2, 3]), torch.adaptive_avg_pool2d(m, [3, 3]).flatten(1)], 1)

def edges(self, lum):
    sob = torch.conv2d(lum, self.w_sobel, None, [1, 1], [1, 1])
    gx = sob[:, 0:1]
    gy = sob[:, 1:2]
    mag = torch.sqrt(gx * gx + gy * gy + 1e-6)
    sxx = torch.avg_pool2d(gx * gx, [5, 5], [1, 1], [2, 2])
    syy = torch.avg_pool2d(gy * gy, [5, 5], [1, 1], [2, 2])
    sxy = torch.avg_pool2d(gx * gy, [5, 5], [1, 1], [2, 2])
    corner = torch.sqrt(torch.relu(sxx * syy - sxy * sxy) + 1e-8)
    return torch.cat([mag, corner], 1)

def forward(self, x):
    lum = torch.conv2d(x, self.w_lum)
    xh = torch.avg_pool2d(x, [2, 2])
    x2 = (xh * xh).sum(1, keepdim=True)
    d2 = x2 - 2.0 * torch.conv2d(xh, self.w_proto) + self.proto_sq
    colour = torch.exp(-12.0 * torch.clamp(d2, min=0.0))
    lum2 = torch.avg_pool2d(lum, [2, 2])
    lum4 = torch.avg_pool2d(lum2, [2, 2])
    f1 = torch.conv2d(lum, self.w_bank, None, [1, 1], [4, 4])
    f2 = torch.conv2d(lum2, self.w_bank, None, [1, 1], [4, 4])
    f4 = torch.conv2d(lum4, self.w_bank, None, [1, 1], [4, 4])
    parts = [self.pool(colour),
             self.pool(torch.relu(f1)), self.pool(torch.relu(-f1)),
             self.pool(torch.relu(f2)), self.pool(torch.relu(-f2)),
             self.pool(torch.relu(f4)), self.pool(torch.relu(-f4)),
             self.pool(self.edges(lum2)), self.pool(self.edges(lum4))]
    f = torch.sqrt(torch.cat(parts, 1) + 1e-6)
    return torch.matmul(f, self.proj)
)JIT";

}  // namespace

embed::PreprocessParams demo_encoder_preprocess() {
  embed::PreprocessParams p;
  p.image_size = kDemoEncoderInput;
  p.resize = "direct";
  p.interpolation = "bilinear_antialias";
  p.mean = {0.5, 0.5, 0.5};
  p.std = {0.5, 0.5, 0.5};
  return p;
}

void write_demo_encoder(const std::string& model_path, const std::string& json_path) {
  torch::NoGradGuard no_grad;
  const int64_t K = static_cast<int64_t>(kPrototypes.size());
  auto proto = torch::zeros({K, 3}, torch::kFloat);
  for (int64_t k = 0; k < K; ++k)
    for (int c = 0; c < 3; ++c) proto[k][c] = static_cast<float>(kPrototypes[k][c] / 127.5 - 1.0);
  auto w_lum = torch::tensor({0.299f, 0.587f, 0.114f}).view({1, 3, 1, 1});

  std::vector<torch::Tensor> filters;
  for (int o = 0; o < 4; ++o) filters.push_back(ridge_kernel(1.2, o * M_PI / 4));
  for (auto [s1, s2] : {std::pair{0.8, 1.6}, std::pair{1.5, 3.0}}) {
    auto dog = gaussian2d(s2) - gaussian2d(s1);  // positive on dark spots
    dog = dog - dog.mean();
    filters.push_back(dog / dog.abs().sum() * 4.0);
  }
  CL_ASSERT(static_cast<int>(filters.size()) == kBank);
  auto w_bank = torch::stack(filters).unsqueeze(1).to(torch::kFloat);
  auto w_sobel = torch::tensor({-1.f, 0.f, 1.f, -2.f, 0.f, 2.f, -1.f, 0.f, 1.f, -1.f, -2.f, -1.f, 0.f, 0.f, 0.f, 1.f, 2.f, 1.f})
                     .view({2, 1, 3, 3}) / 8.0;

  const int64_t n_maps = K + 3 * 2 * kBank + 2 * 2, n_feat = n_maps * (1 + kGrid * kGrid);
  // Fixed random mixing from our own generator (not torch's) so weights never depend on the version.
  Rng g(20240611);
  auto proj = torch::zeros({n_feat, kDemoEncoderDim}, torch::kFloat);
  auto pa = proj.accessor<float, 2>();
  for (int64_t i = 0; i < n_feat; ++i)
    for (int64_t j = 0; j < kDemoEncoderDim; ++j) pa[i][j] = static_cast<float>(g.normal() / std::sqrt(double(n_feat)));

  torch::jit::Module m("conceptlab_demo_encoder");
  m.register_buffer("w_lum", w_lum);
  m.register_buffer("w_proto", proto.view({K, 3, 1, 1}).contiguous());
  m.register_buffer("proto_sq", proto.pow(2).sum(1).view({1, K, 1, 1}).contiguous());
  m.register_buffer("w_bank", w_bank.contiguous());
  m.register_buffer("w_sobel", w_sobel.to(torch::kFloat).contiguous());
  m.register_buffer("proj", proj);
  try {
    m.define(kForward);
    m.save(model_path);
  } catch (const c10::Error& e) {
    throw_input("{}: cannot build or save the demo encoder ({})", model_path, std::string(e.what()).substr(0, 300));
  }
  nlohmann::json j = demo_encoder_preprocess();
  j["model"] = "conceptlab demo encoder: designed filters + fixed random projection (stand-in for a foundation model)";
  j["output"] = fmt::format("[N,{}] float32", kDemoEncoderDim);
  std::ofstream out(json_path);
  out << j.dump(1) << "\n";
  if (!out) throw_input("{}: cannot write encoder JSON", json_path);
}

}  // namespace cl::demo
