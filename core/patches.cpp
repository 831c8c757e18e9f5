// Patch geometry and the patch-embeddings writer (schema in patches.h).
#include "core/patches.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/formats.h"

namespace cl {

Box patch_box(const PatchGeometry& g, int64_t image, int64_t patch) {
  CL_ASSERT(image >= 0 && image < g.n_images() && patch >= 0 && patch < g.patches(), "patch_box: out of range");
  const float* b = g.crop_box.data() + image * 4;
  const int64_t r = patch / g.grid_w, c = patch % g.grid_w;
  const double cw = (b[2] - b[0]) / static_cast<double>(g.grid_w), ch = (b[3] - b[1]) / static_cast<double>(g.grid_h);
  return {b[0] + c * cw, b[1] + r * ch, b[0] + (c + 1) * cw, b[1] + (r + 1) * ch};
}

std::string patch_row_id(const std::string& image_id, int64_t patch) { return image_id + "#" + std::to_string(patch); }

void validate(const PatchGeometry& g, const std::string& source) {
  if (g.grid_h < 1 || g.grid_w < 1) throw_input("{}: patch grid {} x {}, expected at least 1 x 1", source, g.grid_h, g.grid_w);
  const int64_t n = g.n_images();
  if (static_cast<int64_t>(g.image_size.size()) != 2 * n || static_cast<int64_t>(g.crop_box.size()) != 4 * n)
    throw_input("{}: patch geometry has {} image sizes and {} crop boxes for {} images", source, g.image_size.size() / 2,
                g.crop_box.size() / 4, n);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t w = g.image_size[i * 2], h = g.image_size[i * 2 + 1];
    const float* b = g.crop_box.data() + i * 4;
    const float tol = 1e-3f * static_cast<float>(std::max(w, h));
    if (w < 1 || h < 1 || !(b[0] >= -tol && b[1] >= -tol && b[0] < b[2] && b[1] < b[3] && b[2] <= w + tol && b[3] <= h + tol))
      throw_input("{}: image '{}' ({}): size {} x {}, crop box [{}, {}, {}, {}]; expected a box inside the image", source,
                  g.image_ids[i], i, w, h, b[0], b[1], b[2], b[3]);
  }
}

void write_patch_geometry(hid_t file, const PatchGeometry& g) {
  h5::Id grp = h5::create_group(file, "patches");
  h5::write_attr(grp, "grid_h", g.grid_h);
  h5::write_attr(grp, "grid_w", g.grid_w);
  const int64_t n = g.n_images();
  h5::write_strings(grp, "image_ids", g.image_ids);
  h5::write_dataset<int32_t>(grp, "image_size", g.image_size.data(), {n, 2});
  h5::write_dataset<float>(grp, "crop_box", g.crop_box.data(), {n, 4});
}

std::optional<PatchGeometry> read_patch_geometry(const h5::File& f) {
  if (!h5::exists(f.get(), "patches")) return std::nullopt;
  h5::Id grp = h5::open_group(f, "patches");
  PatchGeometry g;
  auto gh = h5::read_attr_int(grp, "grid_h"), gw = h5::read_attr_int(grp, "grid_w");
  if (!gh || !gw) throw_input("{}: group 'patches' lacks the attributes grid_h and grid_w", f.path);
  g.grid_h = *gh;
  g.grid_w = *gw;
  g.image_ids = h5::read_strings(f, grp, "image_ids");
  std::vector<int64_t> ds, db;
  g.image_size = h5::read_dataset<int32_t>(f, grp, "image_size", &ds);
  g.crop_box = h5::read_dataset<float>(f, grp, "crop_box", &db);
  const int64_t n = g.n_images();
  if (ds != std::vector<int64_t>{n, 2} || db != std::vector<int64_t>{n, 4})
    throw_input("{}: patches/image_size and patches/crop_box must be [{}, 2] and [{}, 4] (one per image id)", f.path, n, n);
  validate(g, f.path);
  return g;
}

std::optional<PatchGeometry> read_patch_geometry(const std::string& path) {
  h5::File f = h5::open_read(path);
  return read_patch_geometry(f);
}

void check_pool(const std::string& pool) {
  if (pool != "max" && pool != "mean" && pool != "sum") throw_usage("pool '{}': expected max, mean or sum", pool);
}

