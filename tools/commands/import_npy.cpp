// `conceptlab import-npy`: a reference-project .npy embedding matrix plus the CSV listing its
// rows' ids (same order) -> a conceptlab.embeddings file, other CSV columns as metadata.
#include <algorithm>
#include <cmath>
#include <cstring>

#include <spdlog/spdlog.h>

#include "core/csv.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/npy.h"
#include "tools/command.h"

namespace cl::cli {

namespace {

struct ImportNpyParams {
  std::string npy_path, ids_path, out_path;
  std::string id_col = "ImageID";
  std::vector<std::string> columns;  // metadata columns to keep; empty = all but the id column
  bool no_columns = false;
  bool json = false;
};

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

int run_import(const ImportNpyParams& p) {
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

  std::vector<std::string> col_names;
  for (const auto& c : cols) col_names.push_back(c.name);
  if (p.json)
    print_json({{"out", p.out_path}, {"rows", n}, {"dim", dim}, {"columns", col_names}});
  else
    spdlog::info("wrote {}: {} x {} embeddings, {} metadata columns", p.out_path, n, dim, cols.size());
  return 0;
}

}  // namespace

Command command_import_npy() {
  return {"import-npy", "import a .npy embedding matrix [N, D] and its ids CSV into a conceptlab.embeddings file",
          [](CLI::App& sub) -> Runner {
            auto p = std::make_shared<ImportNpyParams>();
            sub.add_option("--npy", p->npy_path, "input .npy array [N, D] (float32/float64/int32/int64)")
                ->required();
            sub.add_option("--ids", p->ids_path, "CSV whose rows list the array's rows in order")
                ->required();
            sub.add_option("--id-col", p->id_col, "id column of the CSV");
            sub.add_option("--out", p->out_path, "output embeddings file (.h5)")->required();
            sub.add_option("--columns", p->columns, "metadata columns to keep (default: all but the id column)")
                ->delimiter(',');
            sub.add_flag("--no-columns", p->no_columns, "keep no metadata columns");
            sub.add_flag("--json", p->json, "print a JSON summary on stdout");
            return [p]() -> int {
              if (p->no_columns && !p->columns.empty()) throw_usage("--columns and --no-columns exclude each other");
              return run_import(*p);
            };
          }};
}

}  // namespace cl::cli
