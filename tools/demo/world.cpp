// Demo world generation: ground truth drawn first (sequential, seeded), then images rendered
// with OpenCV on worker threads, each from its own seed so the output does not depend on
// the number of threads.
#include "tools/demo/world.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <cmath>
#include <filesystem>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/csv.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/random.h"
#include "core/progress.h"
#include "explain/masks.h"
#include "tools/demo/encoder.h"

namespace fs = std::filesystem;

namespace cl::demo {

const std::vector<std::string>& structure_names() {
  static const std::vector<std::string> v = {"pigment_network", "dots_globules",   "streaks",         "blue_white_veil",
                                             "regression",      "irregular_border", "multiple_colours"};
  return v;
}
const std::vector<std::string>& artifact_names() {
  static const std::vector<std::string> v = {"hair", "ruler", "ink", "gel_bubble", "dark_corner"};
  return v;
}
std::vector<std::string> concept_names() {
  auto v = structure_names();
  for (auto& a : artifact_names()) v.push_back(a);
  return v;
}

int checklist_score(const std::vector<uint8_t>& s) {
  CL_ASSERT(s.size() >= 7);
  return 2 * (s[0] + s[3] + s[6]) + s[1] + s[2] + s[4] + s[5];
}

namespace {

// The world's draws: cl::Rng (identical across standard libraries) with short names for the
// many calls below.
struct Rng : cl::Rng {
  using cl::Rng::Rng;
  double u() { return uniform(); }
  double u(double a, double b) { return uniform(a, b); }
  int i(int a, int b) { return uniform_int(a, b); }
  bool bern(double p) { return bernoulli(p); }
};

cv::Scalar jitter(Rng& r, cv::Scalar c, double amount) {
  return cv::Scalar(std::clamp(c[0] + r.u(-amount, amount), 0.0, 255.0), std::clamp(c[1] + r.u(-amount, amount), 0.0, 255.0),
                    std::clamp(c[2] + r.u(-amount, amount), 0.0, 255.0));
}

// Blends `color` into img where mask (CV_32F in [0,1]) times alpha.
void blend(cv::Mat& img, const cv::Mat& mask, const cv::Scalar& color, double alpha) {
  for (int y = 0; y < img.rows; ++y) {
    cv::Vec3b* p = img.ptr<cv::Vec3b>(y);
    const float* m = mask.ptr<float>(y);
    for (int x = 0; x < img.cols; ++x) {
      const double a = m[x] * alpha;
      if (a <= 0) continue;
      for (int c = 0; c < 3; ++c) p[x][c] = cv::saturate_cast<uchar>(p[x][c] * (1 - a) + color[c] * a);
    }
  }
}

// Copies layer into img where mask (CV_32F) is on.
void composite(cv::Mat& img, const cv::Mat& layer, const cv::Mat& mask) {
  for (int y = 0; y < img.rows; ++y) {
    cv::Vec3b* p = img.ptr<cv::Vec3b>(y);
    const cv::Vec3b* l = layer.ptr<cv::Vec3b>(y);
    const float* m = mask.ptr<float>(y);
    for (int x = 0; x < img.cols; ++x) {
      const float a = m[x];
      if (a <= 0) continue;
      for (int c = 0; c < 3; ++c) p[x][c] = cv::saturate_cast<uchar>(p[x][c] * (1 - a) + l[x][c] * a);
    }
  }
}

cv::Mat soft_mask(const cv::Mat& mask_u8, double sigma) {
  cv::Mat f;
  mask_u8.convertTo(f, CV_32F, 1.0 / 255.0);
  if (sigma > 0) cv::GaussianBlur(f, f, cv::Size(0, 0), sigma);
  return f;
}

// A random blob polygon around c with mean radius r and lumpiness `amp`.
std::vector<cv::Point> blob(Rng& r, cv::Point2d c, double rx, double ry, double amp, int harmonics) {
  std::vector<double> a(harmonics), ph(harmonics);
  for (int h = 0; h < harmonics; ++h) a[h] = r.u(0, amp), ph[h] = r.u(0, 2 * M_PI);
  const double rot = r.u(0, M_PI);
  std::vector<cv::Point> pts;
  for (int k = 0; k < 64; ++k) {
    double t = 2 * M_PI * k / 64, f = 1;
    for (int h = 0; h < harmonics; ++h) f += a[h] * std::sin((h + 2) * t + ph[h]);
    double x = rx * f * std::cos(t), y = ry * f * std::sin(t);
    pts.emplace_back(cvRound(c.x + x * std::cos(rot) - y * std::sin(rot)), cvRound(c.y + x * std::sin(rot) + y * std::cos(rot)));
  }
  return pts;
}

}  // namespace

std::vector<DemoImage> draw_world(const DemoWorldParams& p) {
  if (p.n < 1) throw_usage("demo-data: --n {}: expected >= 1", p.n);
  if (p.image_size < 64) throw_usage("demo-data: image size {}: expected >= 64", p.image_size);
  Rng r(splitmix64(p.seed));
  const auto& st = structure_names();
  const auto& ar = artifact_names();
  std::vector<DemoImage> out(static_cast<size_t>(p.n));
  for (int64_t i = 0; i < p.n; ++i) {
    DemoImage& im = out[i];
    im.id = fmt::format("img_{:05d}.jpg", i);
    im.split = r.bern(p.train_fraction) ? "train" : "test";
    std::vector<uint8_t> s(st.size());
    for (auto& v : s) v = r.bern(p.p_structure);
    im.malignant_by_rule = checklist_score(s) >= p.malignant_threshold;
    im.malignant = r.bern(p.label_noise) ? !im.malignant_by_rule : im.malignant_by_rule;
    im.flags = s;
    for (size_t a = 0; a < ar.size(); ++a) {
      double pa = p.p_artifact;
      if (ar[a] == "hair")
        pa = im.split == "train" ? (im.malignant ? p.hair_p_malignant_train : p.hair_p_benign_train) : p.hair_p_test;
      im.flags.push_back(r.bern(pa));
    }
    im.render_seed = splitmix64(p.seed * 0x100000001b3ull + static_cast<uint64_t>(i) + 1);
  }
  return out;
}

cv::Mat render_image(const DemoImage& im, int S, std::vector<cv::Mat>* masks) {
  Rng r(im.render_seed);
  const double k = S / 224.0;
  const auto names = concept_names();
  auto index = [&](const std::string& name) {
    return static_cast<size_t>(std::find(names.begin(), names.end(), name) - names.begin());
  };
  auto flag = [&](const std::string& name) { return im.flags[index(name)] != 0; };
  cv::RNG cvr(im.render_seed | 1);
  // Masks are drawn from the same geometry as the pixels, never from new draws of r or cvr.
  if (masks) masks->assign(names.size(), cv::Mat());
  auto mask_of = [&](const std::string& name) -> cv::Mat* {
    if (!masks) return nullptr;
    cv::Mat& m = (*masks)[index(name)];
    if (m.empty()) m = cv::Mat::zeros(S, S, CV_8U);
    return &m;
  };
  // Later layers hide what is under them: clear `hidden` (CV_8U, non-zero = hidden) from every
  // mask but `except`.
  auto hide = [&](const cv::Mat& hidden, const std::string& except) {
    if (!masks) return;
    for (size_t c = 0; c < masks->size(); ++c)
      if (!(*masks)[c].empty() && names[c] != except) (*masks)[c].setTo(0, hidden);
  };
  // Pixels a drawing step changed visibly (max channel difference >= 20), for strokes whose
  // random thickness is drawn inside the call.
  auto changed = [](const cv::Mat& before, const cv::Mat& after) -> cv::Mat {
    cv::Mat d, d1;
    cv::absdiff(before, after, d);
    d = d.reshape(1, static_cast<int>(d.total()));
    cv::reduce(d, d1, 1, cv::REDUCE_MAX);
    return d1.reshape(1, after.rows) >= 20;
  };

  // Skin with illumination gradient and fine texture.
  const double tone = r.u();
  cv::Scalar skin(160 - 50 * tone, 185 - 45 * tone, 228 - 40 * tone);  // BGR
  cv::Mat img(S, S, CV_8UC3, skin);
  {
    cv::Mat noise(S, S, CV_32FC3);
    cvr.fill(noise, cv::RNG::NORMAL, 0, 6);
    cv::GaussianBlur(noise, noise, cv::Size(0, 0), 1.0);
    const double gdir = r.u(0, 2 * M_PI), gamp = r.u(0.0, 0.12);
    for (int y = 0; y < S; ++y) {
      cv::Vec3b* px = img.ptr<cv::Vec3b>(y);
      const cv::Vec3f* nz = noise.ptr<cv::Vec3f>(y);
      for (int x = 0; x < S; ++x) {
        double g = 1 + gamp * ((x - S / 2.0) * std::cos(gdir) + (y - S / 2.0) * std::sin(gdir)) / S;
        for (int c = 0; c < 3; ++c) px[x][c] = cv::saturate_cast<uchar>(px[x][c] * g + nz[x][c]);
      }
    }
  }

  // Lesion outline: an ellipse, smooth for regular borders, lobed and jagged for irregular ones.
  const cv::Point2d c(S / 2.0 + r.normal() * 8 * k, S / 2.0 + r.normal() * 8 * k);
  const double r0 = r.u(42, 62) * k, ax = r0 * r.u(0.85, 1.15), ay = r0 * r.u(0.85, 1.15), rot = r.u(0, M_PI);
  const bool irregular = flag("irregular_border");
  std::vector<double> amp, freq, ph;
  if (irregular) {
    for (int h = 0; h < 4; ++h) amp.push_back(r.u(0.08, 0.14)), freq.push_back(r.i(4, 9)), ph.push_back(r.u(0, 2 * M_PI));
    for (int h = 0; h < 3; ++h) amp.push_back(r.u(0.03, 0.06)), freq.push_back(r.i(13, 22)), ph.push_back(r.u(0, 2 * M_PI));
  } else {
    for (int h = 0; h < 2; ++h) amp.push_back(r.u(0.0, 0.035)), freq.push_back(2 + h), ph.push_back(r.u(0, 2 * M_PI));
  }
  auto radius = [&](double t) {
    double e = ax * ay / std::sqrt(std::pow(ay * std::cos(t - rot), 2) + std::pow(ax * std::sin(t - rot), 2));
    double f = 1;
    for (size_t h = 0; h < amp.size(); ++h) f += amp[h] * std::sin(freq[h] * t + ph[h]);
    return e * std::max(f, 0.45);
  };
  std::vector<cv::Point> outline;
  for (int i = 0; i < 240; ++i) {
    double t = 2 * M_PI * i / 240;
    outline.emplace_back(cvRound(c.x + radius(t) * std::cos(t)), cvRound(c.y + radius(t) * std::sin(t)));
  }
  cv::Mat mask_u8 = cv::Mat::zeros(S, S, CV_8U);
  cv::fillPoly(mask_u8, std::vector<std::vector<cv::Point>>{outline}, cv::Scalar(255), cv::LINE_AA);
  cv::Mat mask = soft_mask(mask_u8, 1.5 * k);
  auto inside = [&](double x, double y, double shrink) {
    double dx = x - c.x, dy = y - c.y, t = std::atan2(dy, dx);
    return std::sqrt(dx * dx + dy * dy) < shrink * radius(t);
  };
  auto random_inside = [&](double shrink) {
    for (int tries = 0; tries < 200; ++tries) {
      double x = c.x + r.u(-1, 1) * r0 * 1.3, y = c.y + r.u(-1, 1) * r0 * 1.3;
      if (inside(x, y, shrink)) return cv::Point2d(x, y);
    }
    return c;
  };

  // Lesion layer: base brown with darker centre, then the structures, composited through the mask.
  const double dark = r.u(0, 1);
  cv::Scalar lesion_col(85 - 30 * dark, 105 - 35 * dark, 150 - 45 * dark);
  lesion_col = jitter(r, lesion_col, 8);
  cv::Mat layer(S, S, CV_8UC3, lesion_col);
  {
    cv::Mat centre = cv::Mat::zeros(S, S, CV_8U);
    cv::ellipse(centre, cv::Point(cvRound(c.x), cvRound(c.y)), cv::Size(cvRound(ax * 0.5), cvRound(ay * 0.5)), rot * 180 / M_PI,
                0, 360, cv::Scalar(255), -1);
    blend(layer, soft_mask(centre, 8 * k), lesion_col * 0.8, 0.6);
    cv::Mat nz(S, S, CV_32FC3);
    cvr.fill(nz, cv::RNG::NORMAL, 0, 5);
    cv::GaussianBlur(nz, nz, cv::Size(0, 0), 2.0 * k);
    cv::Mat l32;
    layer.convertTo(l32, CV_32FC3);
    l32 += nz;
    l32.convertTo(layer, CV_8UC3);
  }
  if (flag("multiple_colours")) {
    // Zones of colours the plain lesion never has: red, black, orange.
    std::vector<cv::Scalar> palette = {{70, 62, 200}, {22, 22, 30}, {55, 140, 215}};
    int first = r.i(0, 2), n_col = r.i(2, 3);
    for (int j = 0; j < n_col; ++j) {
      cv::Mat m = cv::Mat::zeros(S, S, CV_8U);
      auto pc = random_inside(0.6);
      cv::fillPoly(m, std::vector<std::vector<cv::Point>>{blob(r, pc, r0 * r.u(0.35, 0.5), r0 * r.u(0.35, 0.5), 0.15, 3)},
                   cv::Scalar(255), cv::LINE_AA);
      blend(layer, soft_mask(m, 2 * k), jitter(r, palette[(first + j) % 3], 10), 1.0);
      if (auto* mm = mask_of("multiple_colours")) cv::max(*mm, m, *mm);
    }
  }
  if (flag("blue_white_veil")) {
    cv::Mat m = cv::Mat::zeros(S, S, CV_8U);
    auto pc = random_inside(0.4);
    cv::fillPoly(m, std::vector<std::vector<cv::Point>>{blob(r, pc, r0 * r.u(0.4, 0.55), r0 * r.u(0.4, 0.55), 0.12, 3)},
                 cv::Scalar(255), cv::LINE_AA);
    blend(layer, soft_mask(m, 4 * k), jitter(r, cv::Scalar(185, 150, 125), 10), 0.8);
    if (auto* mm = mask_of("blue_white_veil")) cv::max(*mm, m, *mm);
  }
  if (flag("regression")) {
    int n_patch = r.i(1, 2);
    for (int j = 0; j < n_patch; ++j) {
      cv::Mat m = cv::Mat::zeros(S, S, CV_8U);
      auto pc = random_inside(0.6);
      double rr = r0 * r.u(0.3, 0.42);
      cv::fillPoly(m, std::vector<std::vector<cv::Point>>{blob(r, pc, rr, rr * r.u(0.6, 1.0), 0.2, 4)}, cv::Scalar(255),
                   cv::LINE_AA);
      blend(layer, soft_mask(m, 2 * k), jitter(r, cv::Scalar(238, 236, 236), 6), 0.92);
      if (auto* mm = mask_of("regression")) cv::max(*mm, m, *mm);
      int n_pep = r.i(15, 30);  // grey peppering
      for (int q = 0; q < n_pep; ++q) {
        cv::Point2d pp(pc.x + r.normal() * rr * 0.5, pc.y + r.normal() * rr * 0.5);
        cv::circle(layer, pp, std::max(1, cvRound(1.0 * k)), jitter(r, cv::Scalar(115, 112, 120), 10), -1, cv::LINE_AA);
      }
    }
  }
  if (flag("pigment_network")) {
    cv::Mat net(S, S, CV_8UC3, cv::Scalar(0, 0, 0));
    cv::Mat net_mask = cv::Mat::zeros(S, S, CV_8U);
    const double sp = r.u(8, 11) * k, a0 = r.u(0, M_PI);
    const int thick = std::max(1, cvRound(r.u(1.0, 2.0) * k));
    for (int dir = 0; dir < 2; ++dir) {
      const double a = a0 + dir * M_PI / 2 + r.u(-0.2, 0.2);
      const cv::Point2d d(std::cos(a), std::sin(a)), nrm(-std::sin(a), std::cos(a));
      for (double off = -S; off <= S; off += sp) {
        std::vector<cv::Point> line;
        for (double t = -S; t <= S; t += 4 * k) {
          double w = r.u(-1.2, 1.2) * k;
          line.emplace_back(cvRound(c.x + d.x * t + nrm.x * (off + w)), cvRound(c.y + d.y * t + nrm.y * (off + w)));
        }
        cv::polylines(net_mask, std::vector<std::vector<cv::Point>>{line}, false, cv::Scalar(255), thick, cv::LINE_AA);
      }
    }
    cv::Mat region = cv::Mat::zeros(S, S, CV_8U);
    cv::ellipse(region, cv::Point(cvRound(c.x), cvRound(c.y)), cv::Size(cvRound(ax * 0.85), cvRound(ay * 0.85)),
                rot * 180 / M_PI, 0, 360, cv::Scalar(255), -1);
    cv::Mat m = soft_mask(net_mask, 0.4 * k).mul(soft_mask(region, 4 * k));
    blend(layer, m, lesion_col * 0.45, 0.9);
    if (auto* mm = mask_of("pigment_network")) cv::max(*mm, region, *mm);  // the meshed area, not each line
  }
  if (flag("dots_globules")) {
    const cv::Mat before = masks ? layer.clone() : cv::Mat();
    int n_dots = r.i(14, 30);
    for (int q = 0; q < n_dots; ++q) {
      auto pc = random_inside(0.85);
      cv::circle(layer, pc, std::max(1, cvRound(r.u(2.5, 4.5) * k)), jitter(r, cv::Scalar(28, 32, 48), 8), -1, cv::LINE_AA);
    }
    if (auto* mm = mask_of("dots_globules")) mm->setTo(255, changed(before, layer));
  }
  composite(img, layer, mask);
  if (masks) {
    // The lesion layer shows only inside the outline; a lobed border is the band along it.
    const cv::Mat outside = mask_u8 < 128;
    for (const auto& s : structure_names())
      if (!(*masks)[index(s)].empty()) (*masks)[index(s)].setTo(0, outside);
    if (irregular)
      cv::polylines(*mask_of("irregular_border"), std::vector<std::vector<cv::Point>>{outline}, true, cv::Scalar(255),
                    std::max(2, cvRound(6 * k)));
  }
  if (flag("streaks")) {
    int n_str = r.i(9, 16);
    const double t0 = r.u(0, 2 * M_PI), spread = r.u(M_PI, 2 * M_PI);
    const cv::Scalar col = lesion_col * 0.5;
    for (int q = 0; q < n_str; ++q) {
      double t = t0 + spread * q / n_str + r.u(-0.1, 0.1), rr = radius(t);
      double r_in = rr * 0.8, r_out = rr + r.u(8, 18) * k;
      cv::Point2d a(c.x + r_in * std::cos(t), c.y + r_in * std::sin(t)), b(c.x + r_out * std::cos(t), c.y + r_out * std::sin(t));
      cv::line(img, a, b, col, std::max(1, cvRound(2 * k)), cv::LINE_AA);
      cv::circle(img, b, std::max(1, cvRound(2 * k)), col, -1, cv::LINE_AA);
      if (auto* mm = mask_of("streaks")) {
        cv::line(*mm, a, b, cv::Scalar(255), std::max(1, cvRound(2 * k)) + 2);
        cv::circle(*mm, b, std::max(1, cvRound(2 * k)) + 1, cv::Scalar(255), -1);
      }
    }
  }

  // Artifacts.
  if (flag("gel_bubble")) {
    int n_b = r.i(1, 4);
    for (int q = 0; q < n_b; ++q) {
      cv::Point2d pc(r.u(0.1, 0.9) * S, r.u(0.1, 0.9) * S);
      double rb = r.u(8, 18) * k;
      cv::Mat m = cv::Mat::zeros(S, S, CV_8U);
      cv::circle(m, pc, cvRound(rb), cv::Scalar(255), -1, cv::LINE_AA);
      blend(img, soft_mask(m, 0), cv::Scalar(245, 245, 245), 0.18);
      cv::circle(img, pc, cvRound(rb + 2 * k), cv::Scalar(70, 70, 80), 1, cv::LINE_AA);
      cv::circle(img, pc, cvRound(rb), cv::Scalar(238, 242, 246), std::max(1, cvRound(2 * k)), cv::LINE_AA);
      cv::circle(img, cv::Point2d(pc.x - rb * 0.35, pc.y - rb * 0.35), std::max(1, cvRound(rb * 0.18)),
                 cv::Scalar(252, 252, 252), -1, cv::LINE_AA);
      if (auto* mm = mask_of("gel_bubble")) cv::circle(*mm, pc, cvRound(rb + 2 * k), cv::Scalar(255), -1);
    }
  }
  if (flag("ink")) {
    const double t0 = r.u(0, 2 * M_PI), span = r.u(1.0, 2.5), rr = r0 * r.u(1.25, 1.6);
    std::vector<cv::Point> arc;
    for (int q = 0; q <= 24; ++q) {
      double t = t0 + span * q / 24;
      arc.emplace_back(cvRound(c.x + rr * std::cos(t)), cvRound(c.y + rr * std::sin(t)));
    }
    const cv::Mat before = masks ? img.clone() : cv::Mat();
    cv::polylines(img, std::vector<std::vector<cv::Point>>{arc}, false, jitter(r, cv::Scalar(140, 45, 115), 12),
                  std::max(2, cvRound(r.u(5, 9) * k)), cv::LINE_AA);
    if (auto* mm = mask_of("ink")) mm->setTo(255, changed(before, img));
  }
  if (flag("ruler")) {
    const int side = r.i(0, 3), band = cvRound(16 * k);
    cv::Mat m = cv::Mat::zeros(S, S, CV_8U);
    cv::Rect rect = side == 0 ? cv::Rect(0, S - band, S, band)
                    : side == 1 ? cv::Rect(0, 0, S, band)
                    : side == 2 ? cv::Rect(0, 0, band, S)
                                : cv::Rect(S - band, 0, band, S);
    cv::rectangle(m, rect, cv::Scalar(255), -1);
    blend(img, soft_mask(m, 0), cv::Scalar(205, 220, 228), 0.85);
    if (masks) {
      hide(m, "ruler");
      cv::max(*mask_of("ruler"), m, *mask_of("ruler"));
    }
    const double step = r.u(5, 6.5) * k;
    int q = 0;
    for (double t = r.u(0, step); t < S; t += step, ++q) {
      int len = cvRound((q % 5 == 0 ? 13 : 7) * k);
      cv::Point a, b;
      if (side == 0) a = {cvRound(t), S - 1}, b = {cvRound(t), S - 1 - len};
      else if (side == 1) a = {cvRound(t), 0}, b = {cvRound(t), len};
      else if (side == 2) a = {0, cvRound(t)}, b = {len, cvRound(t)};
      else a = {S - 1, cvRound(t)}, b = {S - 1 - len, cvRound(t)};
      cv::line(img, a, b, cv::Scalar(25, 25, 25), 1, cv::LINE_AA);
    }
  }
  if (flag("hair")) {
    int n_h = r.i(4, 10);
    for (int q = 0; q < n_h; ++q) {
      cv::Point2d p(r.u(0, S), r.u(0, S));
      double a = r.u(0, 2 * M_PI), len = r.u(70, 200) * k, curv = r.u(-0.04, 0.04);
      std::vector<cv::Point> pts;
      for (double s = 0; s < len; s += 5 * k) {
        pts.emplace_back(cvRound(p.x), cvRound(p.y));
        a += curv + r.normal() * 0.03;
        p += cv::Point2d(std::cos(a), std::sin(a)) * 5 * k;
      }
      int th = r.bern(0.3) ? std::max(1, cvRound(2 * k)) : std::max(1, cvRound(1.2 * k));
      cv::polylines(img, std::vector<std::vector<cv::Point>>{pts}, false, jitter(r, cv::Scalar(25, 25, 32), 10), th,
                    cv::LINE_AA);
      // 2 px wider than the stroke: its antialiased fringe is visible too.
      if (auto* mm = mask_of("hair")) cv::polylines(*mm, std::vector<std::vector<cv::Point>>{pts}, false, cv::Scalar(255), th + 2);
    }
  }
  if (flag("dark_corner")) {
    const double R = r.u(0.5, 0.62) * S, soft = 6 * k;
    const cv::Point2d vc(S / 2.0 + r.normal() * 5 * k, S / 2.0 + r.normal() * 5 * k);
    cv::Mat dark = cv::Mat::zeros(S, S, CV_8U);
    for (int y = 0; y < S; ++y) {
      cv::Vec3b* px = img.ptr<cv::Vec3b>(y);
      uchar* dk = dark.ptr<uchar>(y);
      for (int x = 0; x < S; ++x) {
        double d = std::hypot(x - vc.x, y - vc.y);
        double m = std::clamp((d - R) / soft + 0.5, 0.0, 1.0);
        for (int ch = 0; ch < 3; ++ch) px[x][ch] = cv::saturate_cast<uchar>(px[x][ch] * (1 - m) + 8 * m);
        dk[x] = m >= 0.5 ? 255 : 0;
      }
    }
    if (masks) {
      hide(dark, "dark_corner");
      cv::max(*mask_of("dark_corner"), dark, *mask_of("dark_corner"));
    }
  }
  // A concept whose drawing ended up entirely hidden (or off the image) is absent from the masks.
  if (masks)
    for (auto& m : *masks)
      if (!m.empty() && cv::countNonZero(m) == 0) m = cv::Mat();
  return img;
}

nlohmann::json to_json(const DemoWorldReport& r) {
  return {{"dir", r.dir},       {"meta_csv", r.meta_csv},         {"images_dir", r.images_dir}, {"masks", r.masks_path},
          {"encoder", r.encoder_path}, {"encoder_json", r.encoder_json}, {"n", r.n},
          {"n_train", r.n_train}, {"n_test", r.n_test},          {"n_malignant", r.n_malignant},
          {"seconds", r.seconds}};
}

void prepare_world_dir(const std::string& dir) {
  std::error_code ec;
  const fs::path d(dir);
  if (fs::exists(d, ec) && !fs::is_directory(d, ec)) throw_input("{}: is a file, expected a folder", dir);
  if (!fs::is_directory(d, ec) || fs::is_empty(d, ec)) return;
  if (!fs::exists(d / kWorldMarker, ec))
    throw_input("{}: folder is not empty and holds no demo world (no {}); choose a new or empty folder", dir,
                kWorldMarker);
  for (const char* name : {"images", "meta.csv", kWorldMasks, "encoder.pt", "encoder.json"}) {
    fs::remove_all(d / name, ec);
    if (ec) throw_input("{}: cannot remove the previous world's {} ({})", dir, name, ec.message());
  }
}

DemoWorldReport generate_demo_world(const DemoWorldParams& p, const std::string& dir, ProgressSink& progress) {
  if (p.jpeg_quality < 1 || p.jpeg_quality > 100) throw_usage("demo-data: jpeg quality {}: expected 1..100", p.jpeg_quality);
  for (double q : {p.train_fraction, p.p_structure, p.p_artifact, p.label_noise, p.hair_p_malignant_train,
                   p.hair_p_benign_train, p.hair_p_test})
    if (!(q >= 0 && q <= 1)) throw_usage("demo-data: probability {}: expected 0..1", q);
  const auto t0 = std::chrono::steady_clock::now();
  prepare_world_dir(dir);
  std::error_code ec;
  fs::create_directories(fs::path(dir) / "images", ec);
  if (ec) throw_input("{}: cannot create folder ({})", dir, ec.message());
  std::ofstream(fs::path(dir) / kWorldMarker) << "conceptlab demo world\n";
  std::vector<DemoImage> world = draw_world(p);

  const std::vector<int> jpeg = {cv::IMWRITE_JPEG_QUALITY, p.jpeg_quality};
  Progress prog(progress, "demo-data", p.n, "images");
  const int workers = p.workers > 0 ? p.workers : std::min(resolve_threads(0), 16);
  const std::string masks_path = (fs::path(dir) / kWorldMasks).string();
  const auto names = concept_names();
  nlohmann::json masks_config = {{"source", "conceptlab demo world"}, {"seed", p.seed}, {"n", p.n}};
  explain::MasksWriter masks_out(masks_path, names, p.image_size, p.image_size, masks_config);
  // Rendered in blocks on the workers; the masks of a block are appended in image order.
  constexpr int64_t kBlock = 64;
  std::vector<std::vector<cv::Mat>> block_masks(kBlock);
  for (int64_t b0 = 0; b0 < p.n; b0 += kBlock) {
    const int64_t nb = std::min(kBlock, p.n - b0);
    parallel_for(nb, workers, [&](int64_t j) {
      const DemoImage& im = world[static_cast<size_t>(b0 + j)];
      // Write beside, then rename: an interrupted run never leaves a truncated image.
      const std::string path = (fs::path(dir) / "images" / im.id).string(), tmp = path + ".tmp.jpg";
      bool ok = false;
      try {
        ok = cv::imwrite(tmp, render_image(im, p.image_size, &block_masks[static_cast<size_t>(j)]), jpeg);
        if (ok) fs::rename(tmp, path);
      } catch (const std::exception&) {
        ok = false;
      }
      if (!ok) throw_input("{}: cannot write image", path);
      prog.add(1);
    });
    for (int64_t j = 0; j < nb; ++j) masks_out.append(world[static_cast<size_t>(b0 + j)].id, block_masks[static_cast<size_t>(j)]);
  }
  masks_out.commit();
  prog.finish();

  CsvTable meta;
  meta.path = (fs::path(dir) / "meta.csv").string();
  meta.header = {kDefaultIdCol, "label", "malignant", "split"};
  for (auto& n : concept_names()) meta.header.push_back(n);
  DemoWorldReport rep;
  for (auto& im : world) {
    std::vector<std::string> row = {im.id, im.malignant ? "malignant" : "benign", im.malignant ? "1" : "0", im.split};
    for (auto f : im.flags) row.push_back(f ? "1" : "0");
    meta.rows.push_back(std::move(row));
    (im.split == "train" ? rep.n_train : rep.n_test)++;
    rep.n_malignant += im.malignant;
  }
  write_csv(meta.path, meta);
  rep.dir = dir;
  rep.meta_csv = meta.path;
  rep.images_dir = (fs::path(dir) / "images").string();
  rep.masks_path = masks_path;
  rep.encoder_path = (fs::path(dir) / "encoder.pt").string();
  rep.encoder_json = (fs::path(dir) / "encoder.json").string();
  write_demo_encoder(rep.encoder_path, rep.encoder_json, p.workers);
  rep.n = p.n;
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace cl::demo
