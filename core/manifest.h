// Multi-file datasets: a manifest (`conceptlab.manifest`, schema 1) is a JSON file listing
// embeddings or activations files in order; EmbeddingsReader and ActivationsReader (and so
// every command that reads either) take it in place of one file, its rows being the parts'
// rows in the listed order. Relative part paths are relative to the manifest's folder.
//   {"format": "conceptlab.manifest", "schema_version": 1, "kind": "embeddings",
//    "files": ["part-0.h5", "part-1.h5"]}
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"

namespace cl {

inline constexpr const char* kManifestFormat = "conceptlab.manifest";

struct Manifest {
  std::string path;                // the manifest itself
  std::string kind;                // "embeddings" | "activations"
  std::vector<std::string> files;  // resolved part paths, in order
};

// True when path is a readable file whose first non-blank byte is '{' (HDF5 files start with
// their 8-byte signature, so this never mistakes one for the other).
bool is_manifest(const std::string& path);

// InputError naming the manifest and the field: not JSON, another format or schema, an unknown
// kind, no files, a file listed twice, a part that is itself a manifest.
Manifest read_manifest(const std::string& path);

// The parts when path is a manifest of `kind` ("embeddings" | "activations"), {} when path is
// not a manifest; InputError for a manifest of the other kind.
std::vector<std::string> manifest_parts(const std::string& path, const std::string& kind);

// Writes (atomically) a manifest listing files, each stored relative to the manifest's folder
// when it lies below it, else absolute.
void write_manifest(const std::string& path, const std::string& kind, const std::vector<std::string>& files);

// The kind from the first part's format, every part opened as one dataset (dims, latents, unique
// ids, columns, configs checked), then the manifest written: a bad part leaves no manifest.
struct ManifestSummary {
  std::string kind;
  int64_t n_rows = 0, n_parts = 0;
};
ManifestSummary create_manifest(const std::string& path, const std::vector<std::string>& files);

// Runs open() on a part of the dataset `name`; for a manifest's part (in_manifest) an InputError
// gains the manifest's name in front, so the message says which manifest lists the bad file.
template <typename F>
auto open_part_of(const std::string& name, bool in_manifest, F&& open) -> decltype(open()) {
  if (!in_manifest) return open();
  try {
    return open();
  } catch (const InputError& e) {
    throw_input("{}: part {}", name, e.what());
  }
}

// ids in row order over parts starting at rows row0 (ascending; files their paths): InputError
// naming the dataset, the id and (for two parts) both files when an id repeats.
void check_unique_part_ids(const std::string& name, const std::vector<std::string>& ids,
                           const std::vector<std::string>& files, const std::vector<int64_t>& row0);

// A dataset's format: for a manifest its parts' (kEmbeddingsFormat or kActivationsFormat), else
// the HDF5 file's root 'format' attribute.
std::string dataset_format(const std::string& path);

}  // namespace cl
