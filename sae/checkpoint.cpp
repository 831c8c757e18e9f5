// SAE checkpoints in HDF5: tensors as datasets, scalars and the Rng state as attributes.
#include "sae/checkpoint.h"

#include <filesystem>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/formats.h"
#include "core/h5.h"

namespace cl::sae {

using torch::Tensor;

namespace {


template <typename T>
void put(const h5::File& f, const std::string& name, const Tensor& t) {
  auto c = t.detach().to(torch::kCPU).contiguous();
  std::vector<int64_t> dims(c.sizes().begin(), c.sizes().end());
  if (dims.empty()) dims = {1};
  h5::write_dataset<T>(f.get(), name, c.data_ptr<T>(), dims);
}

template <typename T>
Tensor get(const h5::File& f, const std::string& name, const std::vector<int64_t>& shape, torch::Device dev) {
  std::vector<int64_t> dims;
  auto v = h5::read_dataset<T>(f, f.get(), name, &dims);
  const std::vector<int64_t> want = shape.empty() ? std::vector<int64_t>{1} : shape;
  if (dims != want)
    throw_input("{}: checkpoint dataset '{}' has shape [{}], expected [{}]", f.path, name, fmt::join(dims, ", "),
                fmt::join(want, ", "));
  auto dtype = std::is_same_v<T, float> ? torch::kFloat32 : torch::kInt64;
  auto t = torch::from_blob(v.data(), want, dtype).clone();
  if (shape.empty()) t = t.reshape({});
  return t.to(dev);
}

int64_t get_int(const h5::File& f, const std::string& name) {
  auto v = h5::read_attr_int(f.get(), name);
  if (!v) throw_input("{}: checkpoint lacks attribute '{}'", f.path, name);
  return *v;
}

}  // namespace

void save_checkpoint(const std::string& path, const Trainer& tr, const RunState& rs, const Rng& rng,
                     const TrainParams& p, int64_t d, int64_t n_rows, const std::vector<int64_t>& order) {
  AtomicOutput out(path);
  {
    h5::File f = h5::create(out.temp_path());
    f.path = path;  // messages name the checkpoint, not its temp file
    f.path = path;
    h5::write_header(f, kSaeCheckpointFormat, nlohmann::json(p).dump());
    const auto w = tr.t.params();
    for (size_t i = 0; i < w.size(); ++i) {
      put<float>(f, kParamNames[i], *w[i]);
      put<float>(f, std::string("adam_m_") + kParamNames[i], tr.adam.exp_avg[i]);
      put<float>(f, std::string("adam_v_") + kParamNames[i], tr.adam.exp_avg_sq[i]);
    }
    put<int64_t>(f, "since_fired", tr.since_fired);
    put<float>(f, "threshold", tr.threshold);
    put<float>(f, "data_mean", tr.data_mean);
    std::vector<int64_t> ord = order;
    if (ord.empty()) ord.push_back(-1);  // HDF5 datasets cannot be empty here; -1 = no order yet
    h5::write_dataset<int64_t>(f.get(), "data_order", ord.data(), {static_cast<int64_t>(ord.size())});
    h5::write_attr(f.get(), "step", tr.step_count);
    h5::write_attr(f.get(), "epoch", rs.epoch);
    h5::write_attr(f.get(), "scale", rs.scale);
    h5::write_attr(f.get(), "dim", d);
    h5::write_attr(f.get(), "n_rows", n_rows);
    std::ostringstream os;
    os << rng.engine();
    h5::write_attr(f.get(), "rng", os.str());
    h5::flush(f);
  }
  out.commit();
}

void load_checkpoint(const std::string& path, Trainer& tr, RunState& rs, Rng& rng, const TrainParams& p, int64_t d,
                     int64_t n_rows, torch::Device dev) {
  if (!std::filesystem::exists(path)) throw_input("{}: checkpoint not found", path);
  h5::File f = h5::open_read(path);
  const std::string format = h5::read_format(f);
  if (format != kSaeCheckpointFormat)
    throw_input("{}: format '{}', expected '{}' (an SAE checkpoint, OUT.ckpt of `sae train`)", path,
                format.empty() ? "none" : format, kSaeCheckpointFormat);
  h5::check_header(f, kSaeCheckpointFormat);
  const int64_t saved_d = get_int(f, "dim"), saved_rows = get_int(f, "n_rows");
  if (saved_d != d) throw_input("{}: checkpoint dim {}, embeddings have dim {}", path, saved_d, d);
  if (saved_rows != n_rows)
    throw_input("{}: checkpoint of a run on {} rows, embeddings have {} rows (a different data file?)", path,
                saved_rows, n_rows);
  TrainParams saved;
  try {
    saved = h5::read_attr_json(f, f.get(), "config").get<TrainParams>();
  } catch (const nlohmann::json::exception& e) {
    throw_input("{}: checkpoint config is not an SAE training config ({})", path, e.what());
  }
  const int64_t n_saved = latent_count(saved, d), n = latent_count(p, d);
  if (saved.arch != p.arch || n_saved != n || saved.k != p.k)
    throw_input("{}: checkpoint is arch {} with {} latents and k {}; the run asks arch {} with {} latents and k {}",
                path, saved.arch, n_saved, saved.k, p.arch, n, p.k);
  if (auto sizes_saved = nested_sizes(saved, n), sizes_run = nested_sizes(p, n); sizes_saved != sizes_run)
    throw_input("{}: checkpoint has nested sizes [{}]; the run asks [{}]", path, fmt::join(sizes_saved, ", "),
                fmt::join(sizes_run, ", "));
  const auto w = tr.t.params();
  const std::vector<int64_t> shapes[4] = {{d, n}, {n}, {n, d}, {d}};
  for (size_t i = 0; i < w.size(); ++i) {
    *w[i] = get<float>(f, kParamNames[i], shapes[i], dev);
    tr.adam.exp_avg[i] = get<float>(f, std::string("adam_m_") + kParamNames[i], shapes[i], dev);
    tr.adam.exp_avg_sq[i] = get<float>(f, std::string("adam_v_") + kParamNames[i], shapes[i], dev);
  }
  tr.since_fired = get<int64_t>(f, "since_fired", {n}, dev);
  tr.threshold = get<float>(f, "threshold", {}, dev);
  tr.data_mean = get<float>(f, "data_mean", {d}, dev);
  tr.step_count = get_int(f, "step");
  rs.epoch = get_int(f, "epoch");
  rs.scale = h5::read_attr_double(f.get(), "scale").value_or(0.0);
  if (tr.step_count < 0 || rs.epoch < 0 || !(rs.scale > 0) || !std::isfinite(rs.scale))
    throw_input("{}: checkpoint has step {}, epoch {}, scale {}; expected non-negative counts and a positive scale",
                path, tr.step_count, rs.epoch, rs.scale);
  std::istringstream is(h5::read_attr_string(f.get(), "rng").value_or(""));
  is >> rng.engine();
  if (!is) throw_input("{}: checkpoint attribute 'rng' is not a generator state", path);
}

}  // namespace cl::sae