CsrMatrix pool_patches(const CsrMatrix& acts, int64_t per_image, const std::string& pool) {
  check_pool(pool);
  CL_ASSERT(per_image > 0 && acts.n_rows % per_image == 0, "pool_patches: rows are not whole images");
  const bool is_max = pool == "max", is_mean = pool == "mean";
  CsrMatrix out;
  out.n_cols = acts.n_cols;
  std::vector<float> acc(static_cast<size_t>(acts.n_cols), 0.0f);
  std::vector<int32_t> count(static_cast<size_t>(acts.n_cols), 0), touched;
  std::vector<float> vals;
  for (int64_t r0 = 0; r0 < acts.n_rows; r0 += per_image) {
    touched.clear();
    for (int64_t r = r0; r < r0 + per_image; ++r)
      for (const auto [col, v] : acts.row(r)) {
        if (count[col]++ == 0) {
          touched.push_back(col);
          acc[col] = v;
        } else {
          acc[col] = is_max ? std::max(acc[col], v) : acc[col] + v;
        }
      }
    std::sort(touched.begin(), touched.end());
    vals.clear();
    for (int32_t col : touched) {
      float v = acc[col];
      if (is_max && count[col] < per_image) v = std::max(v, 0.0f);  // a patch without the latent holds 0
      if (is_mean) v /= static_cast<float>(per_image);
      vals.push_back(v);
      count[col] = 0;
    }
    out.append_row_sorted(touched.data(), vals.data(), static_cast<int64_t>(touched.size()));
  }
  return out;
}

struct PatchEmbeddingsWriter::Impl {
  AtomicOutput out;
  h5::File file;
  int64_t dim = 0;
  PatchGeometry geometry;
  std::unique_ptr<h5::FloatAppender> emb;
  std::unordered_set<std::string> seen;
  Impl(const std::string& path, const std::vector<std::string>& inputs) : out(path, inputs) {}
};

PatchEmbeddingsWriter::PatchEmbeddingsWriter(const std::string& path, int64_t grid_h, int64_t grid_w, int64_t dim,
                                             bool half, const nlohmann::json& config,
                                             const std::vector<std::string>& inputs)
    : impl_(std::make_unique<Impl>(path, inputs)) {
  if (dim <= 0) throw_input("{}: embedding dim {}, expected > 0", path, dim);
  if (grid_h < 1 || grid_w < 1) throw_input("{}: patch grid {} x {}, expected at least 1 x 1", path, grid_h, grid_w);
  auto& m = *impl_;
  m.dim = dim;
  m.geometry.grid_h = grid_h;
  m.geometry.grid_w = grid_w;
  m.file = h5::create(m.out.temp_path());
  m.file.path = path;
  h5::write_header(m.file, kPatchEmbeddingsFormat, config.dump());
  m.emb = std::make_unique<h5::FloatAppender>(m.file.get(), "embeddings", std::vector<int64_t>{grid_h * grid_w, dim}, 1,
                                              half);
}

PatchEmbeddingsWriter::~PatchEmbeddingsWriter() = default;

void PatchEmbeddingsWriter::append(const float* x_npd, int64_t n, const std::vector<std::string>& ids,
                                   const int32_t* image_size, const float* crop_box) {
  auto& m = *impl_;
  const std::string& path = m.out.final_path();
  if (static_cast<int64_t>(ids.size()) != n) throw_input("{}: {} ids for {} images", path, ids.size(), n);
  const int64_t per_image = m.geometry.patches() * m.dim;
  for (int64_t i = 0; i < n * per_image; ++i)
    if (!std::isfinite(x_npd[i]))
      throw_input("{}: image '{}' has a non-finite patch value, expected finite values", path, ids[i / per_image]);
  for (const auto& id : ids)
    if (!m.seen.insert(id).second) throw_input("{}: duplicate id '{}'", path, id);
  m.emb->append(x_npd, n);
  auto& g = m.geometry;
  g.image_ids.insert(g.image_ids.end(), ids.begin(), ids.end());
  g.image_size.insert(g.image_size.end(), image_size, image_size + 2 * n);
  g.crop_box.insert(g.crop_box.end(), crop_box, crop_box + 4 * n);
}

int64_t PatchEmbeddingsWriter::images() const { return impl_->emb->rows(); }

void PatchEmbeddingsWriter::commit() {
  auto& m = *impl_;
  validate(m.geometry, m.out.final_path());
  h5::write_strings(m.file.get(), "ids", m.geometry.image_ids);
  write_patch_geometry(m.file.get(), m.geometry);
  m.file.path = m.out.final_path();
  h5::flush(m.file);
  m.emb.reset();
  m.file.id.reset();
  m.out.commit();
}

}  // namespace cl
