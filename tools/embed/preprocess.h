// Image preprocessing for frozen encoders: decoding with explicit colour/depth conversion,
// resizing (including a bit-exact port of PIL's antialiased resampling, which is what
// torchvision's Resize does on PIL images) and normalisation into a CHW float tensor.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

namespace cl::embed {

// How the encoder expects its input. Member initializers are the defaults (ImageNet-style
// torchvision pipeline: Resize(224) + CenterCrop(224), antialiased bilinear, ImageNet mean/std).
struct PreprocessParams {
  int image_size = 224;  // final square side fed to the model
  // "shorter_side_center_crop": shorter side -> resize_size (longer side int(resize_size*long/short)),
  // then center crop image_size (torchvision Resize(resize_size) + CenterCrop(image_size));
  // "direct": resize to image_size x image_size ignoring aspect ratio.
  std::string resize = "shorter_side_center_crop";
  int resize_size = 0;  // shorter-side target; 0 = image_size
  // "bilinear_antialias" | "bicubic_antialias" | "lanczos_antialias" | "box_antialias" (PIL-exact),
  // "bilinear" | "bicubic" | "area" | "nearest" (OpenCV, no antialias).
  std::string interpolation = "bilinear_antialias";
  std::vector<double> mean = {0.485, 0.456, 0.406};
  std::vector<double> std = {0.229, 0.224, 0.225};
  std::string channel_order = "RGB";              // order of the 3 tensor channels: RGB or BGR
  std::vector<double> input_range = {0.0, 1.0};   // uint8 0..255 maps linearly onto this, then mean/std
  std::string alpha = "drop";                     // "drop" (= PIL convert('RGB')) or "white" (composite)
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(PreprocessParams, image_size, resize, resize_size, interpolation,
                                                mean, std, channel_order, input_range, alpha)

// Parses a preprocessing JSON (ours, or the descriptive schema of encoder cards such as
// ../shared/derm7pt/encoder/*.json where resize/interpolation/input_range are prose like
// "shorter side to 224 then center crop 224", "bilinear (PIL, antialias)", "[0,1] before
// mean/std"). Unknown keys are ignored (cards carry provenance); bad values throw InputError
// naming source.
PreprocessParams preprocess_from_json(const nlohmann::json& j, const std::string& source);
PreprocessParams load_preprocess(const std::string& json_path);
// Checks values (sizes > 0, 3 means/stds, std != 0, known names); throws InputError naming source.
void validate(const PreprocessParams& p, const std::string& source);

// Decoded image: 8-bit, 3 channels, RGB order, or an error reason.
struct DecodedImage {
  cv::Mat rgb;         // CV_8UC3, RGB
  std::string error;   // non-empty when unusable ("missing file", "empty file (0 bytes)", ...)
  std::string note;    // conversions applied ("grayscale->RGB", "16-bit->8-bit", "alpha dropped")
};

// Cheap check without decoding pixels: exists, regular, non-empty, a format OpenCV can read.
// Returns "" when fine, else the reason.
std::string precheck_image(const std::string& path);

// cv::imread(IMREAD_UNCHANGED) then explicit conversion: gray -> 3 channels, 16-bit -> 8-bit
// (value/257 rounded), float -> clamp [0,1]*255, alpha dropped or composited on white. EXIF
// orientation is not applied (PIL's Image.open does not either). Never throws for bad files.
DecodedImage decode_image(const std::string& path, const std::string& alpha = "drop");
// Same conversions for an already-decoded OpenCV matrix in OpenCV channel order (BGR/BGRA/gray).
DecodedImage convert_decoded(const cv::Mat& raw, const std::string& alpha = "drop");

// PIL ImagingResample on an 8-bit image (any channel count): separable, horizontal pass then
// vertical pass, fixed-point coefficients with 22 fractional bits, uint8 intermediate.
// filter in {"bilinear", "bicubic", "lanczos", "box"}.
cv::Mat pil_resize(const cv::Mat& src_u8, int out_w, int out_h, const std::string& filter);

// Resize + crop (RGB uint8 in, RGB uint8 image_size x image_size out).
cv::Mat resize_and_crop(const cv::Mat& rgb_u8, const PreprocessParams& p);

// Normalise into out_chw ([3, S, S] float32, channel order per p): v = lo + u8/255*(hi-lo),
// then (v - mean) / std, evaluated in float32 like torchvision's ToTensor + Normalize.
void to_chw(const cv::Mat& rgb_u8_square, const PreprocessParams& p, float* out_chw);

// decode_image + resize_and_crop + to_chw; returns the error reason ("" on success). size: the
// decoded image's (width, height).
std::string preprocess_file(const std::string& path, const PreprocessParams& p, float* out_chw,
                            std::string* note = nullptr, std::pair<int, int>* size = nullptr);

// Output size (w, h) of the resize step before cropping, as torchvision computes it.
std::pair<int, int> resized_size(int w, int h, const PreprocessParams& p);
// (left, top) of torchvision's CenterCrop(S) on a w x h image.
std::pair<int, int> center_crop_offset(int w, int h, int S);
// The part of a w x h original image the model sees after resize_and_crop: x0, y0, x1, y1 in the
// original's pixels (the whole image for "direct").
std::array<double, 4> crop_box(int w, int h, const PreprocessParams& p);

}  // namespace cl::embed
