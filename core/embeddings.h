// The embeddings format ("conceptlab.embeddings", schema 1): `embeddings` float32 [N, D],
// `ids` UTF-8 strings [N] (unique), optional `columns/` group with one [N] dataset per
// metadata column, root attributes format/schema_version/config.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/formats.h"

#include "core/h5.h"
#include "core/table.h"

namespace cl {

struct PatchGeometry;

struct Embeddings {
  std::vector<std::string> ids;
  int64_t n = 0, dim = 0;
  std::vector<float> data;  // data_nd: [n, dim] row-major
  std::vector<Column> columns;
  nlohmann::json config = nlohmann::json::object();
  const float* row(int64_t i) const { return data.data() + i * dim; }
};

// Whole-file I/O. Writing checks shapes, unique ids and finite values; reading checks the
// header, shapes, unique ids and (when check_finite) NaN/Inf, naming file, row and id.
void write_embeddings(const std::string& path, const Embeddings& e, const std::vector<std::string>& inputs = {});
Embeddings read_embeddings(const std::string& path, bool check_finite = true);

// Streaming writer: rows are appended in chunks; columns are added before commit.
class EmbeddingsWriter {
 public:
  EmbeddingsWriter(const std::string& path, int64_t dim, const nlohmann::json& config,
                   const std::vector<std::string>& inputs = {});
  ~EmbeddingsWriter();
  void append(const float* rows_nd, int64_t n, const std::vector<std::string>& ids);
  void add_column(const Column& c);  // must have exactly rows() entries at commit
  void set_config(const nlohmann::json& config);  // replaces the constructor's (e.g. with what only the end knows)
  int64_t rows() const;
  void commit();  // closes and renames into place

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Streaming reader for files larger than memory.
class EmbeddingsReader {
 public:
  explicit EmbeddingsReader(const std::string& path);
  // path may be a manifest (core/manifest.h): its parts read as one dataset. The second form
  // opens files as one dataset named name (what a manifest listing them reads as; no files:
  // name is the one file).
  EmbeddingsReader(const std::string& name, const std::vector<std::string>& files);
  ~EmbeddingsReader();
  EmbeddingsReader(EmbeddingsReader&&) noexcept;
  EmbeddingsReader& operator=(EmbeddingsReader&&) noexcept;
  int64_t rows() const;
  int64_t dim() const;
  const std::string& path() const;
  const std::vector<std::string>& ids() const;  // loaded at open (N strings)
  nlohmann::json config() const;
  std::vector<Column> columns() const;
  // A patch-embeddings file (core/patches.h) reads as its images' patches, P rows per image in
  // image order (ids "ID#p"); its grid and geometry here. nullptr and 1 for image embeddings.
  const PatchGeometry* patches() const;
  int64_t patches_per_image() const;
  // rows [start, start+count) into out_nd ([count, dim]); checks finiteness when asked.
  void read_rows(int64_t start, int64_t count, float* out_nd, bool check_finite = true) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A hash of the rows, dim, ids and the first and last rows' values: equal for copies of one
// dataset, different (but for hash collisions) for another dataset of the same shape. Reads
// two rows, so it is cheap on any size.
uint64_t embeddings_fingerprint(const EmbeddingsReader& reader);

}  // namespace cl
