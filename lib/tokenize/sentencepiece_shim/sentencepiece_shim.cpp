// zinf::tokenize — libsentencepiece behind a C interface, in a library of its own.
// Debian's libsentencepiece carries its own copy of protobuf-lite with the
// same symbol names as the libprotobuf that LibTorch loads; linked into one
// binary, its static initialisers run against the wrong protobuf and crash
// before main. tokenize/load.cpp loads this library with dlopen(RTLD_LOCAL |
// RTLD_DEEPBIND), so SentencePiece binds to its own protobuf and nothing else
// sees it. Every function reports failure by return value; none throws.
#include <sentencepiece_processor.h>

#include <cstring>
#include <string>
#include <vector>

extern "C" {

// The processor for model file `path`, or nullptr with the reason in err.
__attribute__((visibility("default"))) void* zinf_sp_load(const char* path, char* err, std::size_t err_len) {
  auto* sp = new sentencepiece::SentencePieceProcessor();
  const auto st = sp->Load(path);
  if (st.ok()) return sp;
  std::snprintf(err, err_len, "%s", st.ToString().c_str());
  delete sp;
  return nullptr;
}

__attribute__((visibility("default"))) void zinf_sp_free(void* sp) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(sp);
}

// 0: piece count, 1: bos, 2: eos, 3: unk (-1 when the model has none).
__attribute__((visibility("default"))) int zinf_sp_fact(void* handle, int which) {
  const auto* sp = static_cast<sentencepiece::SentencePieceProcessor*>(handle);
  switch (which) {
    case 0: return sp->GetPieceSize();
    case 1: return sp->bos_id();
    case 2: return sp->eos_id();
    default: return sp->unk_id();
  }
}

// Ids of text[0, len) into out (cap entries); returns how many there are
// (call again with a larger out when it exceeds cap), -1 on failure.
__attribute__((visibility("default"))) long zinf_sp_encode(void* handle, const char* text, std::size_t len, int* out,
                                                            std::size_t cap) {
  std::vector<int> ids;
  if (!static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Encode(std::string(text, len), &ids).ok()) return -1;
  std::memcpy(out, ids.data(), sizeof(int) * std::min(cap, ids.size()));
  return long(ids.size());
}

// The text of ids[0, n) into out (cap bytes); returns its length, -1 on failure.
__attribute__((visibility("default"))) long zinf_sp_decode(void* handle, const int* ids, std::size_t n, char* out,
                                                            std::size_t cap) {
  std::string text;
  if (!static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Decode(std::vector<int>(ids, ids + n), &text).ok())
    return -1;
  std::memcpy(out, text.data(), std::min(cap, text.size()));
  return long(text.size());
}

__attribute__((visibility("default"))) int zinf_sp_piece_to_id(void* handle, const char* piece) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle)->PieceToId(piece);
}

// The piece of `id` into out (cap bytes); returns its length.
__attribute__((visibility("default"))) long zinf_sp_id_to_piece(void* handle, int id, char* out, std::size_t cap) {
  const std::string piece = static_cast<sentencepiece::SentencePieceProcessor*>(handle)->IdToPiece(id);
  std::memcpy(out, piece.data(), std::min(cap, piece.size()));
  return long(piece.size());
}

}  // extern "C"
