// Demo encoder construction: designed filters and pooling compute features from pixels, and one
// small logistic-regression detector per concept is trained here, in C++, on a generated world of
// its own (no downloads). The forward pass is TorchScript source compiled by LibTorch, so the
// saved file loads anywhere torch::jit::load / torch.jit.load works.
#include "tools/demo/encoder.h"

#include <array>
#include <functional>
#include <cmath>

#include <torch/script.h>
#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>

#include "cbm/logreg.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/random.h"
#include "core/sparse.h"
#include "tools/demo/world.h"

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
// similarity at 1/2 resolution. Every map is averaged globally and on a 3x3 grid: features(x).
// forward(x): per concept a detector (a linear read-out of the standardised features, trained
// at build time on generated images, squashed to [0, 1) and zero below its boundary) scales one
// fixed random direction; the sum of those plus a weak random projection of all features is the
// embedding. Concepts are strong, sparse directions (as in foundation-model embeddings), and no
// single dimension is a concept.
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

def maps(self, x):
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
    return [colour, torch.relu(f1), torch.relu(-f1), torch.relu(f2), torch.relu(-f2),
            torch.relu(f4), torch.relu(-f4), self.edges(lum2), self.edges(lum4)]

def pooled(self, ms: List[torch.Tensor]):
    return torch.sqrt(torch.cat([self.pool(m) for m in ms], 1) + 1e-6)

def features(self, x):
    return self.pooled(self.maps(x))

def celled(self, ms: List[torch.Tensor]):
    g = torch.cat([torch.adaptive_avg_pool2d(m, [8, 8]) for m in ms], 1)
    ctx = torch.avg_pool2d(g, [3, 3], [1, 1], [1, 1], False, False)
    f = torch.sqrt(torch.cat([g, ctx], 1) + 1e-6)
    return f.flatten(2).transpose(1, 2)

def forward(self, x):
    ms = self.maps(x)
    f = (self.pooled(ms) - self.f_mu) / self.f_sd
    s = torch.relu(torch.tanh(2.0 * (torch.matmul(f, self.w_head) + self.b_head)))
    image = torch.matmul(s, self.dirs) + torch.matmul(f, self.proj)
    fc = (self.celled(ms) - self.c_mu) / self.c_sd
    sc = torch.relu(torch.tanh(2.0 * (torch.matmul(fc, self.w_cell) + self.b_cell)))
    patches = torch.matmul(sc, self.dirs) + torch.matmul(fc, self.proj_cell)
    return torch.cat([image.unsqueeze(1), patches], 1)
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

