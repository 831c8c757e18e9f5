// Filtering and sorting the latent browser (see latent_table.h).
#include "viewer/model/latent_table.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "core/parse.h"

namespace cl::viewer {

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

double sort_key(const LatentRow& r, const LatentFilter& f) {
  switch (f.sort) {
    case LatentColumn::latent: return double(r.latent);
    case LatentColumn::score: return std::isnan(r.score) ? -1e300 : r.score;
    case LatentColumn::firing_rate: return r.firing_rate;
    case LatentColumn::mean: return r.mean;
    case LatentColumn::max: return r.max;
    case LatentColumn::weight:
      return f.weight_class >= 0 && f.weight_class < static_cast<int>(r.class_weight.size())
                 ? r.class_weight[static_cast<size_t>(f.weight_class)]
                 : std::abs(max_weight(r));
    case LatentColumn::rank: return r.rank == 0 ? 1e300 : double(r.rank);
    default: return 0;
  }
}

}  // namespace

double max_weight(const LatentRow& r) {
  if (r.class_weight.size() == 2) return r.class_weight[1];  // binary: the positive class (class 0 is its negation)
  double w = 0;
  for (double x : r.class_weight)
    if (std::abs(x) > std::abs(w)) w = x;
  return w;
}

std::vector<int64_t> filter_latents(const std::vector<LatentRow>& rows, const LatentFilter& f) {
  std::string q = lower(f.query);
  while (!q.empty() && std::isspace(static_cast<unsigned char>(q.back()))) q.pop_back();
  while (!q.empty() && std::isspace(static_cast<unsigned char>(q.front()))) q.erase(q.begin());
  double as_index = -1;
  const bool numeric = !q.empty() && parse_number(q[0] == '#' ? q.substr(1) : q, as_index);
  std::vector<int64_t> out;
  for (const auto& r : rows) {
    if (f.named_only && r.name.empty()) continue;
    if (f.used_only && max_weight(r) == 0) continue;
    if (f.hide_dead && r.firing_rate == 0) continue;
    if (!q.empty()) {
      const bool name_hit = lower(r.name).find(q) != std::string::npos;
      const bool index_hit = numeric && double(r.latent) == as_index;
      if (!name_hit && !index_hit) continue;
    }
    out.push_back(r.latent);
  }
  auto by = [&](int64_t a, int64_t b) {
    const auto& ra = rows[static_cast<size_t>(a)];
    const auto& rb = rows[static_cast<size_t>(b)];
    if (f.sort == LatentColumn::name || f.sort == LatentColumn::origin) {
      const std::string& x = f.sort == LatentColumn::name ? ra.name : ra.origin;
      const std::string& y = f.sort == LatentColumn::name ? rb.name : rb.origin;
      if (x.empty() != y.empty()) return y.empty();  // named first either way
      return f.ascending ? x < y : x > y;
    }
    const double x = sort_key(ra, f), y = sort_key(rb, f);
    if (f.sort == LatentColumn::rank && (ra.rank == 0) != (rb.rank == 0)) return rb.rank == 0;
    return f.ascending ? x < y : x > y;
  };
  std::stable_sort(out.begin(), out.end(), by);
  return out;
}

}  // namespace cl::viewer
