// Optimal one-to-one assignment (the Hungarian algorithm with potentials, O(r^2 c)) for a
// rectangular cost matrix: what naming latents by direction needs, one concept per latent and
// one latent per concept, with the best total similarity.
#pragma once

#include <cstdint>
#include <vector>

namespace cl::explain {

// cost [rows, cols] row-major (any finite values, ties allowed). Returns for each row the column
// assigned to it, minimising the total cost; when rows > cols, rows - cols rows get -1. Every
// column is used at most once.
std::vector<int64_t> assign_min_cost(const std::vector<double>& cost, int64_t rows, int64_t cols);

// The same, maximising the total of `score`.
std::vector<int64_t> assign_max_score(const std::vector<double>& score, int64_t rows, int64_t cols);

}  // namespace cl::explain
