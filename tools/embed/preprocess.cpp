// Preprocessing implementation. The antialiased resize is a port of Pillow's
// libImaging/Resample.c (ImagingResample, 8 bits per channel), because encoders trained in
// PyTorch saw torchvision Resize on PIL images and a generic area filter drifts by ~0.5% cosine.
#include "tools/embed/preprocess.h"
#include "core/json_input.h"

#include <algorithm>
#include <cctype>
#include <cfenv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/error.h"

namespace cl::embed {

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool contains(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

const std::vector<std::string> kResizeNames = {"shorter_side_center_crop", "direct"};
const std::vector<std::string> kInterpNames = {"bilinear_antialias", "bicubic_antialias", "lanczos_antialias",
                                               "box_antialias",      "bilinear",          "bicubic",
                                               "area",               "nearest"};

bool known(const std::vector<std::string>& names, const std::string& v) {
  return std::find(names.begin(), names.end(), v) != names.end();
}

// Resize policy from our name or from prose ("shorter side to 256 then center crop 224").
std::string parse_resize(const std::string& raw, int* resize_size) {
  std::string s = lower(raw);
  if (known(kResizeNames, s)) return s;
  if (s == "center_crop" || s == "shorter_side" || contains(s, "crop")) {
    std::smatch m;
    if (std::regex_search(s, m, std::regex(R"(shorter side (?:to )?(\d+))"))) *resize_size = std::stoi(m[1]);
    return "shorter_side_center_crop";
  }
  if (contains(s, "direct") || contains(s, "squash") || contains(s, "stretch") || contains(s, "resize to")) return "direct";
  return raw;  // validate() reports it
}

std::string parse_interpolation(const std::string& raw) {
  std::string s = lower(raw);
  if (known(kInterpNames, s)) return s;
  std::string base;
  for (const char* b : {"bicubic", "lanczos", "nearest", "area", "box", "bilinear", "linear"}) {
    if (contains(s, b)) {
      base = b;
      break;
    }
  }
  if (base.empty()) return raw;
  if (base == "linear") base = "bilinear";
  bool no_aa = contains(s, "no antialias") || contains(s, "antialias=false") || contains(s, "without antialias");
  bool aa = !no_aa && (contains(s, "antialias") || contains(s, "pil"));
  if (base == "nearest" || base == "area") return base;
  if (base == "box") return "box_antialias";
  if (base == "lanczos") return "lanczos_antialias";
  return aa ? base + "_antialias" : base;
}

// "[0,1] before mean/std" -> {0,1}; also accepts a JSON array.
std::vector<double> parse_range(const nlohmann::json& v, const std::string& source) {
  if (v.is_array()) return v.get<std::vector<double>>();
  if (v.is_string()) {
    std::smatch m;
    std::string s = v.get<std::string>();
    if (std::regex_search(s, m, std::regex(R"(\[\s*(-?[0-9.]+)\s*,\s*(-?[0-9.]+)\s*\])")))
      return {std::stod(m[1]), std::stod(m[2])};
  }
  throw_input("{}: input_range {}: expected [lo, hi] such as [0, 1]", source, v.dump());
}

}  // namespace

PreprocessParams preprocess_from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw_input("{}: preprocessing must be a JSON object, found {}", source, j.type_name());
  PreprocessParams p;
  try {
    if (j.contains("image_size")) p.image_size = j.at("image_size").get<int>();
    if (j.contains("resize_size")) p.resize_size = j.at("resize_size").get<int>();
    if (j.contains("resize")) p.resize = parse_resize(j.at("resize").get<std::string>(), &p.resize_size);
    if (j.contains("interpolation")) p.interpolation = parse_interpolation(j.at("interpolation").get<std::string>());
    if (j.contains("mean")) p.mean = j.at("mean").get<std::vector<double>>();
    if (j.contains("std")) p.std = j.at("std").get<std::vector<double>>();
    if (j.contains("channel_order")) {
      std::string c = j.at("channel_order").get<std::string>();
      for (auto& ch : c) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      p.channel_order = c;
    }
    if (j.contains("input_range")) p.input_range = parse_range(j.at("input_range"), source);
    if (j.contains("alpha")) p.alpha = lower(j.at("alpha").get<std::string>());
  } catch (const nlohmann::json::exception& e) {
    throw_input("{}: bad preprocessing field ({})", source, e.what());
  }
  if (p.resize_size == p.image_size) p.resize_size = 0;  // canonical form: 0 means "= image_size"
  validate(p, source);
  return p;
}

