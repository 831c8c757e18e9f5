// SAE weights file I/O (schema in sae_weights.h).
#include "core/sae_weights.h"

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/h5.h"

namespace cl {
namespace {

void expect_dims(const h5::File& f, const std::string& name, const std::vector<int64_t>& got,
                 const std::vector<int64_t>& want) {
  if (got != want) {
    auto str = [](const std::vector<int64_t>& v) { return fmt::format("[{}]", fmt::join(v, ", ")); };
    throw_input("{}: '{}' has shape {}, expected {}", f.path, name, str(got), str(want));
  }
}

// Prefixes must be what training writes: ascending sizes in [1, n], the full size last.
void check_prefixes(const std::string& path, const SaeWeights& w) {
  const bool nested = is_matryoshka_arch(w.arch);
  if (!nested && !w.prefixes.empty())
    throw_input("{}: arch {} with nested sizes 'prefixes'; only matryoshka SAEs have them", path, w.arch);
  if (!nested) return;
  if (w.prefixes.empty() || w.prefixes.back() != w.n_latents)
    throw_input("{}: arch {} needs 'prefixes' ending at n_latents {}, found [{}]", path, w.arch, w.n_latents,
                fmt::join(w.prefixes, ", "));
  if (auto why = nested_sizes_problem(w.prefixes); !why.empty())
    throw_input("{}: 'prefixes' [{}]: {}", path, fmt::join(w.prefixes, ", "), why);
}

}  // namespace

bool is_known_sae_arch(const std::string& a) {
  for (const char* n : kSaeArchNames)
    if (a == n) return true;
  return false;
}

std::string nested_sizes_problem(const std::vector<int64_t>& sizes) {
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] < 1) return fmt::format("size {}, expected >= 1", sizes[i]);
    if (i > 0 && sizes[i] <= sizes[i - 1])
      return fmt::format("{} after {}, expected strictly ascending sizes", sizes[i], sizes[i - 1]);
  }
  return {};
}

bool is_matryoshka_arch(const std::string& a) { return a == "matryoshka-topk" || a == "matryoshka-batchtopk"; }

void write_sae(const std::string& path, const SaeWeights& w, const std::vector<std::string>& inputs) {
  const int64_t D = w.d_in, n = w.n_latents;
  CL_ASSERT(static_cast<int64_t>(w.W_enc.size()) == D * n && static_cast<int64_t>(w.W_dec.size()) == n * D &&
                static_cast<int64_t>(w.b_enc.size()) == n && static_cast<int64_t>(w.b_dec.size()) == D,
            "SaeWeights shapes inconsistent");
  if (!is_known_sae_arch(w.arch))
    throw_input("{}: arch '{}', expected relu-l1, topk, batchtopk or matryoshka-*", path, w.arch);
  check_prefixes(path, w);
  AtomicOutput out(path, inputs);
  {
    h5::File f = h5::create(out.temp_path());
    f.path = path;
    h5::write_header(f, kSaeFormat, w.config.dump());
    h5::write_attr(f.get(), "arch", w.arch);
    h5::write_attr(f.get(), "k", w.k);
    h5::write_attr(f.get(), "threshold", w.threshold);
    h5::write_attr(f.get(), "metrics", w.metrics.dump());
    h5::write_attr(f.get(), "d_in", D);
    h5::write_attr(f.get(), "n_latents", n);
    h5::write_dataset<float>(f.get(), "W_enc", w.W_enc.data(), {D, n});
    h5::write_dataset<float>(f.get(), "b_enc", w.b_enc.data(), {n});
    h5::write_dataset<float>(f.get(), "W_dec", w.W_dec.data(), {n, D});
    h5::write_dataset<float>(f.get(), "b_dec", w.b_dec.data(), {D});
    if (!w.prefixes.empty())
      h5::write_dataset<int64_t>(f.get(), "prefixes", w.prefixes.data(), {static_cast<int64_t>(w.prefixes.size())});
    h5::flush(f);
  }
  out.commit();
}

namespace {

// Everything but the weights, with every dataset's shape checked (no weight is read).
SaeWeights read_header(const h5::File& f, const std::string& path) {
  h5::check_header(f, kSaeFormat);
  SaeWeights w;
  w.arch = h5::read_attr_string(f.get(), "arch").value_or("");
  if (!is_known_sae_arch(w.arch))
    throw_input("{}: arch '{}', expected relu-l1, topk, batchtopk or matryoshka-*", path, w.arch);
  w.k = h5::read_attr_int(f.get(), "k").value_or(0);
  w.threshold = h5::read_attr_double(f.get(), "threshold").value_or(0.0);
  w.config = h5::read_attr_json(f, f.get(), "config");
  w.metrics = h5::read_attr_json(f, f.get(), "metrics");
  const std::vector<int64_t> dims = h5::dataset_dims(f, f.get(), "W_enc");
  if (dims.size() != 2) throw_input("{}: 'W_enc' must be 2-D [D, n_latents]", path);
  w.d_in = dims[0];
  w.n_latents = dims[1];
  expect_dims(f, "b_enc", h5::dataset_dims(f, f.get(), "b_enc"), {w.n_latents});
  expect_dims(f, "W_dec", h5::dataset_dims(f, f.get(), "W_dec"), {w.n_latents, w.d_in});
  expect_dims(f, "b_dec", h5::dataset_dims(f, f.get(), "b_dec"), {w.d_in});
  if (w.arch != "relu-l1" && (w.k <= 0 || w.k > w.n_latents))
    throw_input("{}: arch {} with k {}, expected 1..{}", path, w.arch, w.k, w.n_latents);
  if (h5::exists(f.get(), "prefixes")) {
    std::vector<int64_t> pdims;
    w.prefixes = h5::read_dataset<int64_t>(f, f.get(), "prefixes", &pdims);
    if (pdims.size() != 1) throw_input("{}: 'prefixes' must be 1-D", path);
  }
  check_prefixes(path, w);
  return w;
}

}  // namespace

SaeWeights read_sae(const std::string& path) {
  h5::File f = h5::open_read(path);
  SaeWeights w = read_header(f, path);  // the shapes are checked there
  w.W_enc = h5::read_dataset<float>(f, f.get(), "W_enc");
  w.b_enc = h5::read_dataset<float>(f, f.get(), "b_enc");
  w.W_dec = h5::read_dataset<float>(f, f.get(), "W_dec");
  w.b_dec = h5::read_dataset<float>(f, f.get(), "b_dec");
  return w;
}

SaeWeights read_sae_header(const std::string& path) { return read_header(h5::open_read(path), path); }

}  // namespace cl
