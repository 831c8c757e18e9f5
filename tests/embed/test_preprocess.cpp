// Preprocessing: exact pixel values after decode, resize, crop and normalise on tiny synthetic
// images, with the expected values derived by hand (not by re-running the implementation).
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <opencv2/imgcodecs.hpp>

#include "core/error.h"
#include "tests/test_util.h"
#include "tools/embed/preprocess.h"

using namespace cl::embed;
using cl::test::TempDir;

namespace {

cv::Mat gray_row(std::vector<uint8_t> v, int rows = 1) {
  cv::Mat m(rows, static_cast<int>(v.size()), CV_8UC1);
  for (int y = 0; y < rows; ++y)
    for (int x = 0; x < m.cols; ++x) m.at<uint8_t>(y, x) = v[x];
  return m;
}

int round_half_up(double v) { return static_cast<int>(std::floor(v + 0.5)); }

}  // namespace

TEST_CASE("pil_resize bilinear 4->2 uses the antialiased triangle weights 3/7 3/7 1/7") {
  // Downscale x2: the triangle filter is stretched to support 2; output 0 centred at 1.0 sees
  // inputs 0,1,2 with weights tri(.25)=.75, .75, .25 -> 3/7, 3/7, 1/7 after normalisation.
  const std::vector<uint8_t> v = {10, 200, 60, 90};
  cv::Mat out = pil_resize(gray_row(v), 2, 1, "bilinear");
  REQUIRE(out.cols == 2);
  CHECK(out.at<uint8_t>(0, 0) == round_half_up((3.0 * 10 + 3.0 * 200 + 60) / 7));
  CHECK(out.at<uint8_t>(0, 1) == round_half_up((200.0 + 3.0 * 60 + 3.0 * 90) / 7));

  // 2-D: horizontal pass (rounded to uint8) then vertical pass, same weights.
  cv::Mat img(4, 4, CV_8UC1);
  const uint8_t vals[4][4] = {{10, 200, 60, 90}, {0, 255, 255, 0}, {30, 30, 30, 30}, {100, 50, 150, 250}};
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) img.at<uint8_t>(y, x) = vals[y][x];
  cv::Mat out2 = pil_resize(img, 2, 2, "bilinear");
  int h[4][2];
  for (int y = 0; y < 4; ++y) {
    h[y][0] = round_half_up((3.0 * vals[y][0] + 3.0 * vals[y][1] + vals[y][2]) / 7);
    h[y][1] = round_half_up((1.0 * vals[y][1] + 3.0 * vals[y][2] + 3.0 * vals[y][3]) / 7);
  }
  for (int x = 0; x < 2; ++x) {
    CHECK(out2.at<uint8_t>(0, x) == round_half_up((3.0 * h[0][x] + 3.0 * h[1][x] + h[2][x]) / 7));
    CHECK(out2.at<uint8_t>(1, x) == round_half_up((1.0 * h[1][x] + 3.0 * h[2][x] + 3.0 * h[3][x]) / 7));
  }
}

TEST_CASE("pil_resize bilinear upscale 2->4 interpolates at pixel centres and clamps edges") {
  cv::Mat out = pil_resize(gray_row({40, 200}), 4, 1, "bilinear");
  CHECK(out.at<uint8_t>(0, 0) == 40);
  CHECK(out.at<uint8_t>(0, 1) == 80);   // .75*40 + .25*200
  CHECK(out.at<uint8_t>(0, 2) == 160);  // .25*40 + .75*200
  CHECK(out.at<uint8_t>(0, 3) == 200);
}

TEST_CASE("pil_resize keeps constant images constant for every filter and channel count") {
  for (const char* f : {"bilinear", "bicubic", "lanczos", "box"}) {
    cv::Mat img(7, 5, CV_8UC3, cv::Scalar(100, 17, 250));
    for (auto [w, h] : {std::pair{3, 2}, std::pair{11, 13}, std::pair{5, 3}}) {
      cv::Mat out = pil_resize(img, w, h, f);
      REQUIRE(out.cols == w);
      REQUIRE(out.rows == h);
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) CHECK(out.at<cv::Vec3b>(y, x) == cv::Vec3b(100, 17, 250));
    }
  }
}