PreprocessParams load_preprocess(const std::string& json_path) {
  std::ifstream in(json_path);
  if (!in) throw_input("{}: cannot open preprocessing JSON", json_path);
  return preprocess_from_json(parse_json(in, json_path, "a preprocessing file"), json_path);
}

void validate(const PreprocessParams& p, const std::string& source) {
  if (p.image_size <= 0 || p.image_size > 8192) throw_input("{}: image_size {}: expected 1..8192", source, p.image_size);
  if (!known(kResizeNames, p.resize))
    throw_input("{}: resize '{}': expected shorter_side_center_crop or direct", source, p.resize);
  if (p.resize_size != 0 && p.resize_size < p.image_size)
    throw_input("{}: resize_size {}: expected 0 or >= image_size {}", source, p.resize_size, p.image_size);
  if (!known(kInterpNames, p.interpolation))
    throw_input("{}: interpolation '{}': expected one of bilinear_antialias, bicubic_antialias, lanczos_antialias, "
                "box_antialias, bilinear, bicubic, area, nearest",
                source, p.interpolation);
  if (p.mean.size() != 3 || p.std.size() != 3)
    throw_input("{}: mean has {} and std {} values, expected 3 each", source, p.mean.size(), p.std.size());
  for (double s : p.std)
    if (s == 0 || !std::isfinite(s)) throw_input("{}: std value {}: expected finite and non-zero", source, s);
  if (p.channel_order != "RGB" && p.channel_order != "BGR")
    throw_input("{}: channel_order '{}': expected RGB or BGR", source, p.channel_order);
  if (p.input_range.size() != 2 || !(p.input_range[0] < p.input_range[1]))
    throw_input("{}: input_range with {} values: expected [lo, hi] with lo < hi", source, p.input_range.size());
  if (p.alpha != "drop" && p.alpha != "white") throw_input("{}: alpha '{}': expected drop or white", source, p.alpha);
}

// ---------------------------------------------------------------------------------------------
// Decoding

std::string precheck_image(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return "missing file";
  if (!fs::is_regular_file(st)) return "not a regular file";
  auto size = fs::file_size(path, ec);
  if (ec) return "cannot stat file";
  if (size == 0) return "empty file (0 bytes)";
  std::ifstream in(path, std::ios::binary);
  if (!in) return "cannot open file (permissions?)";
  unsigned char head[2] = {0, 0};
  in.read(reinterpret_cast<char*>(head), 2);
  if (!cv::haveImageReader(path)) return "not an image format OpenCV can read";
  // libjpeg decodes a truncated JPEG into a grey-padded image with only a warning: catch it here.
  if (head[0] == 0xFF && head[1] == 0xD8) {
    const std::streamoff tail = std::min<std::streamoff>(static_cast<std::streamoff>(size), 256);
    std::string buf(static_cast<size_t>(tail), '\0');
    in.seekg(-tail, std::ios::end);
    in.read(buf.data(), tail);
    bool eoi = false;
    for (size_t i = 0; i + 1 < buf.size(); ++i)
      if (static_cast<unsigned char>(buf[i]) == 0xFF && static_cast<unsigned char>(buf[i + 1]) == 0xD9) eoi = true;
    if (!eoi) return "truncated JPEG (no end-of-image marker)";
  }
  return "";
}

