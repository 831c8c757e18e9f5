// Embeddings file I/O (schema in embeddings.h). Rows are appended in ~1 MiB HDF5 chunks so a
// reader can stream row ranges of files larger than memory.
#include "core/embeddings.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "core/atomic_file.h"
#include "core/error.h"

namespace cl {
namespace {

int64_t chunk_rows_for(int64_t dim) { return std::max<int64_t>(1, (1 << 20) / std::max<int64_t>(1, dim * 4)); }

void check_unique_ids(const std::vector<std::string>& ids, const std::string& path) {
  std::unordered_set<std::string> seen;
  seen.reserve(ids.size() * 2);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!seen.insert(ids[i]).second) throw_input("{}: duplicate id '{}' at row {}", path, ids[i], i);
  }
}

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

struct EmbeddingsReader::Impl {
  h5::File file;
  int64_t n = 0, dim = 0;
  std::vector<std::string> ids;
};

EmbeddingsReader::EmbeddingsReader(const std::string& path) : impl_(std::make_unique<Impl>()) {
  impl_->file = h5::open_read(path);
  const auto& f = impl_->file;
  h5::check_header(f, kEmbeddingsFormat);
  auto dims = h5::dataset_dims(f, f.get(), "embeddings");
  if (dims.size() != 2) throw_input("{}: 'embeddings' has {} dimensions, expected 2 [N, D]", path, dims.size());
  std::string t = h5::dataset_type_name(f, f.get(), "embeddings");
  if (t != "float32" && t != "float64") throw_input("{}: 'embeddings' has type {}, expected float32", path, t);
  impl_->n = dims[0];
  impl_->dim = dims[1];
  impl_->ids = h5::read_strings(f, f.get(), "ids");
  if (static_cast<int64_t>(impl_->ids.size()) != impl_->n)
    throw_input("{}: {} ids for {} embedding rows", path, impl_->ids.size(), impl_->n);
  check_unique_ids(impl_->ids, path);
}

EmbeddingsReader::~EmbeddingsReader() = default;
EmbeddingsReader::EmbeddingsReader(EmbeddingsReader&&) noexcept = default;
EmbeddingsReader& EmbeddingsReader::operator=(EmbeddingsReader&&) noexcept = default;
int64_t EmbeddingsReader::rows() const { return impl_->n; }
int64_t EmbeddingsReader::dim() const { return impl_->dim; }
const std::string& EmbeddingsReader::path() const { return impl_->file.path; }
const std::vector<std::string>& EmbeddingsReader::ids() const { return impl_->ids; }

nlohmann::json EmbeddingsReader::config() const { return h5::read_attr_json(impl_->file, impl_->file.get(), "config"); }

std::vector<Column> EmbeddingsReader::columns() const { return read_columns(impl_->file, impl_->n); }

void EmbeddingsReader::read_rows(int64_t start, int64_t count, float* out_nd, bool check_finite) const {
  if (start < 0 || count < 0 || start + count > impl_->n)
    throw_input("{}: rows [{}, {}) out of range, file has {} rows", impl_->file.path, start, start + count, impl_->n);
  h5::read_rows<float>(impl_->file, impl_->file.get(), "embeddings", start, count, out_nd);
  if (check_finite) check_finite_rows(out_nd, count, impl_->dim, start, &impl_->ids, impl_->file.path);
}

}  // namespace cl
