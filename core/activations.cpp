// Sparse activations file I/O (schema in activations.h). indptr/indices/values are
// appendable chunked datasets, so encoders stream chunks out and readers page rows in.
#include "core/activations.h"

#include <algorithm>
#include <unordered_set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/h5.h"
#include "core/manifest.h"
#include "core/patches.h"

namespace cl {

void write_activations(const std::string& path, const Activations& a, const std::vector<std::string>& inputs) {
  ActivationsWriter w(path, a.acts.n_cols, a.config, inputs);
  w.append(a.ids, a.acts);
  w.commit();
}

Activations read_activations(const std::string& path) {
  ActivationsReader r(path);
  Activations a;
  a.ids = r.ids();
  a.config = r.config();
  a.acts = r.read_all();
  return a;
}

// ---- writer ----

struct ActivationsWriter::Impl {
  AtomicOutput out;
  h5::File file;
  h5::Id group;
  int64_t n_latents = 0, rows = 0, nnz = 0;
  std::unique_ptr<h5::Appender<int64_t>> indptr;
  std::unique_ptr<h5::Appender<int32_t>> indices;
  std::unique_ptr<h5::Appender<float>> values;
  std::vector<std::string> ids;  // written at commit (fixed-length strings need the widest first)
  std::unordered_set<std::string> seen;
  std::optional<PatchGeometry> patches;
  Impl(const std::string& path, const std::vector<std::string>& inputs) : out(path, inputs) {}
};

ActivationsWriter::ActivationsWriter(const std::string& path, int64_t n_latents, const nlohmann::json& config,
                                     const std::vector<std::string>& inputs)
    : impl_(std::make_unique<Impl>(path, inputs)) {
  if (n_latents <= 0) throw_input("{}: n_latents {}, expected > 0", path, n_latents);
  auto& m = *impl_;
  m.n_latents = n_latents;
  m.file = h5::create(m.out.temp_path());
  m.file.path = path;
  h5::write_header(m.file, kActivationsFormat, config.dump());
  m.group = h5::create_group(m.file.get(), "activations");
  h5::write_attr(m.group, "n_latents", n_latents);
  m.indptr = std::make_unique<h5::Appender<int64_t>>(m.group, "indptr", 1, 65536, true);
  m.indices = std::make_unique<h5::Appender<int32_t>>(m.group, "indices", 1, 262144, true);
  m.values = std::make_unique<h5::Appender<float>>(m.group, "values", 1, 262144, true);
  int64_t zero = 0;
  m.indptr->append(&zero, 1);
}

ActivationsWriter::~ActivationsWriter() = default;

void ActivationsWriter::append(const std::vector<std::string>& ids, const CsrMatrix& chunk) {
  auto& m = *impl_;
  const std::string& path = m.out.final_path();
  if (static_cast<int64_t>(ids.size()) != chunk.n_rows)
    throw_input("{}: {} ids for {} activation rows", path, ids.size(), chunk.n_rows);
  if (chunk.n_cols != m.n_latents)
    throw_input("{}: chunk has {} latents, file has {}", path, chunk.n_cols, m.n_latents);
  chunk.validate(path);
  for (const auto& id : ids)
    if (!m.seen.insert(id).second) throw_input("{}: duplicate id '{}'", path, id);
  std::vector<int64_t> ptr(static_cast<size_t>(chunk.n_rows));
  for (int64_t r = 0; r < chunk.n_rows; ++r) ptr[static_cast<size_t>(r)] = m.nnz + chunk.indptr[static_cast<size_t>(r) + 1];
  m.indptr->append(ptr.data(), chunk.n_rows);
  m.indices->append(chunk.indices.data(), chunk.nnz());
  m.values->append(chunk.values.data(), chunk.nnz());
  m.ids.insert(m.ids.end(), ids.begin(), ids.end());
  m.rows += chunk.n_rows;
  m.nnz += chunk.nnz();
}

int64_t ActivationsWriter::rows() const { return impl_->rows; }

void ActivationsWriter::set_patches(const PatchGeometry& g) { impl_->patches = g; }

void ActivationsWriter::commit() {
  auto& m = *impl_;
  m.file.path = m.out.final_path();
  h5::write_strings(m.file.get(), "ids", m.ids);
  if (m.patches) {
    validate(*m.patches, m.file.path);
    CL_ASSERT(m.patches->n_images() * m.patches->patches() == m.rows, "patch activations: rows != images x patches");
    write_patch_geometry(m.file.get(), *m.patches);
  }
  h5::flush(m.file);  // throws on a failed write: the temp file is removed, the output untouched
  m.indptr.reset();
  m.indices.reset();
  m.values.reset();
  m.group.reset();
  m.file.id.reset();
  m.out.commit();
}

// ---- reader ----

// One file, or the parts a manifest lists (rows in the listed order).
struct ActivationsReader::Impl {
  struct Part {
    h5::File file;
    h5::Id group;
    int64_t n = 0, n_latents = 0, nnz = 0, row0 = 0;
    std::vector<int64_t> indptr;
  };
  std::string path;
  std::vector<Part> parts;
  int64_t n = 0, n_latents = 0, nnz = 0;
  std::vector<std::string> ids;
  bool manifest = false;
  static Part open_part(const std::string& path, std::vector<std::string>& ids);
};

ActivationsReader::Impl::Part ActivationsReader::Impl::open_part(const std::string& path,
                                                                 std::vector<std::string>& ids) {
  Part m;
  m.file = h5::open_read(path);
  h5::check_header(m.file, kActivationsFormat);
  m.group = h5::open_group(m.file, "activations");
  auto nl = h5::read_attr_int(m.group, "n_latents");
  if (!nl || *nl <= 0) throw_input("{}: group 'activations' lacks a positive 'n_latents' attribute", path);
  m.n_latents = *nl;
  auto part_ids = h5::read_strings(m.file, m.file.get(), "ids");
  m.n = static_cast<int64_t>(part_ids.size());
  m.indptr = h5::read_dataset<int64_t>(m.file, m.group, "indptr");
  if (static_cast<int64_t>(m.indptr.size()) != m.n + 1)
    throw_input("{}: indptr has {} entries, expected {} (ids + 1)", path, m.indptr.size(), m.n + 1);
  auto idx_dims = h5::dataset_dims(m.file, m.group, "indices");
  auto val_dims = h5::dataset_dims(m.file, m.group, "values");
  if (idx_dims.size() != 1 || val_dims.size() != 1 || idx_dims[0] != val_dims[0])
    throw_input("{}: indices and values must be 1-D of equal length", path);
  m.nnz = idx_dims[0];
  if (m.indptr.front() != 0 || m.indptr.back() != m.nnz)
    throw_input("{}: indptr ends at {}, expected nnz {}", path, m.indptr.back(), m.nnz);
  for (size_t i = 1; i < m.indptr.size(); ++i)
    if (m.indptr[i] < m.indptr[i - 1]) throw_input("{}: indptr decreases at row {}", path, i - 1);
  ids.insert(ids.end(), std::make_move_iterator(part_ids.begin()), std::make_move_iterator(part_ids.end()));
  return m;
}

ActivationsReader::ActivationsReader(const std::string& path) : ActivationsReader(path, manifest_parts(path, "activations")) {}

ActivationsReader::ActivationsReader(const std::string& path, const std::vector<std::string>& parts)
    : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.path = path;
  m.manifest = !parts.empty();
  const std::vector<std::string> files = parts.empty() ? std::vector<std::string>{path} : parts;
  for (const auto& file : files) {
    auto part = open_part_of(path, m.manifest, [&] { return Impl::open_part(file, m.ids); });
    if (m.parts.empty())
      m.n_latents = part.n_latents;
    else if (part.n_latents != m.n_latents)
      throw_input("{}: {} has {} latents, {} has {}; the parts must come from one SAE", path, file, part.n_latents,
                  files[0], m.n_latents);
    part.row0 = m.n;
    m.n += part.n;
    m.nnz += part.nnz;
    m.parts.push_back(std::move(part));
  }
  std::vector<int64_t> row0;
  for (const auto& part : m.parts) row0.push_back(part.row0);
  check_unique_part_ids(path, m.ids, files, row0);
}

