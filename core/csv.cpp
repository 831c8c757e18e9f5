// RFC 4180 CSV reader/writer. One pass over the text with no per-character allocation on
// unquoted fields, since later issues read metadata files with 100k+ rows.
#include "core/csv.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_set>

#include "core/atomic_file.h"
#include "core/error.h"

namespace cl {

namespace {

std::string join_names(const std::vector<std::string>& names, size_t max_n) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < max_n; ++i) {
    if (i) s += ", ";
    s += "'" + names[i] + "'";
  }
  if (names.size() > max_n) s += fmt::format(", ... ({} more)", names.size() - max_n);
  return s;
}

bool needs_quotes(const std::string& f) {
  return f.find_first_of(",\"\r\n") != std::string::npos;
}

void append_field(std::string& out, const std::string& f) {
  if (!needs_quotes(f)) {
    out += f;
    return;
  }
  out += '"';
  for (char c : f) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

void append_record(std::string& out, const std::vector<std::string>& rec) {
  // A one-field record with an empty value would be a blank line, which readers skip.
  if (rec.size() == 1 && rec[0].empty()) {
    out += "\"\"\n";
    return;
  }
  for (size_t i = 0; i < rec.size(); ++i) {
    if (i) out += ',';
    append_field(out, rec[i]);
  }
  out += '\n';
}

}  // namespace

size_t CsvTable::col(const std::string& name) const {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return i;
  throw_input("{}: no column '{}' (columns: {})", path, name, join_names(header, 20));
}

bool CsvTable::has_col(const std::string& name) const {
  return std::find(header.begin(), header.end(), name) != header.end();
}

std::vector<std::string> CsvTable::column(const std::string& name) const {
  size_t c = col(name);
  std::vector<std::string> out;
  out.reserve(rows.size());
  for (const auto& r : rows) out.push_back(r[c]);
  return out;
}

CsvTable parse_csv(std::string_view text, const std::string& path) {
  CsvTable t;
  t.path = path;
  const char* p = text.data();
  const size_t n = text.size();
  size_t pos = 0;
  if (n >= 3 && std::memcmp(p, "\xEF\xBB\xBF", 3) == 0) pos = 3;
  size_t line = 1;  // physical line, 1-based, for error messages
  bool have_header = false;
  std::vector<std::string> rec;

  while (pos < n) {
    // Blank lines carry no record (as in pandas' skip_blank_lines).
    if (p[pos] == '\n') {
      ++pos;
      ++line;
      continue;
    }
    if (p[pos] == '\r') {
      ++pos;
      if (pos < n && p[pos] == '\n') ++pos;
      ++line;
      continue;
    }
    const size_t rec_line = line;
    rec.clear();
    if (have_header) rec.reserve(t.header.size());
    for (;;) {
      if (pos < n && p[pos] == '"') {
        const size_t quote_line = line;
        ++pos;
        std::string field;
        for (;;) {
          const void* q = pos < n ? std::memchr(p + pos, '"', n - pos) : nullptr;
          if (!q) throw_input("{}: line {}: unterminated quoted field", path, quote_line);
          size_t qpos = static_cast<const char*>(q) - p;
          line += std::count(p + pos, p + qpos, '\n');
          field.append(p + pos, qpos - pos);
          pos = qpos + 1;
          if (pos < n && p[pos] == '"') {  // doubled quote = literal quote
            field += '"';
            ++pos;
            continue;
          }
          break;
        }
        if (pos < n && p[pos] != ',' && p[pos] != '\n' && p[pos] != '\r')
          throw_input("{}: line {}: unexpected character '{}' after a closing quote", path, line, p[pos]);
        rec.push_back(std::move(field));
      } else {
        size_t e = pos;
        while (e < n) {
          char c = p[e];
          if (c == ',' || c == '\n' || c == '\r') break;
          ++e;
        }
        rec.emplace_back(p + pos, e - pos);
        pos = e;
      }
      if (pos >= n) break;
      char c = p[pos];
      if (c == ',') {
        ++pos;
        continue;
      }
      if (c == '\r') {
        ++pos;
        if (pos < n && p[pos] == '\n') ++pos;
      } else {
        ++pos;  // '\n'
      }
      ++line;
      break;
    }
    if (!have_header) {
      std::unordered_set<std::string> seen;
      for (const auto& h : rec)
        if (!seen.insert(h).second) throw_input("{}: line {}: duplicate column name '{}' in header", path, rec_line, h);
      t.header = std::move(rec);
      rec = {};
      have_header = true;
    } else {
      if (rec.size() != t.header.size())
        throw_input("{}: line {} has {} fields, header has {}", path, rec_line, rec.size(), t.header.size());
      t.rows.push_back(std::move(rec));
      rec = {};
    }
  }
  if (!have_header) throw_input("{}: empty file, expected a header row", path);
  return t;
}

