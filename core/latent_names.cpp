// Latent names file I/O (schema in latent_names.h).
#include "core/latent_names.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/h5.h"

namespace cl {

namespace {
std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
bool known_origin(const std::string& o) { return o == "annotation" || o == "direction" || o == "user"; }
}  // namespace

const LatentName* LatentNames::find(int64_t latent) const {
  auto it = std::lower_bound(names.begin(), names.end(), latent,
                             [](const LatentName& n, int64_t l) { return n.latent < l; });
  return it != names.end() && it->latent == latent ? &*it : nullptr;
}

std::vector<int64_t> LatentNames::latents_named(const std::string& name) const {
  std::vector<const LatentName*> hits;
  const std::string want = lower(name);
  for (const auto& n : names)
    if (lower(n.name) == want) hits.push_back(&n);
  std::stable_sort(hits.begin(), hits.end(), [](const LatentName* a, const LatentName* b) {
    const double sa = std::isnan(a->score) ? -1e300 : a->score, sb = std::isnan(b->score) ? -1e300 : b->score;
    return sa > sb;
  });
  std::vector<int64_t> out;
  for (auto* h : hits) out.push_back(h->latent);
  return out;
}

void LatentNames::set(const LatentName& n) {
  auto it = std::lower_bound(names.begin(), names.end(), n.latent,
                             [](const LatentName& a, int64_t l) { return a.latent < l; });
  if (it != names.end() && it->latent == n.latent) *it = n;
  else names.insert(it, n);
}

void write_latent_names(const std::string& path, const LatentNames& n, const std::vector<std::string>& inputs) {
  std::vector<int64_t> latent;
  std::vector<std::string> name, origin;
  std::vector<double> score;
  for (const auto& x : n.names) {
    CL_ASSERT(known_origin(x.origin), "latent name origin must be annotation, direction or user");
    latent.push_back(x.latent), name.push_back(x.name), origin.push_back(x.origin), score.push_back(x.score);
  }
  AtomicOutput out(path, inputs);
  {
    h5::File f = h5::create(out.temp_path());
    f.path = path;
    h5::write_header(f, kNamesFormat, n.config.dump());
    const int64_t m = static_cast<int64_t>(latent.size());
    h5::write_dataset<int64_t>(f.get(), "latent", latent.data(), {m});
    h5::write_strings(f.get(), "name", name);
    h5::write_strings(f.get(), "origin", origin);
    h5::write_dataset<double>(f.get(), "score", score.data(), {m});
    h5::flush(f);
  }
  out.commit();
}

LatentNames read_latent_names(const std::string& path) {
  h5::File f = h5::open_read(path);
  h5::check_header(f, kNamesFormat);
  LatentNames n;
  n.config = h5::read_attr_json(f, f.get(), "config");
  auto latent = h5::read_dataset<int64_t>(f, f.get(), "latent");
  auto name = h5::read_strings(f, f.get(), "name");
  auto origin = h5::read_strings(f, f.get(), "origin");
  auto score = h5::read_dataset<double>(f, f.get(), "score");
  if (name.size() != latent.size() || origin.size() != latent.size() || score.size() != latent.size())
    throw_input("{}: {} latents, {} names, {} origins, {} scores; expected equal counts", path, latent.size(),
                name.size(), origin.size(), score.size());
  for (size_t i = 0; i < latent.size(); ++i) {
    if (latent[i] < 0) throw_input("{}: latent {} at entry {}, expected >= 0", path, latent[i], i);
    if (i > 0 && latent[i] <= latent[i - 1]) throw_input("{}: latents not strictly increasing at entry {}", path, i);
    if (!known_origin(origin[i]))
      throw_input("{}: origin '{}' at entry {}, expected annotation, direction or user", path, origin[i], i);
    n.names.push_back({latent[i], name[i], origin[i], score[i]});
  }
  return n;
}

}  // namespace cl
