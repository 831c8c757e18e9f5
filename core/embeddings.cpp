// Embeddings file I/O (schema in embeddings.h). Rows are appended in ~1 MiB HDF5 chunks so a
// reader can stream row ranges of files larger than memory.
#include "core/embeddings.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <unordered_set>

#include <fmt/ranges.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/manifest.h"
#include "core/patches.h"

namespace cl {
namespace {

int64_t chunk_rows_for(int64_t dim) { return std::max<int64_t>(1, (1 << 20) / std::max<int64_t>(1, dim * 4)); }

void check_finite_rows(const float* x, int64_t n, int64_t dim, int64_t row0, const std::vector<std::string>* ids,
                       const std::string& path) {
  for (int64_t i = 0; i < n; ++i) {
    const float* r = x + i * dim;
    for (int64_t j = 0; j < dim; ++j) {
      if (!std::isfinite(r[j])) {
        int64_t row = row0 + i;
        std::string id = ids && row < static_cast<int64_t>(ids->size()) ? (*ids)[static_cast<size_t>(row)] : "?";
        throw_input("{}: row {} (id '{}') has {} at dim {}, expected finite values", path, row, id,
                    std::isnan(r[j]) ? "NaN" : "Inf", j);
      }
    }
  }
}

std::vector<Column> read_columns(const h5::File& f, int64_t n) {
  std::vector<Column> cols;
  if (!h5::exists(f.get(), "columns")) return cols;
  h5::Id g = h5::open_group(f, "columns");
  for (const auto& name : h5::list_children(g)) {
    Column c;
    c.name = name;
    std::string t = h5::dataset_type_name(f, g, name);
    if (t == "string") {
      c.strings = h5::read_strings(f, g, name);
    } else if (t == "float32" || t == "float64") {
      c.numeric = true;
      c.numbers = h5::read_dataset<double>(f, g, name);
    } else {
      c.numeric = true;
      auto iv = h5::read_dataset<int64_t>(f, g, name);
      c.numbers.assign(iv.begin(), iv.end());
    }
    if (static_cast<int64_t>(c.size()) != n)
      throw_input("{}: column '{}' has {} rows, expected {}", f.path, name, c.size(), n);
    cols.push_back(std::move(c));
  }
  return cols;
}

void write_columns(hid_t file, const std::vector<Column>& cols) {
  if (cols.empty()) return;
  h5::Id g = h5::create_group(file, "columns");
  for (const auto& c : cols) {
    if (c.numeric)
      h5::write_dataset<double>(g, c.name, c.numbers.data(), {static_cast<int64_t>(c.numbers.size())});
    else
      h5::write_strings(g, c.name, c.strings);
  }
}

}  // namespace

void write_embeddings(const std::string& path, const Embeddings& e, const std::vector<std::string>& inputs) {
  if (static_cast<int64_t>(e.ids.size()) != e.n)
    throw_input("{}: {} ids for {} embedding rows", path, e.ids.size(), e.n);
  if (static_cast<int64_t>(e.data.size()) != e.n * e.dim)
    throw_input("{}: data has {} values, expected {} x {}", path, e.data.size(), e.n, e.dim);
  EmbeddingsWriter w(path, e.dim, e.config, inputs);
  w.append(e.data.data(), e.n, e.ids);
  for (const auto& c : e.columns) w.add_column(c);
  w.commit();
}

Embeddings read_embeddings(const std::string& path, bool check_finite) {
  EmbeddingsReader r(path);
  Embeddings e;
  e.n = r.rows();
  e.dim = r.dim();
  e.ids = r.ids();
  e.config = r.config();
  e.columns = r.columns();
  e.data.resize(static_cast<size_t>(e.n * e.dim));
  int64_t step = std::max<int64_t>(1, (64 << 20) / std::max<int64_t>(1, e.dim * 4));
  for (int64_t s = 0; s < e.n; s += step)
    r.read_rows(s, std::min(step, e.n - s), e.data.data() + s * e.dim, check_finite);
  return e;
}

// ---- writer ----

struct EmbeddingsWriter::Impl {
  AtomicOutput out;
  h5::File file;
  int64_t dim;
  std::unique_ptr<h5::Appender<float>> emb;
  std::vector<std::string> ids;  // written at commit (fixed-length strings need the widest first)
  std::unordered_set<std::string> seen;
  std::vector<Column> columns;
  Impl(const std::string& path, const std::vector<std::string>& inputs) : out(path, inputs) {}
};

EmbeddingsWriter::EmbeddingsWriter(const std::string& path, int64_t dim, const nlohmann::json& config,
                                   const std::vector<std::string>& inputs)
    : impl_(std::make_unique<Impl>(path, inputs)) {
  if (dim <= 0) throw_input("{}: embedding dim {}, expected > 0", path, dim);
  impl_->dim = dim;
  impl_->file = h5::create(impl_->out.temp_path());
  impl_->file.path = path;
  h5::write_header(impl_->file, kEmbeddingsFormat, config.dump());
  impl_->emb = std::make_unique<h5::Appender<float>>(impl_->file.get(), "embeddings", dim, chunk_rows_for(dim), false);
}

EmbeddingsWriter::~EmbeddingsWriter() = default;

void EmbeddingsWriter::append(const float* rows_nd, int64_t n, const std::vector<std::string>& ids) {
  const std::string& path = impl_->out.final_path();
  if (static_cast<int64_t>(ids.size()) != n) throw_input("{}: {} ids for {} rows", path, ids.size(), n);
  check_finite_rows(rows_nd, n, impl_->dim, impl_->emb->rows(), nullptr, path);
  for (int64_t i = 0; i < n; ++i) {
    const auto& id = ids[static_cast<size_t>(i)];
    if (!impl_->seen.insert(id).second) throw_input("{}: duplicate id '{}'", path, id);
  }
  impl_->emb->append(rows_nd, n);
  impl_->ids.insert(impl_->ids.end(), ids.begin(), ids.end());
}

void EmbeddingsWriter::add_column(const Column& c) {
  if (c.name.empty() || c.name.find('/') != std::string::npos)
    throw_input("{}: bad column name '{}'", impl_->out.final_path(), c.name);
  for (const auto& o : impl_->columns)
    if (o.name == c.name) throw_input("{}: duplicate column '{}'", impl_->out.final_path(), c.name);
  impl_->columns.push_back(c);
}

void EmbeddingsWriter::set_config(const nlohmann::json& config) { h5::write_attr(impl_->file.get(), "config", config.dump()); }

int64_t EmbeddingsWriter::rows() const { return impl_->emb->rows(); }

void EmbeddingsWriter::commit() {
  for (const auto& c : impl_->columns)
    if (static_cast<int64_t>(c.size()) != rows())
      throw_input("{}: column '{}' has {} rows, expected {}", impl_->out.final_path(), c.name, c.size(), rows());
  write_columns(impl_->file.get(), impl_->columns);
  h5::write_strings(impl_->file.get(), "ids", impl_->ids);
  impl_->file.path = impl_->out.final_path();
  h5::flush(impl_->file);  // throws on a failed write: the temp file is removed, the output untouched
  impl_->emb.reset();
  impl_->file.id.reset();
  impl_->out.commit();
}

// ---- reader ----

// One file, or the parts a manifest lists (rows in the listed order).
struct EmbeddingsReader::Impl {
  struct Part {
    h5::File file;
    int64_t n = 0, row0 = 0;  // rows, and the first one's row in the whole dataset
  };
  std::string path;
  std::vector<Part> parts;
  int64_t n = 0, dim = 0;
  std::vector<std::string> ids;
  bool manifest = false;
  // A patch-embeddings file (core/patches.h): rows are its images' patches, P per image.
  std::optional<PatchGeometry> patches;
  int64_t per_image = 1;
  static Part open_part(const std::string& path, int64_t& dim, std::vector<std::string>& ids);
  void open_patches(const std::string& path);
};

void EmbeddingsReader::Impl::open_patches(const std::string& file_path) {
  Part part;
  part.file = h5::open_read(file_path);
  const auto& f = part.file;
  h5::check_header(f, kPatchEmbeddingsFormat);
  auto dims = h5::dataset_dims(f, f.get(), "embeddings");
  if (dims.size() != 3) throw_input("{}: 'embeddings' has {} dimensions, expected 3 [N, P, D]", file_path, dims.size());
  std::string t = h5::dataset_type_name(f, f.get(), "embeddings");
  if (t != "float16" && t != "float32") throw_input("{}: 'embeddings' has type {}, expected float16 or float32", file_path, t);
  patches = read_patch_geometry(f);
  if (!patches) throw_input("{}: no 'patches' group (grid and geometry), expected one in a patch-embeddings file", file_path);
  auto image_ids = h5::read_strings(f, f.get(), "ids");
  if (static_cast<int64_t>(image_ids.size()) != dims[0] || image_ids != patches->image_ids)
    throw_input("{}: {} ids and {} patches/image_ids for {} images; expected the same ids", file_path, image_ids.size(),
                patches->n_images(), dims[0]);
  if (dims[1] != patches->patches())
    throw_input("{}: {} patches per image, the grid {} x {} has {}", file_path, dims[1], patches->grid_h,
                patches->grid_w, patches->patches());
  check_unique_part_ids(file_path, image_ids, {file_path}, {0});
  per_image = dims[1];
  dim = dims[2];
  part.n = dims[0] * per_image;
  ids.reserve(static_cast<size_t>(part.n));
  for (const auto& id : image_ids)
    for (int64_t p = 0; p < per_image; ++p) ids.push_back(patch_row_id(id, p));
  n = part.n;
  parts.push_back(std::move(part));
}

// Opens one embeddings file; appends its ids.
EmbeddingsReader::Impl::Part EmbeddingsReader::Impl::open_part(const std::string& path, int64_t& dim,
                                                               std::vector<std::string>& ids) {
  Part part;
  part.file = h5::open_read(path);
  const auto& f = part.file;
  h5::check_header(f, kEmbeddingsFormat);
  auto dims = h5::dataset_dims(f, f.get(), "embeddings");
  if (dims.size() != 2) throw_input("{}: 'embeddings' has {} dimensions, expected 2 [N, D]", path, dims.size());
  std::string t = h5::dataset_type_name(f, f.get(), "embeddings");
  if (t != "float32" && t != "float64") throw_input("{}: 'embeddings' has type {}, expected float32", path, t);
  part.n = dims[0];
  dim = dims[1];
  auto part_ids = h5::read_strings(f, f.get(), "ids");
  if (static_cast<int64_t>(part_ids.size()) != part.n)
    throw_input("{}: {} ids for {} embedding rows", path, part_ids.size(), part.n);
  ids.insert(ids.end(), std::make_move_iterator(part_ids.begin()), std::make_move_iterator(part_ids.end()));
  return part;
}

namespace {

// A part's config without what differs between parts of one dataset by design.
nlohmann::json comparable_config(nlohmann::json c) {
  if (c.is_object()) {
    c.erase("shard");
    c.erase("inputs");
    // import-npy records the files it read: provenance, not how the embeddings were made.
    if (c.value("source", "") == "import-npy") {
      c.erase("npy");
      c.erase("ids");
    }
  }
  return c;
}

}  // namespace

EmbeddingsReader::EmbeddingsReader(const std::string& path) : EmbeddingsReader(path, manifest_parts(path, "embeddings")) {}

EmbeddingsReader::EmbeddingsReader(const std::string& path, const std::vector<std::string>& parts)
    : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.path = path;
  m.manifest = !parts.empty();
  if (!m.manifest && h5::is_hdf5(path)) {
    h5::File probe = h5::open_read(path);
    if (h5::read_format(probe) == kPatchEmbeddingsFormat) {
      m.open_patches(path);
      return;
    }
  }
  const std::vector<std::string> files = parts.empty() ? std::vector<std::string>{path} : parts;
  nlohmann::json config0;
  for (const auto& file : files) {
    int64_t d = 0;
    auto part = open_part_of(path, m.manifest, [&] {
      if (h5::is_hdf5(file) && h5::read_format(h5::open_read(file)) == kPatchEmbeddingsFormat)
        throw_input("{}: a patch-embeddings file; a manifest lists image embeddings files only", file);
      return Impl::open_part(file, d, m.ids);
    });
    if (m.parts.empty()) {
      m.dim = d;
      config0 = comparable_config(h5::read_attr_json(part.file, part.file.get(), "config"));
    } else {
      if (d != m.dim) throw_input("{}: {} has dim {}, {} has dim {}; the parts must agree", path, file, d, files[0], m.dim);
      const auto c = comparable_config(h5::read_attr_json(part.file, part.file.get(), "config"));
      if (c != config0)
        for (const auto& [k, v] : config0.items())
          if (!c.contains(k) || c[k] != v)
            throw_input("{}: {} and {} differ in config '{}' ({} vs {}); the parts of one dataset come from one encoder "
                        "and preprocessing",
                        path, files[0], file, k, v.dump(), c.contains(k) ? c[k].dump() : "missing");
    }
    part.row0 = m.n;
    m.n += part.n;
    m.parts.push_back(std::move(part));
  }
  std::vector<int64_t> row0;
  for (const auto& part : m.parts) row0.push_back(part.row0);
  check_unique_part_ids(path, m.ids, files, row0);
}

