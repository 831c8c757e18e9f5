// Patch grids: one embedding per cell of an image's h x w grid (a CNN's feature map, a ViT's patch
// tokens) and where each cell lies in the original image, so a concept can be located.
//
// Format "conceptlab.patch_embeddings" (schema 1):
//   embeddings  float16 or float32 [N, P, D]; P = grid_h * grid_w in row-major grid order; one
//               image per HDF5 chunk, so an image's patches are one read
//   ids         strings [N], unique
//   patches/    the geometry group below
// The geometry group `patches/` (also in patch activation files, whose rows are (image, patch)):
//   attributes  grid_h, grid_w
//   image_ids   strings [N]
//   image_size  int32 [N, 2]: the original image's width and height in pixels
//   crop_box    float32 [N, 4]: x0, y0, x1, y1, the part of the original image the model saw
//               (after resizing and centre cropping), in original pixels; patch (r, c) covers the
//               box's cell (r, c) of a grid_h x grid_w division
// EmbeddingsReader reads a patch-embeddings file as N * P rows of dimension D (ids "ID#p"), so
// SAE training treats patches as rows.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/h5.h"
#include "core/sparse.h"

namespace cl {

struct PatchGeometry {
  int64_t grid_h = 0, grid_w = 0;
  std::vector<std::string> image_ids;  // [N]
  std::vector<int32_t> image_size;     // [N, 2]: width, height
  std::vector<float> crop_box;         // [N, 4]: x0, y0, x1, y1 in original pixels
  int64_t n_images() const { return static_cast<int64_t>(image_ids.size()); }
  int64_t patches() const { return grid_h * grid_w; }
};

// A rectangle in an original image's pixel coordinates.
struct Box {
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};
// Where patch p (row-major in the grid) of image i lies in that image.
Box patch_box(const PatchGeometry& g, int64_t image, int64_t patch);

// The row id of patch p of an image in patch files: "ID#p".
std::string patch_row_id(const std::string& image_id, int64_t patch);

// Checks shapes and values (grid > 0, N sizes and boxes, boxes inside their image with x0 < x1);
// InputError naming `source`.
void validate(const PatchGeometry& g, const std::string& source);
void write_patch_geometry(hid_t file, const PatchGeometry& g);
// The group of an open file: nullopt when it has none; InputError naming the file when malformed.
std::optional<PatchGeometry> read_patch_geometry(const h5::File& f);
// Same, from a path (any conceptlab file).
std::optional<PatchGeometry> read_patch_geometry(const std::string& path);

// How an image's activation pools its patches' (absent entries count as 0): "max", "mean", "sum".
void check_pool(const std::string& pool);  // UsageError naming the choices
// acts_pl: [n_images * per_image, L] patch rows, image by image -> [n_images, L].
CsrMatrix pool_patches(const CsrMatrix& acts_pl, int64_t per_image, const std::string& pool);

// Streaming writer of a patch-embeddings file; rows are whole images.
class PatchEmbeddingsWriter {
 public:
  // half: store float16 (half the size; values are rounded to 11 significant bits).
  PatchEmbeddingsWriter(const std::string& path, int64_t grid_h, int64_t grid_w, int64_t dim, bool half,
                        const nlohmann::json& config, const std::vector<std::string>& inputs = {});
  ~PatchEmbeddingsWriter();
  // x_npd: [n, P, D]; image_size [n, 2]; crop_box [n, 4] (see PatchGeometry).
  void append(const float* x_npd, int64_t n, const std::vector<std::string>& ids, const int32_t* image_size,
              const float* crop_box);
  int64_t images() const;
  void commit();  // writes ids and geometry, closes and renames into place

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cl