DecodedImage convert_decoded(const cv::Mat& raw, const std::string& alpha) {
  DecodedImage d;
  if (raw.empty() || raw.cols <= 0 || raw.rows <= 0) {
    d.error = "cannot decode (corrupt or unsupported image data)";
    return d;
  }
  cv::Mat img8;
  std::vector<std::string> notes;
  switch (raw.depth()) {
    case CV_8U:
      img8 = raw;
      break;
    case CV_16U:
      // 65535 -> 255 exactly; value/257 rounded half away from zero by saturate_cast.
      raw.convertTo(img8, CV_8U, 1.0 / 257.0);
      notes.push_back("16-bit->8-bit");
      break;
    case CV_32F:
    case CV_64F: {
      cv::Mat clamped;
      raw.convertTo(clamped, CV_32F);
      clamped = cv::min(cv::max(clamped, 0.0), 1.0);
      clamped.convertTo(img8, CV_8U, 255.0);
      notes.push_back("float->8-bit");
      break;
    }
    default:
      d.error = fmt::format("unsupported pixel depth (OpenCV depth code {})", raw.depth());
      return d;
  }
  cv::Mat rgb;
  switch (img8.channels()) {
    case 1:
      cv::cvtColor(img8, rgb, cv::COLOR_GRAY2RGB);
      notes.push_back("grayscale->RGB");
      break;
    case 2:
    case 4: {
      std::vector<cv::Mat> ch;
      cv::split(img8, ch);
      cv::Mat a = ch.back();
      cv::Mat color;
      if (img8.channels() == 2) {
        cv::cvtColor(ch[0], color, cv::COLOR_GRAY2RGB);
        notes.push_back("grayscale->RGB");
      } else {
        cv::Mat bgr;
        cv::merge(std::vector<cv::Mat>{ch[0], ch[1], ch[2]}, bgr);
        cv::cvtColor(bgr, color, cv::COLOR_BGR2RGB);
      }
      if (alpha == "white") {
        // out = c*a/255 + 255*(1 - a/255), rounded.
        rgb.create(color.size(), CV_8UC3);
        for (int y = 0; y < color.rows; ++y) {
          const uint8_t* c = color.ptr<uint8_t>(y);
          const uint8_t* av = a.ptr<uint8_t>(y);
          uint8_t* o = rgb.ptr<uint8_t>(y);
          for (int x = 0; x < color.cols; ++x)
            for (int k = 0; k < 3; ++k)
              o[3 * x + k] = static_cast<uint8_t>((c[3 * x + k] * av[x] + 255 * (255 - av[x]) + 127) / 255);
        }
        notes.push_back("alpha composited on white");
      } else {
        rgb = color;
        notes.push_back("alpha dropped");
      }
      break;
    }
    case 3:
      cv::cvtColor(img8, rgb, cv::COLOR_BGR2RGB);
      break;
    default:
      d.error = fmt::format("unsupported channel count {}", img8.channels());
      return d;
  }
  d.rgb = rgb;
  for (size_t i = 0; i < notes.size(); ++i) d.note += (i ? ", " : "") + notes[i];
  return d;
}

DecodedImage decode_image(const std::string& path, const std::string& alpha) {
  DecodedImage d;
  d.error = precheck_image(path);
  if (!d.error.empty()) return d;
  cv::Mat raw;
  try {
    raw = cv::imread(path, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    d.error = std::string("cannot decode: ") + e.what();
    return d;
  }
  return convert_decoded(raw, alpha);
}

// ---------------------------------------------------------------------------------------------
// Pillow's resampling (libImaging/Resample.c), 8 bits per channel.

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

double filter_bilinear(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}
double filter_bicubic(double x) {
  const double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}
double sinc(double x) {
  if (x == 0.0) return 1.0;
  x = x * M_PI;
  return std::sin(x) / x;
}
double filter_lanczos(double x) { return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3) : 0.0; }
double filter_box(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }

struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;  // [out, 2]: xmin, count
  std::vector<int32_t> k;   // [out, ksize] fixed point
};

