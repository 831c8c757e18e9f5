// NumPy interop with the reference project: a .npy embedding matrix plus the CSV listing its
// rows' ids -> conceptlab.embeddings, and embeddings or activations (densified, as the
// reference's learned_activation.npy) -> .npy plus an ids CSV.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/csv.h"
#include "core/progress.h"

namespace cl {

struct ImportNpyParams {
  std::string npy_path, ids_path, out_path;
  std::string id_col = kDefaultIdCol;
  std::vector<std::string> columns;  // metadata columns to keep; empty = all but the id column
  bool no_columns = false;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ImportNpyParams, npy_path, ids_path, out_path, id_col, columns,
                                                no_columns)

struct NpyImportReport {
  std::string out;
  int64_t rows = 0, dim = 0;
  std::vector<std::string> columns;
};

// The array [N, D] (float32/float64/int32/int64) and the CSV whose rows list its rows' ids in
// order -> an embeddings file with the CSV's other columns as metadata.
NpyImportReport import_npy(const ImportNpyParams& p);

struct ExportNpyParams {
  std::string in_path, out_path, ids_out;
  std::string id_col = kDefaultIdCol;
  double max_gb = 8.0;  // refuse dense outputs above this many GiB
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ExportNpyParams, in_path, out_path, ids_out, id_col, max_gb)

struct NpyExportReport {
  std::string out, ids_out, format;
  int64_t rows = 0, cols = 0;
};

NpyExportReport export_npy(const ExportNpyParams& p, ProgressSink& progress = silent_progress());

}  // namespace cl
