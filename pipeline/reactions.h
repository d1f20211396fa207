// Campaign reactions (impressions, clicks, conversions per asset) ingested from a CSV into
// RUN_DIR/reactions.jsonl, and the A/B comparison of variants with Wilson / Newcombe intervals and
// a two-proportion z-test that `studio kpi report` shows. Formats and formulas: docs/kpi.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace studio {

// One ingested row (a line of RUN_DIR/reactions.jsonl): the asset's work id and variant resolved.
struct Reaction {
  std::string work_id;  // the base (original) asset's work id
  std::string variant;  // the asset's variant ("" when the run has none)
  std::string output;   // as named in the CSV, when it named an output
  std::string date;     // optional, free text from the CSV
  int64_t impressions = 0, clicks = 0, conversions = 0;
  std::string source;    // the CSV's file name
  std::size_t line = 0;  // its line in the CSV
  std::string ingested;  // ISO 8601 UTC

  nlohmann::json to_json() const;
  static Reaction from_json(const nlohmann::json& j);  // FormatError when malformed
};

// What the CSV's asset keys are resolved against (built from the run's ledger and journals).
struct ReactionAssets {
  std::map<std::string, std::string> variant_of;      // base work id -> its variant
  std::map<std::string, std::string> base_of;         // any work id (revisions too) -> base work id
  std::map<std::string, std::string> output_to_base;  // output (rel. to RUN_DIR) -> base work id
};
ReactionAssets reaction_assets(const std::filesystem::path& run_dir);

// Parses a reactions CSV (header row; RFC 4180 quoting, CRLF or LF, an optional UTF-8 BOM).
// Required columns: impressions, clicks, conversions and work_id or output; optional: variant,
// date. Every problem is collected and reported at once in one FormatError, one line each:
// `reactions.csv:4: column "clicks": found "x", expected an integer >= 0`.
std::vector<Reaction> parse_reactions_csv(const std::string& text, const std::string& file_name,
                                          const ReactionAssets& assets);

// RUN_DIR/reactions.jsonl (missing: none). A torn last line is dropped with a warning; another
// bad line is a FormatError naming the file and line.
std::vector<Reaction> read_reactions(const std::filesystem::path& run_dir,
                                     std::vector<std::string>* warnings = nullptr);

struct IngestResult {
  std::size_t rows = 0, total_rows = 0;                  // ingested now; now in reactions.jsonl
  std::size_t assets = 0;                                // distinct assets in this CSV
  int64_t impressions = 0, clicks = 0, conversions = 0;  // of this CSV
  bool replaced = false;
  std::filesystem::path file;  // RUN_DIR/reactions.jsonl
};
// Validates `csv` against the run and writes RUN_DIR/reactions.jsonl atomically: appended to the
// rows already there, or replacing them with `replace`. Nothing is written when the CSV has a
// problem.
IngestResult ingest_reactions(const std::filesystem::path& run_dir,
                              const std::filesystem::path& csv, bool replace);

// --- statistics ---

// A proportion or a difference of two, with a 95% interval (NaN when undefined).
struct Interval {
  double estimate = 0, low = 0, high = 0;
  bool excludes_zero() const;  // low > 0 or high < 0
};
constexpr double kZ95 = 1.959963984540054;  // the standard normal's 97.5% quantile
// Wilson score interval for k successes out of n.
Interval wilson_interval(int64_t k, int64_t n, double z = kZ95);
// Newcombe's hybrid score interval (method 10, Newcombe 1998) for p1 − p2.
Interval newcombe_interval(int64_t k1, int64_t n1, int64_t k2, int64_t n2, double z = kZ95);
// Two-sided p-value of the pooled two-proportion z-test of p1 = p2 (1 when both samples are all
// successes or all failures; NaN when a sample is empty).
double two_proportion_p_value(int64_t k1, int64_t n1, int64_t k2, int64_t n2);

// One variant's reactions and, for all but the baseline, its difference from the baseline.
struct AbVariant {
  std::string name;
  std::size_t assets = 0, rows = 0;
  int64_t impressions = 0, clicks = 0, conversions = 0;
  Interval ctr, cvr;            // clicks / impressions, conversions / clicks (Wilson)
  Interval ctr_diff, cvr_diff;  // this − baseline (Newcombe); NaN for the baseline
  double ctr_p = 0, cvr_p = 0;  // two-proportion z-test against the baseline; NaN for it
  bool baseline = false;
};
struct AbComparison {
  std::string baseline;
  std::vector<AbVariant> variants;  // the baseline first, then by name
  std::size_t rows = 0;
  bool empty() const { return variants.empty(); }
  // One sentence per non-baseline variant, e.g. `B vs A: CTR +1.20 pp (95% CI -0.31 to +2.71 pp,
  // p = 0.12), not significant at 5 %; CVR ...`.
  std::vector<std::string> verdicts() const;
  nlohmann::json to_json() const;
};
// Groups `rows` by variant. The baseline is `preferred_baseline` when it has rows, else the
// alphabetically first variant.
AbComparison compare_variants(const std::vector<Reaction>& rows,
                              const std::string& preferred_baseline);

}  // namespace studio
