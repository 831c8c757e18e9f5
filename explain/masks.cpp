// Concept masks (see masks.h): the HDF5 masks file (uint8 [N, H, W] per concept, one deflated chunk
// per image) and the PNG folder form.
#include "explain/masks.h"

#include <algorithm>
#include <filesystem>
#include <unordered_map>
#include <unordered_set>

#include <fmt/ranges.h>
#include <opencv2/imgcodecs.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/h5.h"

namespace fs = std::filesystem;

namespace cl::explain {

struct MaskSource::Impl {
  std::string path;
  bool folder = false;
  h5::File file;  // file form
  std::unordered_map<std::string, int64_t> row_of;
  std::vector<std::string> concepts;
  int64_t height = 0, width = 0;
};

MaskSource::MaskSource(const std::string& path) : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.path = path;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    m.folder = true;
    for (const auto& e : fs::directory_iterator(path, ec))
      if (e.is_directory()) m.concepts.push_back(e.path().filename().string());
    std::sort(m.concepts.begin(), m.concepts.end());
    if (m.concepts.empty()) throw_input("{}: no concept folders (expected DIR/<concept>/<image>.png)", path);
    return;
  }
  if (!fs::exists(path)) throw_input("{}: masks not found (expected a masks .h5 or a folder of concept folders)", path);
  m.file = h5::open_read(path);
  h5::check_header(m.file, kMasksFormat);
  const auto ids = h5::read_strings(m.file, m.file.get(), "ids");
  for (size_t i = 0; i < ids.size(); ++i)
    if (!m.row_of.emplace(ids[i], static_cast<int64_t>(i)).second) throw_input("{}: duplicate id '{}'", path, ids[i]);
  h5::Id g = h5::open_group(m.file, "masks");
  m.concepts = h5::list_children(g);
  for (const auto& c : m.concepts) {
    const auto dims = h5::dataset_dims(m.file, g, c);
    if (dims.size() != 3 || dims[0] != static_cast<int64_t>(ids.size()))
      throw_input("{}: masks/{} must be [{}, H, W] (one mask per id)", path, c, ids.size());
    if (h5::dataset_type_name(m.file, g, c) != "uint8") throw_input("{}: masks/{} must be uint8", path, c);
    m.height = dims[1];
    m.width = dims[2];
  }
}

MaskSource::~MaskSource() = default;
MaskSource::MaskSource(MaskSource&&) noexcept = default;
MaskSource& MaskSource::operator=(MaskSource&&) noexcept = default;
const std::string& MaskSource::path() const { return impl_->path; }
std::vector<std::string> MaskSource::concepts() const { return impl_->concepts; }

cv::Mat MaskSource::mask(const std::string& concept_name, const std::string& id, int width, int height) const {
  const auto& m = *impl_;
  if (std::find(m.concepts.begin(), m.concepts.end(), concept_name) == m.concepts.end())
    throw_input("{}: no masks for concept '{}' (it has: {})", m.path, concept_name, fmt::join(m.concepts, ", "));
  cv::Mat out;
  if (m.folder) {
    const fs::path file = fs::path(m.path) / concept_name / fs::path(id).replace_extension(".png");
    if (!fs::exists(file)) return {};
    out = cv::imread(file.string(), cv::IMREAD_GRAYSCALE);
    if (out.empty()) throw_input("{}: not a readable image", file.string());
    if (out.cols != width || out.rows != height)
      throw_input("{}: mask {} x {}, the image '{}' is {} x {}", file.string(), out.cols, out.rows, id, width, height);
  } else {
    const auto it = m.row_of.find(id);
    if (it == m.row_of.end()) throw_input("{}: no masks for image '{}'", m.path, id);
    if (m.width != width || m.height != height)
      throw_input("{}: masks {} x {}, the image '{}' is {} x {}", m.path, m.width, m.height, id, width, height);
    out = cv::Mat(height, width, CV_8U);
    h5::Id g = h5::open_group(m.file, "masks");
    h5::Id d(H5Dopen2(g, concept_name.c_str(), H5P_DEFAULT));
    h5::Id space(H5Dget_space(d));
    const hsize_t off[3] = {static_cast<hsize_t>(it->second), 0, 0};
    const hsize_t cnt[3] = {1, static_cast<hsize_t>(height), static_cast<hsize_t>(width)};
    H5Sselect_hyperslab(space, H5S_SELECT_SET, off, nullptr, cnt, nullptr);
    h5::Id mem(H5Screate_simple(3, cnt, nullptr));
    if (!d.valid() || H5Dread(d, H5T_NATIVE_UINT8, mem, space, H5P_DEFAULT, out.data) < 0)
      throw_input("{}: cannot read masks/{} of '{}' (truncated or corrupt file)", m.path, concept_name, id);
  }
  return cv::countNonZero(out) > 0 ? out : cv::Mat();
}

