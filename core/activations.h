// The sparse activations format ("conceptlab.activations", schema 1): `ids` [N] and group
// `activations` with CSR `indptr` int64 [N+1], `indices` int32 [nnz], `values` float32 [nnz],
// attribute `n_latents`. Written and read in row chunks so files larger than memory work.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/formats.h"

#include "core/patches.h"
#include "core/sparse.h"

namespace cl {

struct Activations {
  std::vector<std::string> ids;
  CsrMatrix acts;  // acts_nl: [n_images, n_latents]
  nlohmann::json config = nlohmann::json::object();
};

void write_activations(const std::string& path, const Activations& a, const std::vector<std::string>& inputs = {});
Activations read_activations(const std::string& path);

class ActivationsWriter {
 public:
  ActivationsWriter(const std::string& path, int64_t n_latents, const nlohmann::json& config,
                    const std::vector<std::string>& inputs = {});
  ~ActivationsWriter();
  void append(const std::vector<std::string>& ids, const CsrMatrix& chunk);
  int64_t rows() const;
  // Patch activations: rows are (image, patch) and the file carries the grid and geometry
  // (core/patches.h); at commit the rows must be images x patches.
  void set_patches(const PatchGeometry& g);
  void commit();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class ActivationsReader {
 public:
  explicit ActivationsReader(const std::string& path);
  // path may be a manifest (core/manifest.h): its parts read as one dataset. The second form
  // opens files as one dataset named name (what a manifest listing them reads as; no files:
  // name is the one file).
  ActivationsReader(const std::string& name, const std::vector<std::string>& files);
  ~ActivationsReader();
  ActivationsReader(ActivationsReader&&) noexcept;
  ActivationsReader& operator=(ActivationsReader&&) noexcept;
  int64_t rows() const;
  int64_t n_latents() const;
  int64_t nnz() const;
  const std::string& path() const;
  const std::vector<std::string>& ids() const;
  nlohmann::json config() const;
  CsrMatrix read_rows(int64_t start, int64_t count) const;  // indptr rebased to 0
  CsrMatrix read_all() const;
  // The patch grid and geometry of patch activations (nullopt for image activations).
  std::optional<PatchGeometry> patches() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cl
