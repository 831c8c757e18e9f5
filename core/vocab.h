// Concept vocabularies ("conceptlab.vocab", schema 1): text embeddings of concept phrases in the
// image encoder's joint space (written by tools/export_torchscript.py --vocab), for naming latents
// by the direction of their decoder rows. Layout: `names` [V] UTF-8 strings, `embeddings` float32
// [V, D]; root attributes format, schema_version, config.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/formats.h"

namespace cl {

struct Vocab {
  std::vector<std::string> names;  // [V], unique
  int64_t dim = 0;
  std::vector<float> embeddings;   // [V, dim] row-major
  nlohmann::json config = nlohmann::json::object();
};

void write_vocab(const std::string& path, const Vocab& v, const std::vector<std::string>& inputs = {});
// Checks shapes, unique names and finite, non-zero vectors, naming the file and the entry.
Vocab read_vocab(const std::string& path);
// The vector of entry `name`; InputError naming `path` (the vocabulary's file) when it has none.
std::vector<float> vocab_entry(const Vocab& v, const std::string& name, const std::string& path);

}  // namespace cl
