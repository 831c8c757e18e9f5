// `conceptlab export-npy`: embeddings (float32 [N, D]) or sparse activations (densified to
// float32 [N, n_latents], as the reference's learned_activation.npy) -> .npy plus an ids CSV.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "core/activations.h"
#include "core/csv.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/h5.h"
#include "core/npy.h"
#include "core/progress.h"
#include "tools/command.h"

namespace cl::cli {

namespace {

struct ExportNpyParams {
  std::string in_path, out_path, ids_out;
  std::string id_col = "ImageID";
  double max_gb = 8.0;  // refuse dense outputs above this many GiB
  bool json = false;
};

void check_size(const ExportNpyParams& p, int64_t n, int64_t d) {
  double gib = static_cast<double>(n) * static_cast<double>(d) * 4.0 / (1024.0 * 1024.0 * 1024.0);
  if (gib > p.max_gb)
    throw_input("{}: dense [{}, {}] float32 would take {:.2f} GiB, above --max-gb {}", p.in_path, n, d, gib,
                p.max_gb);
}

int run_export(const ExportNpyParams& p) {
  std::string format;
  {
    h5::File f = h5::open_read(p.in_path);
    format = h5::read_format(f);
  }
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
    Progress prog("export-npy", n, globals().quiet, "rows");
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
    Progress prog("export-npy", n, globals().quiet, "rows");
    for (int64_t s = 0; s < n; s += step) {
      int64_t m = std::min(step, n - s);
      CsrMatrix c = r.read_rows(s, m);
      for (int64_t i = 0; i < m; ++i) {
        float* row = dense.data() + (s + i) * d;
        for (int64_t k = c.indptr[i]; k < c.indptr[i + 1]; ++k) row[c.indices[k]] = c.values[k];
      }
      prog.add(m);
    }
    prog.finish();
    for (const auto& id : r.ids()) ids_csv.rows.push_back({id});
  } else {
    throw_input("{}: format '{}', expected '{}' or '{}'", p.in_path, format, kEmbeddingsFormat, kActivationsFormat);
  }
  write_npy(p.out_path, dense.data(), {n, d}, {p.in_path});
  if (!p.ids_out.empty()) write_csv(p.ids_out, ids_csv, {p.in_path, p.out_path});
  if (p.json)
    print_json({{"out", p.out_path}, {"ids_out", p.ids_out}, {"format", format}, {"rows", n}, {"cols", d}});
  else
    spdlog::info("wrote {}: [{}, {}] float32{}", p.out_path, n, d, p.ids_out.empty() ? "" : ", ids in " + p.ids_out);
  return 0;
}

}  // namespace

Command command_export_npy() {
  return {"export-npy", "export embeddings or activations (densified) to a float32 .npy plus an ids CSV",
          [](CLI::App& sub) -> Runner {
            auto p = std::make_shared<ExportNpyParams>();
            sub.add_option("--in", p->in_path, "conceptlab.embeddings or conceptlab.activations file")
                ->required();
            sub.add_option("--out", p->out_path, "output .npy")->required();
            sub.add_option("--ids-out", p->ids_out, "output CSV of ids (and embedding metadata columns)");
            sub.add_option("--id-col", p->id_col, "name of the id column in --ids-out");
            sub.add_option("--max-gb", p->max_gb, "refuse outputs larger than this (GiB)");
            sub.add_flag("--json", p->json, "print a JSON summary on stdout");
            return [p]() -> int { return run_export(*p); };
          }};
}

}  // namespace cl::cli
