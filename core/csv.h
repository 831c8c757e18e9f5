// RFC 4180 CSV: quoted fields with embedded commas, quotes and newlines, CRLF or LF, UTF-8 BOM,
// a header row. Used for metadata (labels, concept flags) joined to embeddings on an id column.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/table.h"

namespace cl {

// The id column (image ids, relative paths under the image root) when none is named: one
// definition for every command, config and the viewer.
inline constexpr const char* kDefaultIdCol = "ImageID";

struct CsvTable {
  std::string path;  // for error messages
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;  // every row has header.size() fields

  size_t n_rows() const { return rows.size(); }
  // Index of a column; throws InputError naming the file, the column and those available.
  size_t col(const std::string& name) const;
  bool has_col(const std::string& name) const;
  std::vector<std::string> column(const std::string& name) const;
};

// Throws InputError on ragged rows (naming line numbers), unterminated quotes, empty header.
CsvTable parse_csv(std::string_view text, const std::string& path_for_errors);
CsvTable read_csv(const std::string& path);
std::string format_csv(const CsvTable& t);  // quotes only where needed, LF line ends
void write_csv(const std::string& path, const CsvTable& t, const std::vector<std::string>& inputs = {});

// id -> row index; throws InputError on duplicate or empty ids naming the file and the id.
std::unordered_map<std::string, size_t> index_by(const CsvTable& t, const std::string& id_col);

// For each id, the CSV row; throws InputError reporting how many ids are missing and the first few.
std::vector<size_t> join_rows(const CsvTable& t, const std::string& id_col, const std::vector<std::string>& ids,
                              const std::string& ids_source);

// Metadata columns (all but id_col) for the given ids, typed by make_column.
std::vector<Column> columns_for_ids(const CsvTable& t, const std::string& id_col, const std::vector<std::string>& ids,
                                    const std::string& ids_source);

}  // namespace cl
