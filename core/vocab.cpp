// Vocabulary file I/O (schema in vocab.h).
#include "core/vocab.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/h5.h"

namespace cl {

void write_vocab(const std::string& path, const Vocab& v, const std::vector<std::string>& inputs) {
  const int64_t V = static_cast<int64_t>(v.names.size());
  CL_ASSERT(static_cast<int64_t>(v.embeddings.size()) == V * v.dim, "vocab shapes");
  AtomicOutput out(path, inputs);
  {
    h5::File f = h5::create(out.temp_path());
    f.path = path;
    h5::write_header(f, kVocabFormat, v.config.dump());
    h5::write_strings(f.get(), "names", v.names);
    h5::write_dataset<float>(f.get(), "embeddings", v.embeddings.data(), {V, v.dim});
    h5::flush(f);
  }
  out.commit();
}

Vocab read_vocab(const std::string& path) {
  h5::File f = h5::open_read(path);
  h5::check_header(f, kVocabFormat);
  Vocab v;
  v.config = h5::read_attr_json(f, f.get(), "config");
  v.names = h5::read_strings(f, f.get(), "names");
  std::vector<int64_t> dims;
  v.embeddings = h5::read_dataset<float>(f, f.get(), "embeddings", &dims);
  if (dims.size() != 2 || dims[0] != static_cast<int64_t>(v.names.size()) || dims[1] < 1)
    throw_input("{}: embeddings of shape [{}] for {} names; expected [{}, D]", path, fmt::join(dims, ", "),
                v.names.size(), v.names.size());
  v.dim = dims[1];
  std::unordered_set<std::string> seen;
  for (size_t i = 0; i < v.names.size(); ++i) {
    if (!seen.insert(v.names[i]).second) throw_input("{}: duplicate name '{}'", path, v.names[i]);
    double norm = 0;
    for (int64_t d = 0; d < v.dim; ++d) {
      const float x = v.embeddings[i * static_cast<size_t>(v.dim) + static_cast<size_t>(d)];
      if (!std::isfinite(x)) throw_input("{}: '{}' has a non-finite component {}", path, v.names[i], x);
      norm += double(x) * x;
    }
    if (!(norm > 0)) throw_input("{}: '{}' is the zero vector", path, v.names[i]);
  }
  return v;
}

}  // namespace cl

namespace cl {

std::vector<float> vocab_entry(const Vocab& v, const std::string& name, const std::string& path) {
  const auto it = std::find(v.names.begin(), v.names.end(), name);
  if (it == v.names.end()) throw_input("{}: no entry '{}'", path, name);
  const size_t i = static_cast<size_t>(it - v.names.begin());
  return {v.embeddings.begin() + static_cast<std::ptrdiff_t>(i * static_cast<size_t>(v.dim)),
          v.embeddings.begin() + static_cast<std::ptrdiff_t>((i + 1) * static_cast<size_t>(v.dim))};
}

}  // namespace cl
