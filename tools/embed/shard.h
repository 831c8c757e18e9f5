// Sharded embedding export: `embed --shard I/N` embeds blocks I, I+N, I+2N, ... of shard_block
// inputs each (what N machines or a Slurm array run), and merge_embeddings joins the N parts into
// the file one unsharded run writes: rows in input order, the same ids, columns and config.
// Each part records its layout in its config ("shard": index, count, block, n_inputs and the rows
// it wrote per block, so images skipped with --skip-bad keep the order recoverable).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/progress.h"

namespace cl::embed {

struct Shard {
  int64_t index = 0, count = 1;  // count 1 = the whole input list
};

// "I/N" with 0 <= I < N ("" = 0/1); UsageError otherwise.
Shard parse_shard(const std::string& spec);

// Positions (into the full input list of n_inputs) that shard s embeds, in input order.
std::vector<int64_t> shard_positions(int64_t n_inputs, const Shard& s, int64_t block);

struct MergeReport {
  std::string out;
  int64_t n_parts = 0, n_rows = 0, dim = 0, n_inputs = 0;
};

// Joins the parts of one sharded export (any order on the command line) into out_path. InputError
// naming the files when they are not parts of one export: not a shard, another count, block or
// input list, a missing or repeated index, configs (encoder, preprocessing, batch, device, source)
// that differ (naming the key and both values), another dimension, or ids repeated across parts.
MergeReport merge_embeddings(const std::vector<std::string>& part_paths, const std::string& out_path,
                             ProgressSink& progress = silent_progress());

}  // namespace cl::embed