EmbeddingsReader::~EmbeddingsReader() = default;
EmbeddingsReader::EmbeddingsReader(EmbeddingsReader&&) noexcept = default;
EmbeddingsReader& EmbeddingsReader::operator=(EmbeddingsReader&&) noexcept = default;
int64_t EmbeddingsReader::rows() const { return impl_->n; }
int64_t EmbeddingsReader::dim() const { return impl_->dim; }
const std::string& EmbeddingsReader::path() const { return impl_->path; }
const std::vector<std::string>& EmbeddingsReader::ids() const { return impl_->ids; }
const PatchGeometry* EmbeddingsReader::patches() const { return impl_->patches ? &*impl_->patches : nullptr; }
int64_t EmbeddingsReader::patches_per_image() const { return impl_->per_image; }

nlohmann::json EmbeddingsReader::config() const {
  const auto& f = impl_->parts.front().file;
  nlohmann::json c = h5::read_attr_json(f, f.get(), "config");
  if (impl_->manifest) {
    c = comparable_config(c);
    nlohmann::json files = nlohmann::json::array();
    for (const auto& p : impl_->parts) files.push_back(p.file.path);
    c["manifest"] = {{"path", impl_->path}, {"files", files}};
  }
  return c;
}

std::vector<Column> EmbeddingsReader::columns() const {
  std::vector<Column> cols = read_columns(impl_->parts.front().file, impl_->parts.front().n);
  for (size_t pi = 1; pi < impl_->parts.size(); ++pi) {
    const auto& part = impl_->parts[pi];
    auto more = read_columns(part.file, part.n);
    std::vector<std::string> a, b;
    for (const auto& c : cols) a.push_back(c.name);
    for (const auto& c : more) b.push_back(c.name);
    if (a != b)
      throw_input("{}: {} has columns [{}], {} has [{}]; the parts must have the same columns", impl_->path,
                  impl_->parts.front().file.path, fmt::join(a, ", "), part.file.path, fmt::join(b, ", "));
    for (size_t ci = 0; ci < cols.size(); ++ci) {
      Column& c = cols[ci];
      Column& d = more[ci];
      if (c.numeric != d.numeric) {
        // Numbers in one part and text in another: the column is text, numbers printed as in CSV.
        for (Column* x : {&c, &d})
          if (x->numeric) {
            for (size_t r = 0; r < x->numbers.size(); ++r) x->strings.push_back(x->value_string(r));
            x->numbers.clear();
            x->numeric = false;
          }
      }
      if (c.numeric)
        c.numbers.insert(c.numbers.end(), d.numbers.begin(), d.numbers.end());
      else
        c.strings.insert(c.strings.end(), std::make_move_iterator(d.strings.begin()), std::make_move_iterator(d.strings.end()));
    }
  }
  return cols;
}

