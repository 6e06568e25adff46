// zinf::hf — GPT-2 tensor name and orientation rules.
#include "hf/names.h"

namespace zinf::hf {
namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool starts_with(const std::string& s, const std::string& head) { return s.compare(0, head.size(), head) == 0; }

}  // namespace

std::string gpt2_param_name(const std::string& name) {
  if (starts_with(name, "transformer.") || starts_with(name, "lm_head.")) return name;
  return "transformer." + name;
}

bool gpt2_is_buffer(const std::string& name) {
  return ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias");
}

bool gpt2_is_conv1d_weight(const std::string& param_name) {
  if (!starts_with(param_name, "transformer.h.")) return false;
  return ends_with(param_name, ".attn.c_attn.weight") || ends_with(param_name, ".attn.c_proj.weight") ||
         ends_with(param_name, ".mlp.c_fc.weight") || ends_with(param_name, ".mlp.c_proj.weight");
}

}  // namespace zinf::hf
