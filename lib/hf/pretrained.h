// zinf::hf — the weights of a Hugging Face model directory, read piece by piece.
// Implements: PretrainedWeights, which opens DIR/model.safetensors or the
// shards that DIR/model.safetensors.index.json names, matches the files'
// tensors against the parameters a model expects (zinf names, [out, in]
// shapes) before any data is read — a missing tensor, an unexpected one, a
// shape or dtype that does not fit, a shard the index names that is not
// there: each an error naming the tensor, the file and both shapes — and then
// reads any element range of a parameter as fp32 (F32, BF16, F16 files),
// GPT-2's Conv1D weights transposed to zinf's orientation. Nothing larger
// than one parameter is ever in memory (transposed ones), usually much less.
// No LibTorch here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace zinf::hf {

class SafetensorsReader;

// A parameter as zinf holds it: its name (the HF state_dict name) and shape.
struct ExpectedTensor {
  std::string name;
  std::vector<std::int64_t> shape;
};

class PretrainedWeights {
 public:
  // model_type: "gpt2" applies GPT-2's file rules (optional "transformer."
  // prefix, attention-mask buffers skipped, Conv1D weights stored [in, out]);
  // tied: the LM head is the embedding, so a file's lm_head.weight is not a
  // separate parameter. Throws UsageError on any mismatch.
  PretrainedWeights(const std::string& dir, const std::string& model_type, bool tied,
                    const std::vector<ExpectedTensor>& params);
  ~PretrainedWeights();
  PretrainedWeights(const PretrainedWeights&) = delete;
  PretrainedWeights& operator=(const PretrainedWeights&) = delete;

  // Elements [first, first + count) of params[index] in zinf's orientation
  // (row-major over its shape), as fp32 into dst.
  void read(std::size_t index, std::int64_t first, std::int64_t count, float* dst) const;

  const std::string& dir() const { return dir_; }
  std::size_t file_count() const { return files_.size(); }

 private:
  struct Source {
    const SafetensorsReader* file = nullptr;
    std::string tensor;         // its name in the file
    int dtype = 0;              // hf::Dtype
    bool transposed = false;    // stored [in, out] (GPT-2 Conv1D)
    std::vector<std::int64_t> shape;  // zinf's
  };
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsReader>> files_;
  std::vector<std::string> file_names_;
  std::vector<Source> sources_;  // [params]
};

}  // namespace zinf::hf