void EmbeddingsReader::read_rows(int64_t start, int64_t count, float* out_nd, bool check_finite) const {
  const auto& m = *impl_;
  if (start < 0 || count < 0 || start + count > m.n)
    throw_input("{}: rows [{}, {}) out of range, {} has {} rows", m.path, start, start + count,
                m.manifest ? "the manifest" : "file", m.n);
  if (m.patches) {
    // Rows are patches of [N, P, D]: read the images the range touches, keep the range.
    const int64_t P = m.per_image, i0 = start / P, i1 = (start + count + P - 1) / P;
    const auto& part = m.parts.front();
    if (count == 0) return;
    if (start % P == 0 && (start + count) % P == 0) {
      h5::read_rows<float>(part.file, part.file.get(), "embeddings", i0, i1 - i0, out_nd);
    } else {
      std::vector<float> buf(static_cast<size_t>((i1 - i0) * P * m.dim));
      h5::read_rows<float>(part.file, part.file.get(), "embeddings", i0, i1 - i0, buf.data());
      std::copy_n(buf.data() + (start - i0 * P) * m.dim, count * m.dim, out_nd);
    }
    if (check_finite) check_finite_rows(out_nd, count, m.dim, start, &m.ids, part.file.path);
    return;
  }
  for (const auto& part : m.parts) {
    const int64_t a = std::max(start, part.row0), b = std::min(start + count, part.row0 + part.n);
    if (b <= a) continue;
    float* out = out_nd + (a - start) * m.dim;
    h5::read_rows<float>(part.file, part.file.get(), "embeddings", a - part.row0, b - a, out);
    if (check_finite) check_finite_rows(out, b - a, m.dim, a, &m.ids, part.file.path);
  }
}

uint64_t embeddings_fingerprint(const EmbeddingsReader& reader) {
  // FNV-1a over the bytes: stable across runs and builds (std::hash need not be).
  uint64_t h = 1469598103934665603ull;
  auto add = [&](const void* data, size_t n) {
    const auto* b = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  };
  const int64_t n = reader.rows(), d = reader.dim();
  add(&n, sizeof n);
  add(&d, sizeof d);
  for (const auto& id : reader.ids()) add(id.data(), id.size() + 1);  // with the terminator: "a","bc" != "ab","c"
  std::vector<float> row(static_cast<size_t>(d));
  for (int64_t r : {int64_t{0}, n - 1}) {
    if (r < 0) continue;
    reader.read_rows(r, 1, row.data(), false);
    add(row.data(), row.size() * sizeof(float));
  }
  return h;
}

}  // namespace cl