TEST_CASE("pil_resize bicubic 4->2 matches the a=-0.5 kernel stretched by 2") {
  // Output 0 centred at 1.0, support 4 -> inputs 0..3 at distances .5,.5,1.5,2.5 (scaled by 1/2:
  // .25, .25, .75, 1.25). Keys cubic a=-0.5: w(.25)=0.8671875, w(.75)=0.2265625, w(1.25)=-0.0703125.
  const double w0 = 0.8671875, w1 = 0.2265625, w2 = -0.0703125;
  const std::vector<uint8_t> v = {20, 180, 90, 40};
  cv::Mat out = pil_resize(gray_row(v), 2, 1, "bicubic");
  const double sum = 2 * w0 + w1 + w2;
  const double e0 = (w0 * v[0] + w0 * v[1] + w1 * v[2] + w2 * v[3]) / sum;
  const double e1 = (w2 * v[0] + w1 * v[1] + w0 * v[2] + w0 * v[3]) / sum;
  CHECK(out.at<uint8_t>(0, 0) == round_half_up(e0));
  CHECK(out.at<uint8_t>(0, 1) == round_half_up(e1));
}

TEST_CASE("resized_size and center crop follow torchvision Resize(int) + CenterCrop") {
  PreprocessParams p;
  p.image_size = 224;
  CHECK(resized_size(300, 200, p) == std::pair{336, 224});
  CHECK(resized_size(200, 333, p) == std::pair{224, 372});  // int(224*333/200) = int(372.96)
  CHECK(resized_size(384, 384, p) == std::pair{224, 224});
  p.resize_size = 256;
  CHECK(resized_size(512, 384, p) == std::pair{341, 256});
  p.resize = "direct";
  CHECK(resized_size(512, 384, p) == std::pair{224, 224});

  // No resize needed (shorter side already = size): pure crop. left = round((W-4)/2) with
  // Python's half-to-even: W=5 -> round(0.5)=0, W=7 -> round(1.5)=2, W=6 -> 1.
  PreprocessParams q;
  q.image_size = 4;
  for (auto [w, left] : {std::pair{5, 0}, std::pair{7, 2}, std::pair{6, 1}}) {
    cv::Mat img(4, w, CV_8UC3);
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < w; ++x) img.at<cv::Vec3b>(y, x) = cv::Vec3b(x, y, 7);
    cv::Mat out = resize_and_crop(img, q);
    REQUIRE(out.cols == 4);
    REQUIRE(out.rows == 4);
    CHECK(out.at<cv::Vec3b>(0, 0)[0] == left);
    CHECK(out.at<cv::Vec3b>(3, 3) == cv::Vec3b(left + 3, 3, 7));
  }
}

TEST_CASE("to_chw normalises like ToTensor + Normalize in float32 for RGB and BGR") {
  PreprocessParams p;
  p.image_size = 2;
  cv::Mat img(2, 2, CV_8UC3, cv::Scalar(0, 0, 0));
  img.at<cv::Vec3b>(0, 1) = cv::Vec3b(255, 0, 128);  // stored RGB
  std::vector<float> out(3 * 4);
  to_chw(img, p, out.data());
  const float m[3] = {0.485f, 0.456f, 0.406f}, s[3] = {0.229f, 0.224f, 0.225f};
  CHECK(out[0 * 4 + 1] == (1.0f - m[0]) / s[0]);
  CHECK(out[1 * 4 + 1] == (0.0f - m[1]) / s[1]);
  CHECK(out[2 * 4 + 1] == (128.0f / 255.0f - m[2]) / s[2]);
  CHECK(out[0] == (0.0f - m[0]) / s[0]);

  p.channel_order = "BGR";
  p.mean = {0, 0, 0};
  p.std = {1, 1, 1};
  p.input_range = {0, 255};
  to_chw(img, p, out.data());
  CHECK(out[0 * 4 + 1] == doctest::Approx(128.0));  // B first
  CHECK(out[1 * 4 + 1] == doctest::Approx(0.0));
  CHECK(out[2 * 4 + 1] == doctest::Approx(255.0));

  p.input_range = {-1, 1};
  to_chw(img, p, out.data());
  CHECK(out[2 * 4 + 1] == doctest::Approx(1.0));
  CHECK(out[0] == doctest::Approx(-1.0));
}