namespace {

constexpr uint64_t kHeadSeed = 0x5eed0fdece7ULL;  // the detectors' training world, never a user's
constexpr int64_t kHeadImages = 3000;
constexpr double kDirectionScale = 4.0;  // length of a present concept's direction
constexpr double kNoiseScale = 0.02;     // per-dimension scale of the random feature projection

// Patch labels of a cell: the concept covers at least this fraction of the cell's pixels (a hair
// crossing a cell covers 4-8%), or none of them; cells in between are left out of the fit.
constexpr double kCellPositive = 0.03;
constexpr int64_t kCellImages = 800;  // training images whose cells fit the patch detectors

// Per image, cell (row-major) and concept: 1 = present, 0 = absent, -1 = left out.
std::vector<int8_t> cell_labels(const std::vector<cv::Mat>& masks, int image_size) {
  const int G = kDemoEncoderGrid;
  std::vector<int8_t> y(static_cast<size_t>(G * G) * masks.size(), 0);
  for (int r = 0; r < G; ++r)
    for (int c = 0; c < G; ++c) {
      const int x0 = c * image_size / G, x1 = (c + 1) * image_size / G, y0 = r * image_size / G,
                y1 = (r + 1) * image_size / G;
      for (size_t k = 0; k < masks.size(); ++k) {
        if (masks[k].empty()) continue;
        const double cover =
            cv::countNonZero(masks[k](cv::Rect(x0, y0, x1 - x0, y1 - y0)) >= 128) / double((x1 - x0) * (y1 - y0));
        y[(static_cast<size_t>(r * G + c)) * masks.size() + k] = cover >= kCellPositive ? 1 : cover > 0 ? -1 : 0;
      }
    }
  return y;
}

// Features of a generated training world (rendered, JPEG round-tripped like the images on disk,
// preprocessed as embed does) and its flags; the cell features of its first kCellImages images
// ([n * cells, n_cell_features]) and their labels (cell_labels, concatenated).
torch::Tensor training_features(torch::jit::Module& m, std::vector<std::vector<int>>& flags, torch::Tensor& cell_f,
                                std::vector<int8_t>& cell_y, int workers) {
  DemoWorldParams tp;
  tp.n = kHeadImages;
  tp.seed = kHeadSeed;
  tp.p_structure = 0.5;
  tp.p_artifact = 0.5;
  tp.hair_p_malignant_train = tp.hair_p_benign_train = tp.hair_p_test = 0.5;
  const auto world = draw_world(tp);
  const auto pre = demo_encoder_preprocess();
  const int64_t S = pre.image_size, chw = 3 * S * S;
  std::vector<float> x(static_cast<size_t>(kHeadImages * chw));
  const int64_t n_cells = int64_t{kDemoEncoderGrid} * kDemoEncoderGrid, n_concepts = concept_names().size();
  cell_y.assign(static_cast<size_t>(kCellImages * n_cells * n_concepts), 0);
  parallel_for(kHeadImages, workers, [&](int64_t i) {
    std::vector<unsigned char> jpg;
    std::vector<cv::Mat> masks;
    cv::imencode(".jpg", render_image(world[static_cast<size_t>(i)], tp.image_size, i < kCellImages ? &masks : nullptr),
                 jpg, {cv::IMWRITE_JPEG_QUALITY, tp.jpeg_quality});
    if (i < kCellImages) {
      const auto y = cell_labels(masks, tp.image_size);
      std::copy(y.begin(), y.end(), cell_y.begin() + i * n_cells * n_concepts);
    }
    const auto dec = embed::convert_decoded(cv::imdecode(jpg, cv::IMREAD_UNCHANGED));
    embed::to_chw(embed::resize_and_crop(dec.rgb, pre), pre, x.data() + i * chw);
  });
  flags.assign(concept_names().size(), std::vector<int>(static_cast<size_t>(kHeadImages)));
  for (int64_t i = 0; i < kHeadImages; ++i)
    for (size_t c = 0; c < flags.size(); ++c) flags[c][static_cast<size_t>(i)] = world[static_cast<size_t>(i)].flags[c];
  std::vector<torch::Tensor> parts, cell_parts;
  for (int64_t s = 0; s < kHeadImages; s += 100) {
    auto xb = torch::from_blob(x.data() + s * chw, {std::min<int64_t>(100, kHeadImages - s), 3, S, S}, torch::kFloat);
    // The filter maps once per batch: pooled for the image detectors, per cell for the patch ones.
    const auto maps = m.run_method("maps", xb);
    parts.push_back(m.run_method("pooled", maps).toTensor());
    if (s < kCellImages) {
      auto cells = m.run_method("celled", maps).toTensor();
      cell_parts.push_back(cells.slice(0, 0, kCellImages - s));
    }
  }
  cell_f = torch::cat(cell_parts, 0).reshape({kCellImages * n_cells, -1}).contiguous();
  return torch::cat(parts, 0);
}

// Concept detectors on features f [n, d]: the features standardised, then per concept c an L2
// logistic regression of the labels `labels(c, y, rows)` gives (rows empty = all rows). Sets the
// module's buffers names = {mean, sd, weights [d, C], biases [C]}.
void fit_detectors(torch::jit::Module& m, const std::array<const char*, 4>& names, const torch::Tensor& f, int64_t C,
                   int workers, const std::function<void(int64_t, std::vector<int>&, std::vector<int64_t>&)>& labels) {
  const auto mu = f.mean(0), sd = f.std(0).clamp_min(1e-6);
  const auto fs = ((f - mu) / sd).contiguous();
  const CsrMatrix X = csr_from_dense(fs.data_ptr<float>(), fs.size(0), fs.size(1));
  cbm::LogRegParams lp;
  lp.penalty = "l2";
  lp.alpha = 1e-4;
  lp.solver = "lbfgs";
  const int64_t d = fs.size(1);
  auto w = torch::zeros({d, C}), b = torch::zeros({C});
  parallel_for(C, workers, [&](int64_t c) {
    std::vector<int> y;
    std::vector<int64_t> rows;
    labels(c, y, rows);
    const auto fit = cbm::fit_logreg(X, y, 2, lp, rows);
    for (int64_t j = 0; j < d; ++j) w[j][c] = static_cast<float>(fit.weights[static_cast<size_t>(j)]);
    b[c] = static_cast<float>(fit.bias[0]);
  });
  m.setattr(names[0], mu);
  m.setattr(names[1], sd);
  m.setattr(names[2], w);
  m.setattr(names[3], b);
}

}  // namespace

