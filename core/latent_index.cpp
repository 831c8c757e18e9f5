// Latent index file I/O (schema in latent_index.h).
#include "core/latent_index.h"
#include "core/json_input.h"

#include <cmath>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/h5.h"

namespace cl {

double LatentIndex::firing_rate(int64_t latent) const {
  return n_rows > 0 ? static_cast<double>(fire_count[static_cast<size_t>(latent)]) / static_cast<double>(n_rows) : 0.0;
}

void write_latent_index(const std::string& path, const LatentIndex& x, const std::vector<std::string>& inputs) {
  const int64_t L = x.n_latents, Q = static_cast<int64_t>(x.quantile_levels.size()), B = x.n_bins();
  const int64_t nnz = static_cast<int64_t>(x.rows.size());
  CL_ASSERT(static_cast<int64_t>(x.fire_count.size()) == L && static_cast<int64_t>(x.quantiles.size()) == L * Q &&
                static_cast<int64_t>(x.hist.size()) == L * B && static_cast<int64_t>(x.indptr.size()) == L + 1 &&
                x.values.size() == x.rows.size(),
            "LatentIndex shapes inconsistent");
  AtomicOutput out(path, inputs);
  {
    h5::File f = h5::create(out.temp_path());
    f.path = path;
    h5::write_header(f, kIndexFormat, x.config.dump());
    h5::write_attr(f.get(), "n_rows", x.n_rows);
    h5::write_attr(f.get(), "n_latents", L);
    h5::Id g = h5::create_group(f.get(), "latents");
    h5::write_dataset<int64_t>(g, "fire_count", x.fire_count.data(), {L});
    h5::write_dataset<double>(g, "mean", x.mean.data(), {L});
    h5::write_dataset<double>(g, "mean_active", x.mean_active.data(), {L});
    h5::write_dataset<float>(g, "max", x.max.data(), {L});
    h5::write_dataset<float>(g, "quantiles", x.quantiles.data(), {L, Q});
    h5::write_attr(g, "levels", nlohmann::json(x.quantile_levels).dump());
    h5::write_dataset<int64_t>(g, "hist", x.hist.data(), {L, B});
    h5::write_dataset<double>(g, "hist_edges", x.hist_edges.data(), {B + 1});
    h5::Id c = h5::create_group(f.get(), "by_latent");
    h5::write_dataset<int64_t>(c, "indptr", x.indptr.data(), {L + 1});
    h5::write_dataset<int32_t>(c, "rows", x.rows.data(), {nnz}, true);
    h5::write_dataset<float>(c, "values", x.values.data(), {nnz}, true);
    h5::flush(f);
  }
  out.commit();
}

LatentIndex read_latent_index(const std::string& path) {
  h5::File f = h5::open_read(path);
  h5::check_header(f, kIndexFormat);
  LatentIndex x;
  x.config = h5::read_attr_json(f, f.get(), "config");
  x.n_rows = h5::read_attr_int(f.get(), "n_rows").value_or(-1);
  x.n_latents = h5::read_attr_int(f.get(), "n_latents").value_or(-1);
  if (x.n_rows < 0 || x.n_latents < 1)
    throw_input("{}: n_rows {} and n_latents {}; expected >= 0 and >= 1", path, x.n_rows, x.n_latents);
  const int64_t L = x.n_latents;
  h5::Id g = h5::open_group(f, "latents");
  auto expect = [&](const std::string& name, const std::vector<int64_t>& got, const std::vector<int64_t>& want) {
    if (got != want)
      throw_input("{}: '{}' has shape [{}], expected [{}]", path, name, fmt::join(got, ", "), fmt::join(want, ", "));
  };
  std::vector<int64_t> dims;
  x.fire_count = h5::read_dataset<int64_t>(f, g, "fire_count", &dims);
  expect("fire_count", dims, {L});
  x.mean = h5::read_dataset<double>(f, g, "mean", &dims);
  expect("mean", dims, {L});
  x.mean_active = h5::read_dataset<double>(f, g, "mean_active", &dims);
  expect("mean_active", dims, {L});
  x.max = h5::read_dataset<float>(f, g, "max", &dims);
  expect("max", dims, {L});
  try {
    x.quantile_levels =
        parse_json(h5::read_attr_string(g, "levels").value_or("[]"), path + ": attribute 'levels'").get<std::vector<double>>();
  } catch (const nlohmann::json::exception&) {
    throw_input("{}: attribute latents/levels is not a JSON list of numbers", path);
  }
  x.quantiles = h5::read_dataset<float>(f, g, "quantiles", &dims);
  expect("quantiles", dims, {L, static_cast<int64_t>(x.quantile_levels.size())});
  x.hist_edges = h5::read_dataset<double>(f, g, "hist_edges", &dims);
  if (dims.size() != 1 || dims[0] < 2) throw_input("{}: 'hist_edges' must hold at least 2 edges", path);
  x.hist = h5::read_dataset<int64_t>(f, g, "hist", &dims);
  expect("hist", dims, {L, x.n_bins()});
  h5::Id c = h5::open_group(f, "by_latent");
  x.indptr = h5::read_dataset<int64_t>(f, c, "indptr", &dims);
  expect("indptr", dims, {L + 1});
  x.rows = h5::read_dataset<int32_t>(f, c, "rows", &dims);
  const int64_t nnz = static_cast<int64_t>(x.rows.size());
  x.values = h5::read_dataset<float>(f, c, "values", &dims);
  expect("values", dims, {nnz});
  if (x.indptr.front() != 0 || x.indptr.back() != nnz)
    throw_input("{}: by_latent/indptr runs from {} to {}, expected 0 to {}", path, x.indptr.front(), x.indptr.back(), nnz);
  for (int64_t j = 0; j < L; ++j) {
    const int64_t a = x.indptr[static_cast<size_t>(j)], b = x.indptr[static_cast<size_t>(j) + 1];
    if (b < a) throw_input("{}: by_latent/indptr decreases at latent {}", path, j);
    if (b - a != x.fire_count[static_cast<size_t>(j)])
      throw_input("{}: latent {} lists {} images but fires on {}", path, j, b - a, x.fire_count[static_cast<size_t>(j)]);
    for (int64_t q = a; q < b; ++q) {
      const int32_t r = x.rows[static_cast<size_t>(q)];
      const float v = x.values[static_cast<size_t>(q)];
      if (r < 0 || r >= x.n_rows) throw_input("{}: latent {} lists row {}, expected 0..{}", path, j, r, x.n_rows - 1);
      if (!std::isfinite(v) || (q > a && v > x.values[static_cast<size_t>(q) - 1]))
        throw_input("{}: latent {}: activations not finite and descending at entry {}", path, j, q - a);
    }
  }
  return x;
}

}  // namespace cl