TEST_CASE("decode converts grayscale and 16-bit and alpha explicitly and keeps RGB order") {
  TempDir tmp;
  {
    cv::Mat bgr(3, 2, CV_8UC3, cv::Scalar(10, 20, 30));  // B=10 G=20 R=30
    REQUIRE(cv::imwrite(tmp.file("c.png"), bgr));
    auto d = decode_image(tmp.file("c.png"));
    REQUIRE(d.error.empty());
    CHECK(d.rgb.type() == CV_8UC3);
    CHECK(d.rgb.at<cv::Vec3b>(1, 1) == cv::Vec3b(30, 20, 10));
    CHECK(d.note.empty());
  }
  {
    cv::Mat g(2, 2, CV_8UC1, cv::Scalar(77));
    REQUIRE(cv::imwrite(tmp.file("g.png"), g));
    auto d = decode_image(tmp.file("g.png"));
    REQUIRE(d.error.empty());
    CHECK(d.rgb.at<cv::Vec3b>(0, 0) == cv::Vec3b(77, 77, 77));
    CHECK(d.note.find("grayscale") != std::string::npos);
  }
  {
    cv::Mat g16(1, 4, CV_16UC1);
    g16.at<uint16_t>(0, 0) = 65535;
    g16.at<uint16_t>(0, 1) = 257 * 100;
    g16.at<uint16_t>(0, 2) = 300;  // 1.17 -> 1
    g16.at<uint16_t>(0, 3) = 257 * 7 + 129;  // 7.502 -> 8
    REQUIRE(cv::imwrite(tmp.file("g16.png"), g16));
    auto d = decode_image(tmp.file("g16.png"));
    REQUIRE(d.error.empty());
    CHECK(d.rgb.at<cv::Vec3b>(0, 0) == cv::Vec3b(255, 255, 255));
    CHECK(d.rgb.at<cv::Vec3b>(0, 1) == cv::Vec3b(100, 100, 100));
    CHECK(d.rgb.at<cv::Vec3b>(0, 2)[0] == 1);
    CHECK(d.rgb.at<cv::Vec3b>(0, 3)[0] == 8);
    CHECK(d.note.find("16-bit") != std::string::npos);
  }
  {
    cv::Mat c16(1, 1, CV_16UC3, cv::Scalar(0, 257 * 50, 65535));  // BGR
    REQUIRE(cv::imwrite(tmp.file("c16.png"), c16));
    auto d = decode_image(tmp.file("c16.png"));
    REQUIRE(d.error.empty());
    CHECK(d.rgb.at<cv::Vec3b>(0, 0) == cv::Vec3b(255, 50, 0));
  }
  {
    cv::Mat bgra(1, 2, CV_8UC4);
    bgra.at<cv::Vec4b>(0, 0) = cv::Vec4b(0, 100, 200, 0);    // transparent
    bgra.at<cv::Vec4b>(0, 1) = cv::Vec4b(0, 100, 200, 102);  // 40% opaque
    REQUIRE(cv::imwrite(tmp.file("a.png"), bgra));
    auto dropped = decode_image(tmp.file("a.png"), "drop");
    REQUIRE(dropped.error.empty());
    CHECK(dropped.rgb.at<cv::Vec3b>(0, 0) == cv::Vec3b(200, 100, 0));
    CHECK(dropped.note.find("alpha dropped") != std::string::npos);
    auto white = decode_image(tmp.file("a.png"), "white");
    CHECK(white.rgb.at<cv::Vec3b>(0, 0) == cv::Vec3b(255, 255, 255));
    // c*a/255 + 255*(1-a/255): R = 200*.4 + 153 = 233, G = 40 + 153 = 193, B = 153.
    CHECK(white.rgb.at<cv::Vec3b>(0, 1) == cv::Vec3b(233, 193, 153));
  }
}

