// The demo world: synthetic dermoscopy-like images with known concept flags, a diagnosis that
// depends only on lesion structures, and a train split where hair is spuriously correlated with
// malignancy. Everything is generated from code and a seed (no downloads).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "core/progress.h"

namespace cl::demo {

struct DemoWorldParams {
  int64_t n = 4000;
  uint64_t seed = 0;
  int image_size = 224;
  double train_fraction = 0.7;
  double p_structure = 0.35;           // P(flag) for each structure, independently
  double p_artifact = 0.3;             // P(flag) for ruler, ink, gel_bubble, dark_corner (and hair in test)
  int malignant_threshold = 4;         // malignant when the checklist score reaches this
  double label_noise = 0.1;            // then the label flips with this probability
  double hair_p_malignant_train = 0.6; // train: P(hair | malignant)
  double hair_p_benign_train = 0.1;    // train: P(hair | benign)
  double hair_p_test = 0.3;            // test: P(hair), independent of the label
  int jpeg_quality = 92;
  int workers = 0;                     // rendering threads; 0 = one per core
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DemoWorldParams, n, seed, image_size, train_fraction, p_structure,
                                                p_artifact, malignant_threshold, label_noise, hair_p_malignant_train,
                                                hair_p_benign_train, hair_p_test, jpeg_quality, workers)

// Flag names in CSV column order.
const std::vector<std::string>& structure_names();  // pigment_network ... multiple_colours
const std::vector<std::string>& artifact_names();   // hair, ruler, ink, gel_bubble, dark_corner
std::vector<std::string> concept_names();           // structures then artifacts

// Score of the 7-point-checklist-like rule: 2 x (pigment_network + blue_white_veil +
// multiple_colours) + streaks + dots_globules + regression + irregular_border.
int checklist_score(const std::vector<uint8_t>& structures);

struct DemoImage {
  std::string id;                  // "img_00042.jpg"
  std::string split;               // "train" | "test"
  bool malignant = false;
  bool malignant_by_rule = false;  // before label noise
  std::vector<uint8_t> flags;      // concept_names() order
  uint64_t render_seed = 0;
};

// Draws the ground truth of every image (sequentially, so it does not depend on threading).
std::vector<DemoImage> draw_world(const DemoWorldParams& p);

// Renders one image (BGR uint8, size x size) from its flags; deterministic in render_seed. With
// masks, also where each concept is drawn: per concept (concept_names() order) a CV_8U size x size
// mask (255 where the concept shows, after what later layers hide), empty when its flag is off.
// Drawing the masks draws nothing at random, so the image is the same with or without them.
cv::Mat render_image(const DemoImage& im, int size, std::vector<cv::Mat>* masks = nullptr);

struct DemoWorldReport {
  std::string dir, meta_csv, images_dir, masks_path, encoder_path, encoder_json;
  int64_t n = 0, n_train = 0, n_test = 0, n_malignant = 0;
  double seconds = 0;
};
nlohmann::json to_json(const DemoWorldReport& r);

// Writes DIR/images/*.jpg, DIR/meta.csv (ImageID, label, malignant, split, one 0/1 column per
// concept flag), DIR/masks.h5 (where each concept is, a conceptlab.masks file: explain/masks.h)
// and the demo encoder DIR/encoder.pt + DIR/encoder.json. Creates DIR when missing.
// Marks a folder as holding a demo world (written first, so a half-written world is one too).
inline constexpr const char* kWorldMarker = ".conceptlab-demo-world";
inline constexpr const char* kWorldMasks = "masks.h5";
// Readies dir for a new world: a missing or empty folder is fine; a previous world's images,
// metadata and encoder are removed (no stale image survives); any other non-empty folder is
// refused (InputError), so demo-data never mixes a world into a user's files.
void prepare_world_dir(const std::string& dir);

DemoWorldReport generate_demo_world(const DemoWorldParams& p, const std::string& dir,
                                    ProgressSink& progress = silent_progress());

}  // namespace cl::demo