ActivationsReader::~ActivationsReader() = default;
ActivationsReader::ActivationsReader(ActivationsReader&&) noexcept = default;
ActivationsReader& ActivationsReader::operator=(ActivationsReader&&) noexcept = default;
int64_t ActivationsReader::rows() const { return impl_->n; }
int64_t ActivationsReader::n_latents() const { return impl_->n_latents; }
int64_t ActivationsReader::nnz() const { return impl_->nnz; }
const std::string& ActivationsReader::path() const { return impl_->path; }
const std::vector<std::string>& ActivationsReader::ids() const { return impl_->ids; }

nlohmann::json ActivationsReader::config() const {
  const auto& f = impl_->parts.front().file;
  nlohmann::json c = h5::read_attr_json(f, f.get(), "config");
  if (impl_->manifest && c.is_object()) {
    nlohmann::json files = nlohmann::json::array();
    for (const auto& p : impl_->parts) files.push_back(p.file.path);
    c["manifest"] = {{"path", impl_->path}, {"files", files}};
  }
  return c;
}

CsrMatrix ActivationsReader::read_rows(int64_t start, int64_t count) const {
  auto& m = *impl_;
  if (start < 0 || count < 0 || start + count > m.n)
    throw_input("{}: rows [{}, {}) out of range, {} has {} rows", m.path, start, start + count,
                m.manifest ? "the manifest" : "file", m.n);
  CsrMatrix c;
  c.n_rows = count;
  c.n_cols = m.n_latents;
  c.indptr.assign(1, 0);
  int64_t total = 0;
  for (const auto& part : m.parts) {
    const int64_t lo = std::max(start, part.row0) - part.row0, hi = std::min(start + count, part.row0 + part.n) - part.row0;
    if (hi <= lo) continue;
    const int64_t a = part.indptr[static_cast<size_t>(lo)], b = part.indptr[static_cast<size_t>(hi)];
    total += b - a;
    if (total > kMaxInMemoryNnz)
      throw_input("{}: rows [{}, {}) hold more than {} non-zeros, the most one in-memory matrix holds (read fewer rows "
                  "at a time)", m.path, start, start + count, kMaxInMemoryNnz);
    const auto base = static_cast<SparseIndex>(c.indices.size());
    for (int64_t r = lo + 1; r <= hi; ++r)
      c.indptr.push_back(base + static_cast<SparseIndex>(part.indptr[static_cast<size_t>(r)] - a));
    c.indices.resize(static_cast<size_t>(base) + static_cast<size_t>(b - a));
    c.values.resize(c.indices.size());
    h5::read_rows<int32_t>(part.file, part.group, "indices", a, b - a, c.indices.data() + base);
    h5::read_rows<float>(part.file, part.group, "values", a, b - a, c.values.data() + base);
  }
  c.validate(m.path);
  return c;
}

CsrMatrix ActivationsReader::read_all() const { return read_rows(0, impl_->n); }

std::optional<PatchGeometry> ActivationsReader::patches() const {
  if (impl_->manifest) return std::nullopt;
  auto g = read_patch_geometry(impl_->parts.front().file);
  if (g && g->n_images() * g->patches() != impl_->n)
    throw_input("{}: {} rows, but its patch grid says {} images x {} patches", impl_->path, impl_->n, g->n_images(),
                g->patches());
  return g;
}

}  // namespace cl