struct MasksWriter::Impl {
  AtomicOutput out;
  h5::File file;
  std::vector<std::string> concepts, ids;
  std::unordered_set<std::string> seen;
  std::vector<h5::Id> datasets;
  int height = 0, width = 0;
  Impl(const std::string& path, const std::vector<std::string>& inputs) : out(path, inputs) {}
};

MasksWriter::MasksWriter(const std::string& path, const std::vector<std::string>& concepts, int height, int width,
                         const nlohmann::json& config, const std::vector<std::string>& inputs)
    : impl_(std::make_unique<Impl>(path, inputs)) {
  auto& m = *impl_;
  if (height < 1 || width < 1) throw_input("{}: mask size {} x {}, expected at least 1 x 1", path, width, height);
  m.concepts = concepts;
  m.height = height;
  m.width = width;
  m.file = h5::create(m.out.temp_path());
  m.file.path = path;
  h5::write_header(m.file, kMasksFormat, config.dump());
  h5::Id g = h5::create_group(m.file.get(), "masks");
  h5::write_attr(g, "height", int64_t{height});
  h5::write_attr(g, "width", int64_t{width});
  for (const auto& c : concepts) {
    const hsize_t dims[3] = {0, static_cast<hsize_t>(height), static_cast<hsize_t>(width)};
    const hsize_t maxd[3] = {H5S_UNLIMITED, static_cast<hsize_t>(height), static_cast<hsize_t>(width)};
    const hsize_t chunk[3] = {1, static_cast<hsize_t>(height), static_cast<hsize_t>(width)};
    h5::Id space(H5Screate_simple(3, dims, maxd));
    h5::Id dcpl(H5Pcreate(H5P_DATASET_CREATE));
    H5Pset_chunk(dcpl, 3, chunk);
    H5Pset_deflate(dcpl, 4);
    // Absent masks are never written: their chunks read as this fill value and take no space.
    const uint8_t zero = 0;
    H5Pset_fill_value(dcpl, H5T_NATIVE_UINT8, &zero);
    h5::Id d(H5Dcreate2(g, c.c_str(), H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    if (!d.valid()) throw_input("{}: cannot create dataset masks/{}", path, c);
    m.datasets.push_back(std::move(d));
  }
}

MasksWriter::~MasksWriter() = default;

void MasksWriter::append(const std::string& id, const std::vector<cv::Mat>& masks) {
  auto& m = *impl_;
  CL_ASSERT(masks.size() == m.concepts.size(), "MasksWriter::append: one mask per concept");
  if (!m.seen.insert(id).second) throw_input("{}: duplicate id '{}'", m.out.final_path(), id);
  const auto n = static_cast<hsize_t>(m.ids.size());
  for (size_t c = 0; c < masks.size(); ++c) {
    const cv::Mat& mk = masks[c];
    const hsize_t new_dims[3] = {n + 1, static_cast<hsize_t>(m.height), static_cast<hsize_t>(m.width)};
    if (H5Dset_extent(m.datasets[c], new_dims) < 0) throw_input("{}: cannot extend masks", m.out.final_path());
    if (mk.empty()) continue;
    CL_ASSERT(mk.type() == CV_8U && mk.rows == m.height && mk.cols == m.width && mk.isContinuous(),
              "MasksWriter::append: masks must be continuous CV_8U of the file's size");
    h5::Id space(H5Dget_space(m.datasets[c]));
    const hsize_t off[3] = {n, 0, 0};
    const hsize_t cnt[3] = {1, static_cast<hsize_t>(m.height), static_cast<hsize_t>(m.width)};
    H5Sselect_hyperslab(space, H5S_SELECT_SET, off, nullptr, cnt, nullptr);
    h5::Id mem(H5Screate_simple(3, cnt, nullptr));
    if (H5Dwrite(m.datasets[c], H5T_NATIVE_UINT8, mem, space, H5P_DEFAULT, mk.data) < 0)
      throw_input("{}: cannot write masks (disk full?)", m.out.final_path());
  }
  m.ids.push_back(id);
}

void MasksWriter::commit() {
  auto& m = *impl_;
  h5::write_strings(m.file.get(), "ids", m.ids);
  h5::flush(m.file);
  m.datasets.clear();
  m.file.id.reset();
  m.out.commit();
}

}  // namespace cl::explain
