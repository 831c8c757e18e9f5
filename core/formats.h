// The `format` root attribute of every conceptlab file, in one place so dispatch code (inspect,
// readers that accept several formats) compares against constants, never string literals.
#pragma once

namespace cl {

inline constexpr const char* kEmbeddingsFormat = "conceptlab.embeddings";
inline constexpr const char* kPatchEmbeddingsFormat = "conceptlab.patch_embeddings";
inline constexpr const char* kActivationsFormat = "conceptlab.activations";
inline constexpr const char* kSaeFormat = "conceptlab.sae";
inline constexpr const char* kLinearFormat = "conceptlab.linear";
inline constexpr const char* kVocabFormat = "conceptlab.vocab";
inline constexpr const char* kSaeCheckpointFormat = "conceptlab.sae_checkpoint";
inline constexpr const char* kIndexFormat = "conceptlab.index";
inline constexpr const char* kNamesFormat = "conceptlab.names";

}  // namespace cl