Coeffs precompute_coeffs(int in_size, double in0, double in1, int out_size, double (*filter)(double),
                         double support0) {
  double scale = (in1 - in0) / out_size;
  double filterscale = scale < 1.0 ? 1.0 : scale;
  double support = support0 * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(2 * static_cast<size_t>(out_size));
  c.k.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> w(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    double center = in0 + (xx + 0.5) * scale;
    double ww = 0.0, ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    int x = 0;
    for (; x < xmax; ++x) {
      w[x] = filter((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (x = 0; x < xmax; ++x)
      if (ww != 0.0) w[x] /= ww;
    for (; x < c.ksize; ++x) w[x] = 0;
    for (x = 0; x < c.ksize; ++x) {
      double v = w[x] * (1 << kPrecisionBits);
      c.k[static_cast<size_t>(xx) * c.ksize + x] = static_cast<int32_t>(v < 0 ? -0.5 + v : 0.5 + v);
    }
    c.bounds[2 * xx] = xmin;
    c.bounds[2 * xx + 1] = xmax;
  }
  return c;
}

inline uint8_t clip8(int64_t in) {
  if (in >= (int64_t{1} << kPrecisionBits << 8)) return 255;
  if (in <= 0) return 0;
  return static_cast<uint8_t>(in >> kPrecisionBits);
}

}  // namespace

cv::Mat pil_resize(const cv::Mat& src, int out_w, int out_h, const std::string& filter) {
  CL_ASSERT(src.depth() == CV_8U && !src.empty() && out_w > 0 && out_h > 0);
  double (*f)(double) = nullptr;
  double support = 0;
  if (filter == "bilinear") f = filter_bilinear, support = 1.0;
  else if (filter == "bicubic") f = filter_bicubic, support = 2.0;
  else if (filter == "lanczos") f = filter_lanczos, support = 3.0;
  else if (filter == "box") f = filter_box, support = 0.5;
  else CL_ASSERT(false, "unknown PIL filter " + filter);
  const int nch = src.channels();
  cv::Mat in = src.isContinuous() ? src : src.clone();
  const bool need_h = out_w != in.cols, need_v = out_h != in.rows;
  Coeffs ch = precompute_coeffs(in.cols, 0, in.cols, out_w, f, support);
  Coeffs cvv = precompute_coeffs(in.rows, 0, in.rows, out_h, f, support);
  int ybox_first = cvv.bounds[0];
  int ybox_last = cvv.bounds[2 * out_h - 2] + cvv.bounds[2 * out_h - 1];

  cv::Mat cur = in;
  if (need_h) {
    for (int i = 0; i < out_h; ++i) cvv.bounds[2 * i] -= ybox_first;
    cv::Mat tmp(ybox_last - ybox_first, out_w, CV_8UC(nch));
    for (int yy = 0; yy < tmp.rows; ++yy) {
      const uint8_t* row = in.ptr<uint8_t>(yy + ybox_first);
      uint8_t* o = tmp.ptr<uint8_t>(yy);
      for (int xx = 0; xx < out_w; ++xx) {
        const int xmin = ch.bounds[2 * xx], xmax = ch.bounds[2 * xx + 1];
        const int32_t* k = &ch.k[static_cast<size_t>(xx) * ch.ksize];
        for (int c = 0; c < nch; ++c) {
          int64_t ss = int64_t{1} << (kPrecisionBits - 1);
          for (int x = 0; x < xmax; ++x) ss += static_cast<int64_t>(row[(x + xmin) * nch + c]) * k[x];
          o[xx * nch + c] = clip8(ss);
        }
      }
    }
    cur = tmp;
  }
  if (need_v) {
    cv::Mat out(out_h, out_w, CV_8UC(nch));
    const int row_len = out_w * nch;
    for (int yy = 0; yy < out_h; ++yy) {
      const int ymin = cvv.bounds[2 * yy], ymax = cvv.bounds[2 * yy + 1];
      const int32_t* k = &cvv.k[static_cast<size_t>(yy) * cvv.ksize];
      uint8_t* o = out.ptr<uint8_t>(yy);
      for (int i = 0; i < row_len; ++i) {
        int64_t ss = int64_t{1} << (kPrecisionBits - 1);
        for (int y = 0; y < ymax; ++y) ss += static_cast<int64_t>(cur.ptr<uint8_t>(y + ymin)[i]) * k[y];
        o[i] = clip8(ss);
      }
    }
    cur = out;
  }
  return need_h || need_v ? cur : in.clone();
}

std::pair<int, int> resized_size(int w, int h, const PreprocessParams& p) {
  if (p.resize == "direct") return {p.image_size, p.image_size};
  const int s = p.resize_size > 0 ? p.resize_size : p.image_size;
  const int shorter = std::min(w, h), longer = std::max(w, h);
  // torchvision: new_long = int(new_short * long / short), computed in double.
  const int new_long = static_cast<int>(static_cast<double>(int64_t{s} * longer) / shorter);
  return w <= h ? std::pair<int, int>{s, new_long} : std::pair<int, int>{new_long, s};
}

cv::Mat resize_and_crop(const cv::Mat& rgb, const PreprocessParams& p) {
  CL_ASSERT(rgb.type() == CV_8UC3);
  auto [rw, rh] = resized_size(rgb.cols, rgb.rows, p);
  cv::Mat resized;
  if (rw == rgb.cols && rh == rgb.rows) {
    resized = rgb;
  } else if (p.interpolation.size() > 10 && p.interpolation.ends_with("_antialias")) {
    resized = pil_resize(rgb, rw, rh, p.interpolation.substr(0, p.interpolation.size() - 10));
  } else {
    int mode = p.interpolation == "bilinear" ? cv::INTER_LINEAR
               : p.interpolation == "bicubic" ? cv::INTER_CUBIC
               : p.interpolation == "area"    ? cv::INTER_AREA
                                              : cv::INTER_NEAREST;
    cv::resize(rgb, resized, cv::Size(rw, rh), 0, 0, mode);
  }
  const int S = p.image_size;
  if (resized.cols == S && resized.rows == S) return resized;
  CL_ASSERT(resized.cols >= S && resized.rows >= S);
  const auto [left, top] = center_crop_offset(resized.cols, resized.rows, S);
  return resized(cv::Rect(left, top, S, S)).clone();
}

std::pair<int, int> center_crop_offset(int w, int h, int S) {
  // torchvision CenterCrop: top = int(round((H - S) / 2.0)) with Python's round-half-even.
  return {static_cast<int>(std::nearbyint((w - S) / 2.0)), static_cast<int>(std::nearbyint((h - S) / 2.0))};
}

std::array<double, 4> crop_box(int w, int h, const PreprocessParams& p) {
  const auto [rw, rh] = resized_size(w, h, p);
  const int S = p.image_size;
  const auto [left, top] = center_crop_offset(rw, rh, S);
  const double sx = static_cast<double>(w) / rw, sy = static_cast<double>(h) / rh;
  return {left * sx, top * sy, (left + S) * sx, (top + S) * sy};
}

void to_chw(const cv::Mat& img, const PreprocessParams& p, float* out) {
  CL_ASSERT(img.type() == CV_8UC3 && img.cols == p.image_size && img.rows == p.image_size);
  const int S = p.image_size;
  const size_t plane = static_cast<size_t>(S) * S;
  const float lo = static_cast<float>(p.input_range[0]), span = static_cast<float>(p.input_range[1] - p.input_range[0]);
  const bool unit = p.input_range[0] == 0.0 && p.input_range[1] == 1.0;
  const bool bgr = p.channel_order == "BGR";
  // Lookup per channel: exactly (float(u8)/255 - mean) / std in float32, as torchvision does.
  float lut[3][256];
  for (int c = 0; c < 3; ++c) {
    const float m = static_cast<float>(p.mean[c]), s = static_cast<float>(p.std[c]);
    for (int v = 0; v < 256; ++v) {
      float x = static_cast<float>(v) / 255.0f;
      if (!unit) x = lo + x * span;
      lut[c][v] = (x - m) / s;
    }
  }
  for (int y = 0; y < S; ++y) {
    const uint8_t* row = img.ptr<uint8_t>(y);
    for (int x = 0; x < S; ++x) {
      const size_t o = static_cast<size_t>(y) * S + x;
      for (int c = 0; c < 3; ++c) {
        const int src_c = bgr ? 2 - c : c;  // mean/std follow the tensor channel order
        out[c * plane + o] = lut[c][row[3 * x + src_c]];
      }
    }
  }
}

std::string preprocess_file(const std::string& path, const PreprocessParams& p, float* out_chw, std::string* note,
                            std::pair<int, int>* size) {
  DecodedImage d = decode_image(path, p.alpha);
  if (!d.error.empty()) return d.error;
  if (note) *note = d.note;
  if (size) *size = {d.rgb.cols, d.rgb.rows};
  cv::Mat sq = resize_and_crop(d.rgb, p);
  to_chw(sq, p, out_chw);
  return "";
}

}  // namespace cl::embed
