// Localisation of concept latents against ground-truth masks (`explain localize`): per concept,
// the pointing game (the box of the image's most active patch of the concept's latent overlaps the
// concept's mask; over the images that contain the concept) and the patch-level AUROC of the
// latent's activation against "the patch overlaps the mask", next to the same figures for random
// live latents (the control).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/activations.h"
#include "core/patches.h"
#include "explain/masks.h"

namespace cl::explain {

struct LocalizeParams {
  // The control: this many latents drawn at random among those that fire somewhere in the patch
  // activations and are no concept's latent (the same set for every concept), figures averaged.
  int random_latents = 20;
  uint64_t seed = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(LocalizeParams, random_latents, seed)
void validate(const LocalizeParams& p);

struct LocalizeRow {
  std::string concept_name;
  int64_t latent = -1;
  int64_t n_images = 0;            // images whose mask of the concept is not empty
  int64_t n_patches_pos = 0, n_patches = 0;
  double pointing = 0;             // fraction of those images where the latent's peak patch overlaps the mask
  double patch_auroc = 0;          // NaN when no patch or every patch overlaps
  double control_pointing = 0, control_auroc = 0;  // means over the random latents
  int64_t n_controls = 0;                          // how many there were (fewer when few latents fire)
};
nlohmann::json to_json(const LocalizeRow& r);

// Whether a patch's box overlaps the mask: a pixel of coverage >= 128 inside it. The one rule the
// pointing game and the patch labels share.
bool patch_in_mask(const cv::Mat& mask, const Box& box);

// latents: (concept, latent) pairs; every concept must be in masks. Reads patch_acts image by image.
std::vector<LocalizeRow> localize(const ActivationsReader& patch_acts, const PatchGeometry& g, const MaskSource& masks,
                                  const std::vector<std::pair<std::string, int64_t>>& latents, const LocalizeParams& p);

}  // namespace cl::explain
