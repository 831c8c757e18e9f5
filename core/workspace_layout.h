// The files of a `conceptlab run` workspace, named once: the pipeline writes them, the viewer and
// the tests read them. Which step writes which file (and so what deleting one re-runs) is
// pipeline::step_outputs.
#pragma once

#include <string>

namespace cl::workspace {

inline constexpr const char* kState = "workspace.json";  // config, step keys, outputs
inline constexpr const char* kEmbeddings = "embeddings.h5";
inline constexpr const char* kSae = "sae.h5";
inline constexpr const char* kSaeLog = "sae.h5.log.jsonl";       // per-epoch training log (not with sae_sweep)
inline constexpr const char* kActivations = "activations.h5";
// With embed.patches: the patch grid beside the embeddings, the SAE trained on its patches, and
// the patch activations beside the (pooled) image activations.
inline constexpr const char* kPatchEmbeddings = "embeddings.patches.h5";
inline constexpr const char* kPatchActivations = "activations.patches.h5";
inline constexpr const char* kCbm = "cbm.h5";
inline constexpr const char* kCbmUnbiased = "cbm_unbiased.h5";  // fitted without the subgroup's bias
inline constexpr const char* kProbe = "probe.h5";
inline constexpr const char* kClassify = "classify.json";
inline constexpr const char* kIndex = "activations.index.h5";   // beside the activations, as `explain stats` names it
inline constexpr const char* kNames = "activations.names.h5";   // ditto `explain match`; the viewer's renames too
inline constexpr const char* kMatch = "match.json";
inline constexpr const char* kName = "name.json";                // naming by direction (with a vocabulary)
inline constexpr const char* kLocalize = "localize.json";        // with data.masks: where named latents fire
inline constexpr const char* kGlobal = "global.json";
inline constexpr const char* kGlobalPng = "global.png";
inline constexpr const char* kInterventions = "interventions.json";
inline constexpr const char* kCurve = "curve.csv";
inline constexpr const char* kCurvePng = "curve.png";
// With run_bench: `sae bench`'s outputs in a folder of their own.
inline constexpr const char* kBenchDir = "bench";
inline constexpr const char* kBench = "bench/bench.json";
inline constexpr const char* kBenchCsv = "bench/bench.csv";
inline constexpr const char* kBenchMd = "bench/bench.md";
inline constexpr const char* kReport = "report.json";
inline constexpr const char* kReportMd = "report.md";
inline constexpr const char* kEdits = "edits.json";              // the viewer's default Save

// The per-concept montage of the explain step: "montage_<column>.png".
inline std::string montage_file(const std::string& concept_col) { return "montage_" + concept_col + ".png"; }

}  // namespace cl::workspace