TEST_CASE("bad image files get a reason instead of an exception") {
  TempDir tmp;
  CHECK(decode_image(tmp.file("nope.jpg")).error == "missing file");
  cl::test::write_text(tmp.file("empty.png"), "");
  CHECK(decode_image(tmp.file("empty.png")).error == "empty file (0 bytes)");
  cl::test::write_text(tmp.file("text.jpg"), "this is not an image at all");
  CHECK(decode_image(tmp.file("text.jpg")).error.find("not an image") != std::string::npos);
  std::filesystem::create_directory(tmp.file("dir.png"));
  CHECK(decode_image(tmp.file("dir.png")).error == "not a regular file");

  cv::Mat img(64, 64, CV_8UC3, cv::Scalar(1, 2, 3));
  cv::randu(img, 0, 255);
  std::vector<uchar> jpg, png;
  cv::imencode(".jpg", img, jpg);
  cv::imencode(".png", img, png);
  jpg.resize(jpg.size() / 2);
  cl::test::write_bytes(tmp.file("trunc.jpg"), jpg);
  CHECK(decode_image(tmp.file("trunc.jpg")).error.find("truncated JPEG") != std::string::npos);
  png.resize(png.size() / 2);
  cl::test::write_bytes(tmp.file("trunc.png"), png);
  CHECK(!decode_image(tmp.file("trunc.png")).error.empty());
  // A valid file decodes.
  REQUIRE(cv::imwrite(tmp.file("ok.jpg"), img));
  CHECK(decode_image(tmp.file("ok.jpg")).error.empty());
  std::vector<float> buf(3 * 16 * 16);
  PreprocessParams p;
  p.image_size = 16;
  CHECK(preprocess_file(tmp.file("ok.jpg"), p, buf.data()).empty());
  CHECK(preprocess_file(tmp.file("trunc.jpg"), p, buf.data()) != "");
}

TEST_CASE("preprocessing JSON: our schema and the descriptive encoder-card schema and errors") {
  // The card format of ../shared/derm7pt/encoder/*.json (prose values).
  auto card = nlohmann::json::parse(R"J({
    "image_size": 224,
    "resize": "shorter side to 224 then center crop 224",
    "interpolation": "bilinear (PIL, antialias)",
    "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
    "channel_order": "RGB",
    "input_range": "[0,1] before mean/std (uint8/255), i.e. [-1,1] after",
    "input_layout": "NCHW float32, shape [N,3,224,224]",
    "model": "anything"})J");
  auto p = preprocess_from_json(card, "card.json");
  CHECK(p.image_size == 224);
  CHECK(p.resize == "shorter_side_center_crop");
  CHECK(p.resize_size == 0);
  CHECK(p.interpolation == "bilinear_antialias");
  CHECK(p.mean == std::vector<double>{0.5, 0.5, 0.5});
  CHECK(p.input_range == std::vector<double>{0, 1});

  auto dino = preprocess_from_json(nlohmann::json::parse(R"J({"image_size": 224, "resize": "shorter side to 256 then center crop 224", "interpolation": "bicubic"})J"), "d");
  CHECK(dino.resize_size == 256);
  CHECK(dino.interpolation == "bicubic");
  CHECK(preprocess_from_json(nlohmann::json::parse(R"J({"interpolation": "BICUBIC (PIL)"})J"), "x").interpolation ==
        "bicubic_antialias");

  // Round trip of our own schema.
  PreprocessParams q;
  q.image_size = 336;
  q.resize = "direct";
  q.channel_order = "BGR";
  nlohmann::json j = q;
  CHECK(nlohmann::json(preprocess_from_json(j, "q")) == j);

  CHECK_THROWS_WITH_AS(preprocess_from_json(nlohmann::json::parse(R"J({"mean": [0.5, 0.5]})J"), "m.json"),
                       doctest::Contains("m.json"), cl::InputError);
  CHECK_THROWS_AS(preprocess_from_json(nlohmann::json::parse(R"J({"std": [1, 0, 1]})J"), "s"), cl::InputError);
  CHECK_THROWS_AS(preprocess_from_json(nlohmann::json::parse(R"J({"interpolation": "magic"})J"), "i"), cl::InputError);
  CHECK_THROWS_AS(preprocess_from_json(nlohmann::json::parse(R"J({"channel_order": "RGBA"})J"), "c"), cl::InputError);
  CHECK_THROWS_AS(preprocess_from_json(nlohmann::json::parse(R"J({"image_size": 224, "resize_size": 200})J"), "r"),
                  cl::InputError);
}
