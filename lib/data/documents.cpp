// zinf::data — a dataset's documents: the table behind document-aware windows
// and prompt masking, read from the shards' .idx files (or one document per
// text file) on first use.
#include <algorithm>
#include <iterator>
#include <string>

#include "core/error.h"
#include "core/fs.h"
#include "data/shard_writer.h"
#include "data/token_file.h"

namespace zinf::data {

std::vector<Document>::const_iterator document_at(const std::vector<Document>& docs, std::int64_t at) {
  const auto after = std::upper_bound(docs.begin(), docs.end(), at,
                                      [](std::int64_t pos, const Document& d) { return pos < d.start; });
  return std::prev(after);
}

const std::vector<Document>& Tokens::documents() const {
  if (documents_known_) return documents_;
  std::vector<Document> docs;
  std::vector<Span> runs;
  for (std::size_t k = 0; k < shards_.size(); ++k) {
    const TokenShard& s = shards_[k];
    if (s.format == TokenFormat::kBytes) {  // a text file is one document
      docs.push_back({starts_[k], 0});
      continue;
    }
    const std::string idx = doc_index_path(s.path);
    if (!fs::exists(idx))
      throw UsageError("'" + s.path + "' has no document index beside it (" + idx + ")",
                       "document-aware windows need the .idx files zinf tokenize writes with its shards; use "
                       "zinf.data.windows = stream for token files without them");
    const DocIndex d = read_doc_index(idx);
    if (d.tokens != s.count)
      throw UsageError("document index '" + idx + "' counts " + std::to_string(d.tokens) + " tokens but '" + s.path +
                           "' holds " + std::to_string(s.count),
                       "regenerate both with zinf tokenize");
    // A shard that begins inside the previous shard's last document adds no
    // start for those tokens; one that does not begins a document.
    if (!d.continues && (d.starts.empty() || d.starts[0] != 0)) docs.push_back({starts_[k], 0});
    for (std::size_t i = 0; i < d.starts.size(); ++i)
      docs.push_back({starts_[k] + d.starts[i], d.prompts.empty() ? 0 : d.prompts[i]});
    for (const ContextRun& r : d.context)  // offsets from the start of a document that starts here
      runs.push_back({starts_[k] + d.starts[std::size_t(r.document)] + r.offset, r.count});
  }
  if (docs.empty() || docs[0].start != 0) docs.insert(docs.begin(), Document{0, 0});
  documents_ = std::move(docs);
  context_runs_ = std::move(runs);
  documents_known_ = true;
  return documents_;
}

const std::vector<Span>& Tokens::context_runs() const {
  documents();
  return context_runs_;
}

bool Tokens::has_prompts() const {
  if (has_prompts_ >= 0) return has_prompts_ == 1;
  bool any = false;
  if (documents_known_) {
    any = !context_runs_.empty() ||
          std::any_of(documents_.begin(), documents_.end(), [](const Document& d) { return d.prompt > 0; });
  } else {
    for (const TokenShard& s : shards_) {
      if (s.format == TokenFormat::kBytes) continue;
      const std::string idx = doc_index_path(s.path);
      if (fs::exists(idx) && doc_index_has_prompts(idx)) {
        any = true;
        break;
      }
    }
  }
  has_prompts_ = any ? 1 : 0;
  return any;
}

}  // namespace zinf::data
