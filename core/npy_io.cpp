// .npy import/export (see npy_io.h): chunked conversion so a float32 input is never duplicated.
#include "core/npy_io.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <spdlog/spdlog.h>

#include "core/activations.h"
#include "core/csv.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/manifest.h"
#include "core/h5.h"
#include "core/npy.h"
#include "core/output_claim.h"

namespace cl {

namespace {

// Rows [start, start+n) of a 2-D array as float32, converting other dtypes per chunk so a
// float32 input is never duplicated in memory.
void rows_as_float(const NpyArray& a, int64_t start, int64_t n, int64_t dim, std::vector<float>& out) {
  const size_t count = static_cast<size_t>(n * dim), first = static_cast<size_t>(start * dim);
  out.resize(count);
  const unsigned char* b = a.bytes.data();
  auto conv = [&](auto tag) {
    using Src = decltype(tag);
    for (size_t i = 0; i < count; ++i) {
      Src v;
      std::memcpy(&v, b + (first + i) * sizeof(Src), sizeof(Src));
      out[i] = static_cast<float>(v);
    }
  };
  switch (a.dtype) {
    case NpyDtype::f32: std::memcpy(out.data(), b + first * sizeof(float), count * sizeof(float)); break;
    case NpyDtype::f64: conv(double{}); break;
    case NpyDtype::i32: conv(int32_t{}); break;
    case NpyDtype::i64: conv(int64_t{}); break;
  }
}

void check_size(const ExportNpyParams& p, int64_t n, int64_t d) {
  double gib = static_cast<double>(n) * static_cast<double>(d) * 4.0 / (1024.0 * 1024.0 * 1024.0);
  if (gib > p.max_gb)
    throw_input("{}: dense [{}, {}] float32 would take {:.2f} GiB, above --max-gb {}", p.in_path, n, d, gib,
                p.max_gb);
}

}  // namespace

NpyImportReport import_npy(const ImportNpyParams& p) {
  if (p.no_columns && !p.columns.empty()) throw_usage("--columns and --no-columns exclude each other");
  CsvTable t = read_csv(p.ids_path);
  index_by(t, p.id_col);  // unique, non-empty ids, errors naming the CSV
  std::vector<std::string> ids = t.column(p.id_col);
  NpyArray a = read_npy(p.npy_path);
  if (a.shape.size() != 2)
    throw_input("{}: array has {} dimensions, expected 2 ([n_images, dim])", p.npy_path, a.shape.size());
  const int64_t n = a.shape[0], dim = a.shape[1];
  if (n != static_cast<int64_t>(ids.size()))
    throw_input("{} has {} rows but {} has {} id rows; they must match row for row", p.npy_path, n, p.ids_path,
                ids.size());

  std::vector<Column> cols;
  if (!p.no_columns) {
    size_t id_c = t.col(p.id_col);
    std::vector<std::string> wanted = p.columns;
    if (wanted.empty())
      for (size_t c = 0; c < t.header.size(); ++c)
        if (c != id_c) {
          // pandas writes its index under an empty name; it carries no metadata.
          if (t.header[c].empty()) spdlog::warn("{}: skipping column with an empty name", p.ids_path);
          else wanted.push_back(t.header[c]);
        }
    for (const auto& name : wanted) {
      if (name == p.id_col) continue;
      cols.push_back(make_column(name, t.column(name)));  // t.column names the CSV on a bad name
    }
  }

  nlohmann::json config = {{"source", "import-npy"}, {"npy", p.npy_path}, {"ids", p.ids_path}, {"id_col", p.id_col}};
  EmbeddingsWriter w(p.out_path, dim, config, {p.npy_path, p.ids_path});
  const int64_t step = std::max<int64_t>(1, (16 << 20) / std::max<int64_t>(1, dim * 4));
  std::vector<float> chunk;
  for (int64_t s = 0; s < n; s += step) {
    int64_t m = std::min(step, n - s);
    rows_as_float(a, s, m, dim, chunk);
    for (size_t k = 0; k < chunk.size(); ++k)
      if (!std::isfinite(chunk[k])) {
        int64_t row = s + static_cast<int64_t>(k) / dim;
        throw_input("{}: row {} (id '{}') has {} at column {}, expected finite values{}", p.npy_path, row,
                    ids[static_cast<size_t>(row)], std::isnan(chunk[k]) ? "NaN" : "Inf", static_cast<int64_t>(k) % dim,
                    a.dtype == NpyDtype::f64 ? " (float64 values must fit in float32)" : "");
      }
    w.append(chunk.data(), m, std::vector<std::string>(ids.begin() + s, ids.begin() + s + m));
  }
  for (const auto& c : cols) w.add_column(c);
  w.commit();

  NpyImportReport r{p.out_path, n, dim, {}};
  for (const auto& c : cols) r.columns.push_back(c.name);
  return r;
}

NpyExportReport export_npy(const ExportNpyParams& p, ProgressSink& progress) {
  if (!(p.max_gb > 0)) throw_usage("--max-gb {}: expected > 0", p.max_gb);
  check_output_path(p.out_path, {p.in_path});
  if (!p.ids_out.empty()) check_output_path(p.ids_out, {p.in_path, p.out_path});
  const std::string format = dataset_format(p.in_path);  // a manifest reads as its parts' format
  CsvTable ids_csv;
  ids_csv.header = {p.id_col};
  int64_t n = 0, d = 0;
  std::vector<float> dense;
  if (format == kEmbeddingsFormat) {
    EmbeddingsReader r(p.in_path);
    n = r.rows();
    d = r.dim();
    check_size(p, n, d);
    dense.resize(static_cast<size_t>(n * d));
    const int64_t step = std::max<int64_t>(1, (64 << 20) / std::max<int64_t>(1, d * 4));
    Progress prog(progress, "export-npy", n, "rows");
    for (int64_t s = 0; s < n; s += step) {
      int64_t m = std::min(step, n - s);
      r.read_rows(s, m, dense.data() + s * d, false);
      prog.add(m);
    }
    prog.finish();
    // Metadata columns travel in the ids CSV so import-npy can rebuild the same file.
    std::vector<Column> cols = r.columns();
    for (const auto& c : cols)
      if (c.name != p.id_col) ids_csv.header.push_back(c.name);
    const auto& ids = r.ids();
    ids_csv.rows.reserve(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      std::vector<std::string> row{ids[i]};
      for (const auto& c : cols)
        if (c.name != p.id_col) row.push_back(c.value_string(i));
      ids_csv.rows.push_back(std::move(row));
    }
  } else if (format == kActivationsFormat) {
    ActivationsReader r(p.in_path);
    n = r.rows();
    d = r.n_latents();
    check_size(p, n, d);
    dense.assign(static_cast<size_t>(n * d), 0.f);
    const int64_t step = 16384;
    Progress prog(progress, "export-npy", n, "rows");
    for (int64_t s = 0; s < n; s += step) {
      int64_t m = std::min(step, n - s);
      csr_to_dense(r.read_rows(s, m), dense.data() + s * d);
      prog.add(m);
    }
    prog.finish();
    for (const auto& id : r.ids()) ids_csv.rows.push_back({id});
  } else {
    throw_input("{}: format '{}', expected '{}' or '{}'", p.in_path, format, kEmbeddingsFormat, kActivationsFormat);
  }
  // The ids CSV is staged and renamed only after the .npy is in place: a failure of either leaves
  // both previous outputs as they were.
  StagedOutputs staged;
  if (!p.ids_out.empty()) write_csv(staged.stage(p.ids_out, {p.in_path, p.out_path}), ids_csv, {p.in_path});
  write_npy(p.out_path, dense.data(), {n, d}, {p.in_path});
  staged.commit_all();
  return {p.out_path, p.ids_out, format, n, d};
}

}  // namespace cl
