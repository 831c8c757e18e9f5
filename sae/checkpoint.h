// SAE training checkpoints (internal to sae/): every tensor of the training state, the Rng
// engine, the epoch and the data order, in an HDF5 file (`format` conceptlab.sae_checkpoint)
// like every other conceptlab file. Loading reads arrays and attributes only, so a checkpoint
// can never carry code; a resumed run on the CPU is bitwise identical to an uninterrupted one.
#pragma once

#include <string>
#include <vector>

#include "core/random.h"
#include "sae/trainer.h"

namespace cl::sae {

struct RunState {
  int64_t epoch = 0;  // epochs completed
  double scale = 1.0;
};

// Written to a temp file and renamed: an interrupted save leaves the previous checkpoint.
void save_checkpoint(const std::string& path, const Trainer& tr, const RunState& rs, const Rng& rng,
                     const TrainParams& p, int64_t d, int64_t n_rows, const std::vector<int64_t>& order);

// Restores tr, rs and rng. InputError naming the file when it is not a checkpoint, or when it
// was made by a run of another shape (dim, rows, arch, latents, k), naming both values.
void load_checkpoint(const std::string& path, Trainer& tr, RunState& rs, Rng& rng, const TrainParams& p, int64_t d,
                     int64_t n_rows, torch::Device device);

}  // namespace cl::sae