namespace {

// Offset of the first byte that does not start or continue a well-formed UTF-8 sequence, or
// npos. Every text this project writes (HDF5 strings, JSON) is UTF-8, so a Latin-1 CSV must be
// refused here, naming the line, rather than fail later inside a JSON library.
size_t first_invalid_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > n || (len == 2 && c < 0xC2)) return i;
    for (size_t k = 1; k < len; ++k)
      if ((p[i + k] & 0xC0) != 0x80) return i;
    if (len == 3) {
      const uint32_t cp = ((c & 0x0Fu) << 12) | ((p[i + 1] & 0x3Fu) << 6) | (p[i + 2] & 0x3Fu);
      if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    } else if (len == 4) {
      const uint32_t cp = ((c & 0x07u) << 18) | ((p[i + 1] & 0x3Fu) << 12) | ((p[i + 2] & 0x3Fu) << 6) | (p[i + 3] & 0x3Fu);
      if (cp < 0x10000 || cp > 0x10FFFF) return i;
    }
    i += len;
  }
  return std::string::npos;
}

}  // namespace

CsvTable read_csv(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec))
    throw_input("{}: is not a regular file (a folder?), expected a CSV file", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_input("{}: cannot open CSV file", path);
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  if (size < 0) throw_input("{}: cannot read CSV file", path);
  in.seekg(0, std::ios::beg);
  std::string text(static_cast<size_t>(size), '\0');
  if (size > 0 && !in.read(text.data(), size)) throw_input("{}: read failed", path);
  if (size_t bad = first_invalid_utf8(text); bad != std::string::npos)
    throw_input("{}: line {}: byte 0x{:02x} is not UTF-8 text (a Latin-1 file? convert it, e.g. iconv -f latin1 -t "
                "utf-8)",
                path, 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(bad), '\n'),
                static_cast<unsigned char>(text[bad]));
  return parse_csv(text, path);
}

std::string format_csv(const CsvTable& t) {
  std::string out;
  size_t guess = 0;
  for (const auto& h : t.header) guess += h.size() + 1;
  if (!t.rows.empty()) {
    size_t row_guess = 0;
    for (const auto& f : t.rows[0]) row_guess += f.size() + 1;
    guess += row_guess * t.rows.size();
  }
  out.reserve(guess + 16);
  append_record(out, t.header);
  for (const auto& r : t.rows) {
    CL_ASSERT(r.size() == t.header.size(), "format_csv: ragged table");
    append_record(out, r);
  }
  return out;
}

void write_csv(const std::string& path, const CsvTable& t, const std::vector<std::string>& inputs) {
  AtomicOutput out(path, inputs);
  std::string text = format_csv(t);
  {
    std::ofstream f(out.temp_path(), std::ios::binary | std::ios::trunc);
    if (!f) throw_input("{}: cannot create file", out.temp_path());
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
    f.flush();
    if (!f) throw_input("{}: write failed (disk full?)", path);
  }
  out.commit();
}

namespace {

// Shared by index_by and join_rows; keys view the table's strings so joins on 100k+ rows do
// not copy every id.
template <typename Map>
void build_index(const CsvTable& t, const std::string& id_col, Map& idx) {
  size_t c = t.col(id_col);
  idx.reserve(t.rows.size() * 2);
  for (size_t i = 0; i < t.rows.size(); ++i) {
    const std::string& id = t.rows[i][c];
    if (id.empty()) throw_input("{}: empty id in column '{}' at data row {}", t.path, id_col, i + 1);
    auto [it, inserted] = idx.emplace(id, i);
    if (!inserted)
      throw_input("{}: duplicate id '{}' in column '{}' (data rows {} and {})", t.path, id, id_col, it->second + 1,
                  i + 1);
  }
}

}  // namespace

std::unordered_map<std::string, size_t> index_by(const CsvTable& t, const std::string& id_col) {
  std::unordered_map<std::string, size_t> idx;
  build_index(t, id_col, idx);
  return idx;
}

std::vector<size_t> join_rows(const CsvTable& t, const std::string& id_col, const std::vector<std::string>& ids,
                              const std::string& ids_source) {
  std::unordered_map<std::string_view, size_t> idx;
  build_index(t, id_col, idx);
  std::vector<size_t> rows;
  rows.reserve(ids.size());
  std::vector<std::string> missing;
  size_t n_missing = 0;
  for (const auto& id : ids) {
    auto it = idx.find(std::string_view(id));
    if (it == idx.end()) {
      if (missing.size() < 5) missing.push_back(id);
      ++n_missing;
      continue;
    }
    rows.push_back(it->second);
  }
  if (n_missing > 0)
    throw_input("{}: {} of {} ids from {} are missing from column '{}' (first: {})", t.path, n_missing, ids.size(),
                ids_source, id_col, join_names(missing, 5));
  return rows;
}

std::vector<Column> columns_for_ids(const CsvTable& t, const std::string& id_col, const std::vector<std::string>& ids,
                                    const std::string& ids_source) {
  std::vector<size_t> rows = join_rows(t, id_col, ids, ids_source);
  size_t id_c = t.col(id_col);
  std::vector<Column> cols;
  std::vector<std::string> values(rows.size());
  for (size_t c = 0; c < t.header.size(); ++c) {
    if (c == id_c) continue;
    for (size_t i = 0; i < rows.size(); ++i) values[i] = t.rows[rows[i]][c];
    cols.push_back(make_column(t.header[c], values));
  }
  return cols;
}

}  // namespace cl
