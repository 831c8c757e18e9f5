// Held-out concept alignment of an SAE's image activations: per 0/1 column, the best latent chosen
// by AUROC on training images, scored by AUROC on held-out images (one seeded 80/20 image split,
// the same for every activations file with the same ids), and the mean over columns. Compares SAEs
// (pooled vs patch, plain vs nested) on real annotations, e.g. derm7pt:
//   concept_heldout A.h5 ../shared/derm7pt/meta.csv pigment_network,streaks,... [test_fraction] [seed]
#include <cmath>
#include <cstdio>
#include <string>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "core/activations.h"
#include "core/csv.h"
#include "core/parse.h"
#include "core/random.h"
#include "explain/concepts.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: concept_heldout ACTS.h5 META.csv col1,col2,... [test_fraction 0.2] [seed 0]\n");
    return 2;
  }
  try {
    const cl::Activations a = cl::read_activations(argv[1]);
    const cl::CsvTable meta = cl::read_csv(argv[2]);
    const double test_fraction = argc > 4 ? std::stod(argv[4]) : 0.2;
    const uint64_t seed = argc > 5 ? std::stoull(argv[5]) : 0;
    std::vector<std::string> cols;
    for (size_t s = 0, e; s <= std::string(argv[3]).size(); s = e + 1) {
      const std::string all = argv[3];
      e = std::min(all.find(',', s), all.size());
      cols.push_back(all.substr(s, e - s));
    }
    std::unordered_map<std::string, size_t> row_of;
    const size_t id_col = meta.col("ImageID");
    for (size_t r = 0; r < meta.rows.size(); ++r) row_of[meta.rows[r][id_col]] = r;
    // The split: a seeded draw per image in file order.
    cl::Rng rng(cl::splitmix64(seed));
    std::vector<char> test(a.ids.size());
    for (auto& t : test) t = rng.uniform() < test_fraction;
    std::vector<cl::explain::ConceptLabels> train_labels, test_labels;
    for (const auto& c : cols) {
      const size_t ci = meta.col(c);
      cl::explain::ConceptLabels tr(a.ids.size(), -1), te(a.ids.size(), -1);
      for (size_t i = 0; i < a.ids.size(); ++i) {
        const auto it = row_of.find(a.ids[i]);
        double v = 0;
        if (it == row_of.end() || !cl::parse_number(meta.rows[it->second][ci], v)) continue;
        (test[i] ? te : tr)[i] = v > 0.5 ? 1 : 0;
      }
      train_labels.push_back(tr);
      test_labels.push_back(te);
    }
    const cl::CscMatrix csc = cl::to_csc(a.acts);
    const auto train_auc = cl::explain::latent_aurocs(csc, train_labels);
    const auto test_auc = cl::explain::latent_aurocs(csc, test_labels);
    double sum = 0;
    int n = 0;
    fmt::print("{}: {} images, {} latents, held-out fraction {}, seed {}\n", argv[1], a.ids.size(), a.acts.n_cols,
               test_fraction, seed);
    fmt::print("{:<24} {:>7} {:>11} {:>11} {:>9}\n", "column", "latent", "train AUROC", "test AUROC", "test pos");
    for (size_t c = 0; c < cols.size(); ++c) {
      int64_t best = -1;
      for (int64_t l = 0; l < a.acts.n_cols; ++l)
        if (!std::isnan(train_auc[c][l]) && (best < 0 || train_auc[c][l] > train_auc[c][best])) best = l;
      int64_t pos = 0;
      for (auto v : test_labels[c]) pos += v == 1;
      const double t = best >= 0 ? test_auc[c][best] : NAN;
      fmt::print("{:<24} {:>7} {:>11.3f} {:>11.3f} {:>9}\n", cols[c], best, best >= 0 ? train_auc[c][best] : NAN, t, pos);
      if (!std::isnan(t)) sum += t, ++n;
    }
    fmt::print("mean held-out best-latent AUROC over {} columns: {:.3f}\n", n, n ? sum / n : NAN);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "concept_heldout: %s\n", e.what());
    return 1;
  }
  return 0;
}