void write_demo_encoder(const std::string& model_path, const std::string& json_path, int workers) {
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
  const int64_t C = static_cast<int64_t>(concept_names().size());
  // Fixed random directions from our own generator (not torch's) so weights never depend on the version.
  Rng g(20240611);
  auto proj = torch::zeros({n_feat, kDemoEncoderDim}, torch::kFloat);
  auto pa = proj.accessor<float, 2>();
  for (int64_t i = 0; i < n_feat; ++i)
    for (int64_t j = 0; j < kDemoEncoderDim; ++j)
      pa[i][j] = static_cast<float>(kNoiseScale * g.normal() / std::sqrt(double(n_feat)));
  // Random dense directions, made orthogonal (Gram-Schmidt) so concepts do not leak into each other.
  std::vector<std::vector<double>> basis;
  auto dirs = torch::zeros({C, kDemoEncoderDim}, torch::kFloat);
  for (int64_t c = 0; c < C; ++c) {
    std::vector<double> v(kDemoEncoderDim);
    for (auto& x : v) x = g.normal();
    for (const auto& b : basis) {
      double dot = 0;
      for (int64_t j = 0; j < kDemoEncoderDim; ++j) dot += v[j] * b[j];
      for (int64_t j = 0; j < kDemoEncoderDim; ++j) v[j] -= dot * b[j];
    }
    double norm = 0;
    for (double x : v) norm += x * x;
    for (auto& x : v) x /= std::sqrt(norm);
    basis.push_back(v);
    for (int64_t j = 0; j < kDemoEncoderDim; ++j) dirs[c][j] = static_cast<float>(kDirectionScale * v[j]);
  }
  // Drawn after everything the image embedding uses, so that stays what it was before patches.
  const int64_t n_cell_feat = 2 * n_maps;
  auto proj_cell = torch::zeros({n_cell_feat, kDemoEncoderDim}, torch::kFloat);
  auto pc = proj_cell.accessor<float, 2>();
  for (int64_t i = 0; i < n_cell_feat; ++i)
    for (int64_t j = 0; j < kDemoEncoderDim; ++j)
      pc[i][j] = static_cast<float>(kNoiseScale * g.normal() / std::sqrt(double(n_cell_feat)));

  torch::jit::Module m("conceptlab_demo_encoder");
  m.register_buffer("w_lum", w_lum);
  m.register_buffer("w_proto", proto.view({K, 3, 1, 1}).contiguous());
  m.register_buffer("proto_sq", proto.pow(2).sum(1).view({1, K, 1, 1}).contiguous());
  m.register_buffer("w_bank", w_bank.contiguous());
  m.register_buffer("w_sobel", w_sobel.to(torch::kFloat).contiguous());
  m.register_buffer("proj", proj);
  m.register_buffer("dirs", dirs);
  m.register_buffer("f_mu", torch::zeros({n_feat}));
  m.register_buffer("f_sd", torch::ones({n_feat}));
  m.register_buffer("w_head", torch::zeros({n_feat, C}));
  m.register_buffer("b_head", torch::zeros({C}));
  m.register_buffer("proj_cell", proj_cell);
  m.register_buffer("c_mu", torch::zeros({n_cell_feat}));
  m.register_buffer("c_sd", torch::ones({n_cell_feat}));
  m.register_buffer("w_cell", torch::zeros({n_cell_feat, C}));
  m.register_buffer("b_cell", torch::zeros({C}));
  try {
    m.define(kForward);
    // Train the concept detectors on a generated world of their own: standardise the features,
    // then one L2 logistic regression per concept flag.
    std::vector<std::vector<int>> flags;
    torch::Tensor cell_f;
    std::vector<int8_t> cell_y;
    const torch::Tensor f = training_features(m, flags, cell_f, cell_y, workers);
    fit_detectors(m, {"f_mu", "f_sd", "w_head", "b_head"}, f, C, workers,
                  [&](int64_t c, std::vector<int>& y, std::vector<int64_t>&) { y = flags[static_cast<size_t>(c)]; });
    // The patch detectors: the same, per grid cell, on the cell's features against its labels
    // (cells labelled -1 left out).
    fit_detectors(m, {"c_mu", "c_sd", "w_cell", "b_cell"}, cell_f, C, workers,
                  [&](int64_t c, std::vector<int>& y, std::vector<int64_t>& rows) {
                    y.assign(static_cast<size_t>(cell_f.size(0)), 0);
                    for (int64_t i = 0; i < cell_f.size(0); ++i) {
                      const int8_t v = cell_y[static_cast<size_t>(i * C + c)];
                      if (v < 0) continue;
                      y[static_cast<size_t>(i)] = v;
                      rows.push_back(i);
                    }
                  });
    m.save(model_path);
  } catch (const c10::Error& e) {
    throw_input("{}: cannot build or save the demo encoder ({})", model_path, std::string(e.what()).substr(0, 300));
  }
  nlohmann::json j = demo_encoder_preprocess();
  j["model"] =
      "conceptlab demo encoder: designed filters, concept detectors trained on generated images, fixed random "
      "concept directions (stand-in for a foundation model)";
  // Tokens [N, 1 + G*G, D]: the image embedding as a class token, then one token per grid cell
  // (each concept's direction where its patch detector sees it), so `embed` writes the image
  // embedding and `embed --patches` the grid as well.
  j["output"] = {{"tokens", "cls"}, {"prefix_tokens", 1}};
  j["output_shape"] = fmt::format("[N,{},{}] float32", 1 + kDemoEncoderGrid * kDemoEncoderGrid, kDemoEncoderDim);
  write_file_atomic(json_path, j.dump(1) + "\n");
}

}  // namespace cl::demo
