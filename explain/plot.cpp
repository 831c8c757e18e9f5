// PNG charts drawn with OpenCV primitives (lines, rectangles, Hershey text).
#include "explain/plot.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/atomic_file.h"
#include "core/error.h"

namespace cl::explain {

namespace {

const cv::Scalar kInk(40, 40, 40), kGrid(225, 225, 225), kPos(180, 119, 31), kNeg(40, 39, 214);
const cv::Scalar kColors[] = {{180, 119, 31}, {14, 127, 255}, {44, 160, 44}, {40, 39, 214},
                              {189, 103, 148}, {75, 86, 140}, {194, 119, 227}, {127, 127, 127}};
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

void text(cv::Mat& img, const std::string& s, cv::Point at, double scale = 0.45, cv::Scalar color = kInk,
          int thickness = 1) {
  cv::putText(img, s, at, kFont, scale, color, thickness, cv::LINE_AA);
}

int text_width(const std::string& s, double scale = 0.45) {
  int base = 0;
  return cv::getTextSize(s, kFont, scale, 1, &base).width;
}

std::string fit_text(std::string s, int max_px, double scale = 0.45) {
  if (text_width(s, scale) <= max_px) return s;
  while (!s.empty() && text_width(s + "..", scale) > max_px) s.pop_back();
  return s + "..";
}

std::string short_num(double v) {
  if (std::isnan(v)) return "nan";
  const double a = std::abs(v);
  return a != 0 && (a < 1e-3 || a >= 1e5) ? fmt::format("{:.2e}", v) : fmt::format("{:.3g}", v);
}

}  // namespace

void write_png(const std::string& path, const cv::Mat& image, const std::vector<std::string>& inputs) {
  std::vector<unsigned char> buf;
  if (!cv::imencode(".png", image, buf)) throw_input("{}: cannot encode PNG", path);
  write_file_atomic(path, std::string(buf.begin(), buf.end()), inputs);
}

void write_bar_charts(const std::string& path, const std::vector<BarPanel>& panels, const std::string& value_label,
                      const std::vector<std::string>& inputs) {
  const int W = 900, label_w = 260, bar_h = 22, pad = 14, title_h = 30, axis_h = 28;
  int H = pad;
  for (const auto& p : panels) H += title_h + std::max<int>(1, static_cast<int>(p.bars.size())) * bar_h + axis_h + pad;
  cv::Mat img(std::max(H, 60), W, CV_8UC3, cv::Scalar(255, 255, 255));
  int y = pad;
  for (const auto& p : panels) {
    text(img, fit_text(p.title, W - 2 * pad, 0.55), {pad, y + 20}, 0.55, kInk, 1);
    y += title_h;
    double lo = 0, hi = 0;
    for (const auto& b : p.bars)
      if (std::isfinite(b.value)) lo = std::min(lo, b.value), hi = std::max(hi, b.value);
    if (hi - lo <= 0) hi = lo + 1;
    const int x0 = label_w + pad, x1 = W - pad - 70;
    auto px = [&](double v) { return x0 + static_cast<int>(std::lround((v - lo) / (hi - lo) * (x1 - x0))); };
    const int axis = px(0.0), top = y;
    for (const auto& b : p.bars) {
      text(img, fit_text(b.label, label_w - 8), {pad, y + bar_h - 7});
      if (std::isfinite(b.value)) {
        const int xv = px(b.value);
        cv::rectangle(img, cv::Point(std::min(axis, xv), y + 3), cv::Point(std::max(axis, xv), y + bar_h - 3),
                      b.value >= 0 ? kPos : kNeg, cv::FILLED);
        text(img, short_num(b.value), {std::max(axis, xv) + 5, y + bar_h - 7}, 0.4);
      }
      y += bar_h;
    }
    if (p.bars.empty()) {
      text(img, "(nothing to show)", {x0, y + bar_h - 7});
      y += bar_h;
    }
    cv::line(img, {axis, top}, {axis, y}, kInk, 1);
    cv::line(img, {x0, y}, {x1, y}, kInk, 1);
    text(img, short_num(lo), {x0, y + 16}, 0.4);
    text(img, short_num(hi), {x1 - text_width(short_num(hi), 0.4), y + 16}, 0.4);
    text(img, value_label, {(x0 + x1) / 2 - text_width(value_label, 0.4) / 2, y + 16}, 0.4);
    y += axis_h + pad;
  }
  write_png(path, img, inputs);
}

void write_line_chart(const std::string& path, const std::string& title, const std::string& x_label,
                      const std::string& y_label, const std::vector<Series>& series,
                      const std::vector<std::string>& inputs) {
  const int W = 900, H = 560, left = 80, right = 200, top = 50, bottom = 60;
  cv::Mat img(H, W, CV_8UC3, cv::Scalar(255, 255, 255));
  double xlo = 1e300, xhi = -1e300, ylo = 1e300, yhi = -1e300;
  auto grow = [&](double x, double y) {
    if (!std::isfinite(x) || !std::isfinite(y)) return;
    xlo = std::min(xlo, x), xhi = std::max(xhi, x), ylo = std::min(ylo, y), yhi = std::max(yhi, y);
  };
  for (const auto& s : series)
    for (size_t i = 0; i < s.x.size(); ++i) {
      grow(s.x[i], s.y[i]);
      if (i < s.lo.size()) grow(s.x[i], s.lo[i]), grow(s.x[i], s.hi[i]);
    }
  if (xlo > xhi) xlo = 0, xhi = 1, ylo = 0, yhi = 1;
  if (xhi - xlo <= 0) xhi = xlo + 1;
  if (yhi - ylo <= 0) yhi = ylo + 0.1, ylo -= 0.1;
  const double ypad = 0.05 * (yhi - ylo);
  ylo -= ypad, yhi += ypad;
  // Scatter points at the extremes would sit on the frame with their labels cut off.
  if (std::any_of(series.begin(), series.end(), [](const Series& s) { return !s.connect; })) {
    const double xpad = 0.04 * (xhi - xlo);
    xlo -= xpad, xhi += xpad;
  }
  const int x0 = left, x1 = W - right, y0 = H - bottom, y1 = top;
  auto P = [&](double x, double y) {
    return cv::Point(x0 + static_cast<int>(std::lround((x - xlo) / (xhi - xlo) * (x1 - x0))),
                     y0 - static_cast<int>(std::lround((y - ylo) / (yhi - ylo) * (y0 - y1))));
  };
  for (int g = 0; g <= 5; ++g) {
    const double yv = ylo + (yhi - ylo) * g / 5.0, xv = xlo + (xhi - xlo) * g / 5.0;
    cv::line(img, P(xlo, yv), P(xhi, yv), kGrid, 1);
    text(img, short_num(yv), {x0 - 8 - text_width(short_num(yv), 0.4), P(xlo, yv).y + 4}, 0.4);
    text(img, short_num(xv), {P(xv, ylo).x - text_width(short_num(xv), 0.4) / 2, y0 + 18}, 0.4);
  }
  cv::rectangle(img, {x0, y1}, {x1, y0}, kInk, 1);
  text(img, fit_text(title, W - 2 * left, 0.55), {left, 30}, 0.55);
  text(img, x_label, {(x0 + x1) / 2 - text_width(x_label, 0.45) / 2, H - 18});
  cv::Mat ylab(24, std::max(1, text_width(y_label) + 8), CV_8UC3, cv::Scalar(255, 255, 255));
  text(ylab, y_label, {4, 17});
  cv::Mat rot;
  cv::rotate(ylab, rot, cv::ROTATE_90_COUNTERCLOCKWISE);
  if (rot.rows <= y0 - y1) rot.copyTo(img(cv::Rect(8, (y0 + y1) / 2 - rot.rows / 2, rot.cols, rot.rows)));
  for (size_t s = 0; s < series.size(); ++s) {
    const cv::Scalar c = kColors[s % 8];
    const auto& sr = series[s];
    if (sr.lo.size() == sr.x.size() && !sr.x.empty()) {
      std::vector<cv::Point> poly;
      for (size_t i = 0; i < sr.x.size(); ++i) poly.push_back(P(sr.x[i], sr.hi[i]));
      for (size_t i = sr.x.size(); i > 0; --i) poly.push_back(P(sr.x[i - 1], sr.lo[i - 1]));
      cv::Mat band = img.clone();
      cv::fillPoly(band, std::vector<std::vector<cv::Point>>{poly}, c);
      cv::addWeighted(band, 0.18, img, 0.82, 0, img);
    }
    auto finite = [&](size_t i) { return std::isfinite(sr.x[i]) && std::isfinite(sr.y[i]); };
    for (size_t i = 0; sr.connect && i + 1 < sr.x.size(); ++i)
      if (finite(i) && finite(i + 1)) cv::line(img, P(sr.x[i], sr.y[i]), P(sr.x[i + 1], sr.y[i + 1]), c, 2, cv::LINE_AA);
    for (size_t i = 0; i < sr.x.size(); ++i) {
      if (!finite(i)) continue;
      cv::circle(img, P(sr.x[i], sr.y[i]), sr.marker_px, c, cv::FILLED, cv::LINE_AA);
      if (i < sr.labels.size())
        text(img, sr.labels[i], P(sr.x[i], sr.y[i]) + cv::Point(sr.marker_px + 3, -sr.marker_px - 2), 0.38, c);
    }
    const int ly = top + 10 + static_cast<int>(s) * 22;
    if (sr.connect)
      cv::line(img, {x1 + 12, ly}, {x1 + 36, ly}, c, 2, cv::LINE_AA);
    else
      cv::circle(img, {x1 + 24, ly}, sr.marker_px, c, cv::FILLED, cv::LINE_AA);
    text(img, fit_text(sr.name, right - 50), {x1 + 42, ly + 5}, 0.42);
  }
  write_png(path, img, inputs);
}

void write_montage(const std::string& path, const std::string& title, const std::vector<Tile>& tiles, int cols,
                   int tile_px, const std::vector<std::string>& inputs) {
  write_png(path, render_montage(title, tiles, cols, tile_px), inputs);
}

cv::Mat render_montage(const std::string& title, const std::vector<Tile>& tiles, int cols, int tile_px) {
  cols = std::max(1, cols);
  const int pad = 8, caption_h = 36, title_h = 34;
  const int n = static_cast<int>(tiles.size()), rows = std::max(1, (n + cols - 1) / cols);
  const int W = pad + cols * (tile_px + pad), H = title_h + pad + rows * (tile_px + caption_h + pad);
  cv::Mat img(H, W, CV_8UC3, cv::Scalar(255, 255, 255));
  text(img, fit_text(title, W - 2 * pad, 0.55), {pad, 24}, 0.55);
  for (int i = 0; i < n; ++i) {
    const int cx = pad + (i % cols) * (tile_px + pad), cy = title_h + pad + (i / cols) * (tile_px + caption_h + pad);
    cv::Rect cell(cx, cy, tile_px, tile_px);
    cv::rectangle(img, cell, kGrid, cv::FILLED);
    const cv::Mat& src = tiles[static_cast<size_t>(i)].image;
    if (!src.empty()) {
      const double s = std::min(double(tile_px) / src.cols, double(tile_px) / src.rows);
      const int w = std::max(1, static_cast<int>(src.cols * s)), h = std::max(1, static_cast<int>(src.rows * s));
      cv::Mat small;
      cv::resize(src, small, cv::Size(w, h), 0, 0, cv::INTER_AREA);
      if (small.channels() == 1) cv::cvtColor(small, small, cv::COLOR_GRAY2BGR);
      small.copyTo(img(cv::Rect(cx + (tile_px - w) / 2, cy + (tile_px - h) / 2, w, h)));
    } else {
      text(img, "missing", {cx + tile_px / 2 - text_width("missing") / 2, cy + tile_px / 2});
    }
    const std::string& cap = tiles[static_cast<size_t>(i)].caption;
    size_t start = 0;
    for (int line = 0; line < 2 && start <= cap.size(); ++line) {
      const size_t end = cap.find('\n', start);
      text(img, fit_text(cap.substr(start, end == std::string::npos ? std::string::npos : end - start), tile_px, 0.4),
           {cx, cy + tile_px + 14 + 15 * line}, 0.4);
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }
  return img;
}

}  // namespace cl::explain
