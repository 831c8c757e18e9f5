// Linear classifier file I/O (schema in linear_model.h).
#include "core/linear_model.h"

#include <cmath>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/h5.h"

namespace cl {

void write_linear(const std::string& path, const LinearModel& m, const std::vector<std::string>& inputs) {
  if (m.classes.size() < 2) throw_input("{}: {} classes, expected at least 2", path, m.classes.size());
  int64_t want_rows = m.classes.size() == 2 ? 1 : static_cast<int64_t>(m.classes.size());
  if (m.n_rows != want_rows)
    throw_input("{}: {} weight rows for {} classes, expected {}", path, m.n_rows, m.classes.size(), want_rows);
  CL_ASSERT(static_cast<int64_t>(m.weights.size()) == m.n_rows * m.n_features &&
                static_cast<int64_t>(m.bias.size()) == m.n_rows,
            "LinearModel shapes inconsistent");
  if (m.features != "activations" && m.features != "embeddings")
    throw_input("{}: features '{}', expected activations or embeddings", path, m.features);
  AtomicOutput out(path, inputs);
  {
    h5::File f = h5::create(out.temp_path());
    f.path = path;
    h5::write_header(f, kLinearFormat, m.config.dump());
    h5::write_attr(f.get(), "classes", nlohmann::json(m.classes).dump());
    h5::write_attr(f.get(), "features", m.features);
    h5::write_attr(f.get(), "metrics", m.metrics.dump());
    h5::write_dataset<float>(f.get(), "weights", m.weights.data(), {m.n_rows, m.n_features});
    h5::write_dataset<float>(f.get(), "bias", m.bias.data(), {m.n_rows});
    h5::flush(f);
  }
  out.commit();
}

LinearModel read_linear(const std::string& path) {
  h5::File f = h5::open_read(path);
  h5::check_header(f, kLinearFormat);
  LinearModel m;
  auto parse = [&](const std::string& name) { return h5::read_attr_json(f, f.get(), name); };
  auto classes = parse("classes");
  if (!classes.is_array() || classes.size() < 2)
    throw_input("{}: attribute 'classes' must be a JSON list of at least 2 names", path);
  for (const auto& c : classes) m.classes.push_back(c.is_string() ? c.get<std::string>() : c.dump());
  m.features = h5::read_attr_string(f.get(), "features").value_or("");
  if (m.features != "activations" && m.features != "embeddings")
    throw_input("{}: features '{}', expected activations or embeddings", path, m.features);
  m.metrics = parse("metrics");
  m.config = parse("config");
  std::vector<int64_t> dims;
  m.weights = h5::read_dataset<float>(f, f.get(), "weights", &dims);
  if (dims.size() != 2) throw_input("{}: 'weights' must be 2-D [C, F]", path);
  m.n_rows = dims[0];
  m.n_features = dims[1];
  int64_t want_rows = m.classes.size() == 2 ? 1 : static_cast<int64_t>(m.classes.size());
  if (m.n_rows != want_rows)
    throw_input("{}: {} weight rows for {} classes, expected {}", path, m.n_rows, m.classes.size(), want_rows);
  m.bias = h5::read_dataset<float>(f, f.get(), "bias", &dims);
  if (dims != std::vector<int64_t>{m.n_rows}) throw_input("{}: 'bias' must have {} entries", path, m.n_rows);
  for (float v : m.weights)
    if (!std::isfinite(v)) throw_input("{}: weights contain {}, expected finite values", path, v);
  for (float v : m.bias)
    if (!std::isfinite(v)) throw_input("{}: bias contains {}, expected finite values", path, v);
  for (size_t a = 0; a < m.classes.size(); ++a)
    for (size_t b = a + 1; b < m.classes.size(); ++b)
      if (m.classes[a] == m.classes[b])
        throw_input("{}: class '{}' is listed twice in attribute 'classes', expected distinct names", path,
                    m.classes[a]);
  return m;
}

}  // namespace cl
