#include "pipeline/reactions.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "pipeline/journal.h"
#include "pipeline/kpi.h"

namespace studio {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const Interval kNoInterval{kNaN, kNaN, kNaN};

std::string get_str(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  if (!it->is_string()) throw FormatError(fmt::format("\"{}\" is not a string", key));
  return it->get<std::string>();
}

int64_t get_count(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer())
    throw FormatError(fmt::format("\"{}\" is missing or not an integer", key));
  const int64_t v = it->get<int64_t>();
  if (v < 0) throw FormatError(fmt::format("\"{}\" is negative", key));
  return v;
}

// One CSV record: its fields and the line it starts on.
struct CsvRecord {
  std::size_t line = 0;
  std::vector<std::string> fields;
  std::vector<bool> quoted;
};

// RFC 4180: fields separated by ',', records by CRLF or LF; a quoted field may hold commas, line
// breaks and doubled quotes. Unquoted fields are trimmed of spaces and tabs. Blank lines are
// skipped. An unterminated quote is a problem reported with the line it starts on.
std::vector<CsvRecord> parse_csv(const std::string& text_in, const std::string& file_name,
                                 std::vector<std::string>& problems) {
  std::string_view text(text_in);
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  std::vector<CsvRecord> out;
  std::size_t i = 0, line = 1;
  auto trim = [](std::string s) {
    const auto b = s.find_first_not_of(" \t");
    if (b == std::string::npos) return std::string();
    const auto e = s.find_last_not_of(" \t");
    return s.substr(b, e - b + 1);
  };
  while (i < text.size()) {
    CsvRecord rec;
    rec.line = line;
    bool end_of_record = false;
    while (!end_of_record) {
      std::string field;
      bool quoted = false;
      // Leading spaces before an opening quote are allowed.
      std::size_t k = i;
      while (k < text.size() && (text[k] == ' ' || text[k] == '\t')) ++k;
      if (k < text.size() && text[k] == '"') {
        quoted = true;
        const std::size_t quote_line = line;
        i = k + 1;
        bool closed = false;
        while (i < text.size()) {
          const char c = text[i];
          if (c == '"') {
            if (i + 1 < text.size() && text[i + 1] == '"') {
              field += '"';
              i += 2;
              continue;
            }
            closed = true;
            ++i;
            break;
          }
          if (c == '\n') ++line;
          field += c;
          ++i;
        }
        if (!closed) {
          problems.push_back(fmt::format(
              "{}:{}: a quoted field is never closed (a '\"' is missing)", file_name, quote_line));
          return out;
        }
        // Up to the separator: only spaces may follow a closing quote.
        while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
        if (i < text.size() && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
          problems.push_back(fmt::format(
              "{}:{}: text after a closing quote (write a quote inside a quoted field as \"\")",
              file_name, line));
          while (i < text.size() && text[i] != ',' && text[i] != '\n') ++i;
        }
      } else {
        while (i < text.size() && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
          if (text[i] == '"') {
            problems.push_back(
                fmt::format("{}:{}: a quote inside an unquoted field (quote the whole field)",
                            file_name, line));
          }
          field += text[i++];
        }
        field = trim(field);
      }
      rec.fields.push_back(std::move(field));
      rec.quoted.push_back(quoted);
      if (i >= text.size()) {
        end_of_record = true;
      } else if (text[i] == ',') {
        ++i;
      } else {  // '\r' or '\n'
        if (text[i] == '\r') ++i;
        if (i < text.size() && text[i] == '\n') ++i;
        ++line;
        end_of_record = true;
      }
    }
    const bool blank = rec.fields.size() == 1 && rec.fields[0].empty() && !rec.quoted[0];
    if (!blank) out.push_back(std::move(rec));
  }
  return out;
}

// A non-negative integer written with digits only (at most 18 of them).
bool parse_count(const std::string& s, int64_t& v) {
  if (s.empty() || s.size() > 18) return false;
  v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  return true;
}

}  // namespace

// --- rows ------------------------------------------------------------------------------------

json Reaction::to_json() const {
  json j{{"v", 1},
         {"work_id", work_id},
         {"variant", variant},
         {"impressions", impressions},
         {"clicks", clicks},
         {"conversions", conversions}};
  if (!output.empty()) j["output"] = output;
  if (!date.empty()) j["date"] = date;
  if (!source.empty()) j["source"] = source;
  if (line) j["line"] = line;
  if (!ingested.empty()) j["ingested"] = ingested;
  return j;
}

Reaction Reaction::from_json(const json& j) {
  if (!j.is_object()) throw FormatError("not a JSON object");
  const auto v = j.find("v");
  if (v != j.end() && !(v->is_number_integer() && v->get<int64_t>() == 1))
    throw FormatError("\"v\" must be 1");
  Reaction r;
  r.work_id = get_str(j, "work_id");
  if (r.work_id.empty()) throw FormatError("missing \"work_id\"");
  r.variant = get_str(j, "variant");
  r.output = get_str(j, "output");
  r.date = get_str(j, "date");
  r.source = get_str(j, "source");
  r.ingested = get_str(j, "ingested");
  r.impressions = get_count(j, "impressions");
  r.clicks = get_count(j, "clicks");
  r.conversions = get_count(j, "conversions");
  if (r.clicks > r.impressions) throw FormatError("\"clicks\" is larger than \"impressions\"");
  if (r.conversions > r.clicks) throw FormatError("\"conversions\" is larger than \"clicks\"");
  const auto l = j.find("line");
  if (l != j.end() && l->is_number_unsigned()) r.line = l->get<std::size_t>();
  return r;
}

ReactionAssets reaction_assets(const fs::path& run_dir) {
  ReactionAssets a;
  const Ledger ledger = read_ledger(run_dir);
  for (const auto& e : ledger.stages) {
    if (e.status == "skipped") continue;
    const std::string base = e.revision > 0 ? e.base_work_id : e.work_id;
    a.base_of[e.work_id] = base;
    if (e.revision == 0) a.variant_of[e.work_id] = e.variant;
  }
  for (const auto& r : read_all_journals(run_dir)) {
    const std::string base = r.revision > 0 ? r.base_work_id : r.work_id;
    a.base_of.emplace(r.work_id, base);
    if (r.revision == 0) a.variant_of.emplace(r.work_id, r.variant);
    if (!r.output.empty()) a.output_to_base[r.output] = base;
  }
  return a;
}

std::vector<Reaction> parse_reactions_csv(const std::string& text, const std::string& file_name,
                                          const ReactionAssets& assets) {
  std::vector<std::string> problems;
  const auto records = parse_csv(text, file_name, problems);
  std::vector<Reaction> out;
  auto fail = [&] {
    std::string msg = fmt::format("{} problem(s) in the reactions file:", problems.size());
    for (const auto& p : problems) msg += "\n  " + p;
    throw FormatError(msg, file_name,
                      "fix these rows; columns: work_id or output, impressions, clicks, "
                      "conversions, optional variant and date; nothing was ingested");
  };
  if (records.empty()) {
    problems.push_back(fmt::format("{}:1: the file is empty (expected a header row)", file_name));
    fail();
  }
  if (!problems.empty()) fail();

  // Header.
  const CsvRecord& header = records.front();
  std::map<std::string, std::size_t> col;
  for (std::size_t c = 0; c < header.fields.size(); ++c) {
    std::string name = header.fields[c];
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    if (name.empty()) continue;
    if (!col.emplace(name, c).second)
      problems.push_back(fmt::format("{}:{}: column \"{}\" appears twice in the header", file_name,
                                     header.line, name));
  }
  for (const char* required : {"impressions", "clicks", "conversions"})
    if (!col.count(required))
      problems.push_back(
          fmt::format("{}:{}: the header has no column \"{}\"", file_name, header.line, required));
  const bool by_id = col.count("work_id") > 0, by_output = col.count("output") > 0;
  if (!by_id && !by_output)
    problems.push_back(
        fmt::format("{}:{}: the header needs an asset column: \"work_id\" or \"output\"", file_name,
                    header.line));
  if (!problems.empty()) fail();
  if (records.size() == 1)
    problems.push_back(fmt::format("{}:{}: no rows after the header", file_name, header.line));

  const std::string now = iso8601_utc_now();
  const std::string source = fs::path(file_name).filename().string();
  for (std::size_t r = 1; r < records.size(); ++r) {
    const CsvRecord& rec = records[r];
    const std::size_t before = problems.size();
    if (rec.fields.size() != header.fields.size()) {
      problems.push_back(fmt::format("{}:{}: {} field(s), the header has {}", file_name, rec.line,
                                     rec.fields.size(), header.fields.size()));
      continue;
    }
    auto cell = [&](const char* name) -> std::string {
      const auto it = col.find(name);
      return it == col.end() ? std::string() : rec.fields[it->second];
    };
    auto bad = [&](const char* column, const std::string& found, const std::string& expected) {
      problems.push_back(fmt::format("{}:{}: column \"{}\": found \"{}\", expected {}", file_name,
                                     rec.line, column, found, expected));
    };
    Reaction x;
    x.source = source;
    x.line = rec.line;
    x.ingested = now;
    x.date = cell("date");
    bool counts_ok = true;
    for (auto [name, dest] : {std::pair<const char*, int64_t*>{"impressions", &x.impressions},
                              {"clicks", &x.clicks},
                              {"conversions", &x.conversions}}) {
      if (!parse_count(cell(name), *dest)) {
        bad(name, cell(name), "an integer >= 0");
        counts_ok = false;
      }
    }
    if (counts_ok && x.clicks > x.impressions)
      bad("clicks", cell("clicks"), fmt::format("at most the impressions ({})", x.impressions));
    if (counts_ok && x.conversions > x.clicks)
      bad("conversions", cell("conversions"), fmt::format("at most the clicks ({})", x.clicks));

    // The asset: work_id (a revision's id maps to its base) or output (through the journals).
    const std::string id = cell("work_id"), output = cell("output");
    std::string base;
    if (!id.empty()) {
      const auto it = assets.base_of.find(id);
      if (it == assets.base_of.end())
        bad("work_id", id, "a work id of this run (see kpi.csv or `studio plan`)");
      else
        base = it->second;
    }
    if (!output.empty()) {
      x.output = output;
      const auto it = assets.output_to_base.find(output);
      if (it == assets.output_to_base.end())
        bad("output", output, "an output of this run named in its journals, relative to RUN_DIR");
      else if (!base.empty() && base != it->second)
        bad("output", output, fmt::format("an output of work item \"{}\" (column work_id)", id));
      else
        base = it->second;
    }
    if (id.empty() && output.empty())
      bad(by_id ? "work_id" : "output", "", by_id ? "a work id" : "an output path");
    if (!base.empty()) {
      x.work_id = base;
      const auto v = assets.variant_of.find(base);
      const std::string known = v == assets.variant_of.end() ? std::string() : v->second;
      const std::string given = cell("variant");
      if (!given.empty() && !known.empty() && given != known)
        bad("variant", given, fmt::format("\"{}\" (the variant of asset {})", known, base));
      x.variant = known.empty() ? given : known;
    }
    if (problems.size() == before) out.push_back(std::move(x));
  }
  if (!problems.empty()) fail();
  return out;
}

std::vector<Reaction> read_reactions(const fs::path& run_dir, std::vector<std::string>* warnings) {
  const fs::path file = run_dir / "reactions.jsonl";
  std::vector<Reaction> out;
  for (const auto& line : read_jsonl(file, /*repair=*/false, warnings)) {
    try {
      out.push_back(Reaction::from_json(line.value));
    } catch (const FormatError& e) {
      throw FormatError(
          fmt::format("line {} is not a valid reactions row: {}", line.line, e.what_failed()),
          fmt::format("{}:{}", file.string(), line.line),
          "`studio kpi ingest` writes this file; fix or delete the line and ingest again");
    }
  }
  return out;
}

IngestResult ingest_reactions(const fs::path& run_dir, const fs::path& csv, bool replace) {
  std::error_code ec;
  if (!fs::is_directory(run_dir, ec))
    throw IoError("no such run folder", run_dir.string(), "pass the output folder of `studio run`");
  std::ifstream in(csv, std::ios::binary);
  if (!in) throw IoError("cannot open the reactions file", csv.string(), "check the path");
  std::ostringstream ss;
  ss << in.rdbuf();
  const ReactionAssets assets = reaction_assets(run_dir);
  if (assets.base_of.empty())
    throw IoError("the run folder has no ledger or journal to match reactions against",
                  run_dir.string(), "pass the output folder of `studio run`");
  const std::vector<Reaction> rows = parse_reactions_csv(ss.str(), csv.string(), assets);

  IngestResult res;
  res.file = run_dir / "reactions.jsonl";
  res.replaced = replace;
  std::string text;
  if (!replace) {
    // Keep what is there (validated: a bad line is an error, a torn last line is dropped).
    std::vector<std::string> warnings;
    for (const auto& r : read_reactions(run_dir, &warnings)) {
      text += r.to_json().dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
      ++res.total_rows;
    }
  }
  std::set<std::string> ids;
  for (const auto& r : rows) {
    text += r.to_json().dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    ids.insert(r.work_id);
    res.impressions += r.impressions;
    res.clicks += r.clicks;
    res.conversions += r.conversions;
  }
  res.rows = rows.size();
  res.total_rows += rows.size();
  res.assets = ids.size();
  write_file_atomic(res.file, text);
  return res;
}

// --- statistics ------------------------------------------------------------------------------

bool Interval::excludes_zero() const { return low > 0 || high < 0; }

Interval wilson_interval(int64_t k, int64_t n, double z) {
  if (n <= 0 || k < 0 || k > n) return kNoInterval;
  const double nn = static_cast<double>(n), p = static_cast<double>(k) / nn, z2 = z * z;
  const double denom = 1 + z2 / nn;
  const double center = (p + z2 / (2 * nn)) / denom;
  const double half = z / denom * std::sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn));
  return {p, std::max(0.0, center - half), std::min(1.0, center + half)};
}

Interval newcombe_interval(int64_t k1, int64_t n1, int64_t k2, int64_t n2, double z) {
  const Interval a = wilson_interval(k1, n1, z), b = wilson_interval(k2, n2, z);
  if (std::isnan(a.estimate) || std::isnan(b.estimate)) return kNoInterval;
  const double d = a.estimate - b.estimate;
  const double lo = d - std::sqrt((a.estimate - a.low) * (a.estimate - a.low) +
                                  (b.high - b.estimate) * (b.high - b.estimate));
  const double hi = d + std::sqrt((a.high - a.estimate) * (a.high - a.estimate) +
                                  (b.estimate - b.low) * (b.estimate - b.low));
  return {d, lo, hi};
}

double two_proportion_p_value(int64_t k1, int64_t n1, int64_t k2, int64_t n2) {
  if (n1 <= 0 || n2 <= 0) return kNaN;
  const double a = static_cast<double>(n1), b = static_cast<double>(n2);
  const double p = static_cast<double>(k1 + k2) / (a + b);
  const double se = std::sqrt(p * (1 - p) * (1 / a + 1 / b));
  if (se == 0) return 1.0;  // both samples all successes or all failures: no difference
  const double zz = (static_cast<double>(k1) / a - static_cast<double>(k2) / b) / se;
  return std::erfc(std::fabs(zz) / std::sqrt(2.0));
}

AbComparison compare_variants(const std::vector<Reaction>& rows,
                              const std::string& preferred_baseline) {
  AbComparison ab;
  ab.rows = rows.size();
  std::map<std::string, AbVariant> by;
  std::map<std::string, std::set<std::string>> assets;
  for (const auto& r : rows) {
    AbVariant& v = by[r.variant];
    v.name = r.variant;
    ++v.rows;
    v.impressions += r.impressions;
    v.clicks += r.clicks;
    v.conversions += r.conversions;
    assets[r.variant].insert(r.work_id);
  }
  if (by.empty()) return ab;
  ab.baseline = by.count(preferred_baseline) ? preferred_baseline : by.begin()->first;
  const AbVariant& base = by[ab.baseline];
  auto add = [&](AbVariant v) {
    v.assets = assets[v.name].size();
    v.ctr = wilson_interval(v.clicks, v.impressions);
    v.cvr = wilson_interval(v.conversions, v.clicks);
    v.baseline = v.name == ab.baseline;
    if (v.baseline) {
      v.ctr_diff = v.cvr_diff = kNoInterval;
      v.ctr_p = v.cvr_p = kNaN;
    } else {
      v.ctr_diff = newcombe_interval(v.clicks, v.impressions, base.clicks, base.impressions);
      v.cvr_diff = newcombe_interval(v.conversions, v.clicks, base.conversions, base.clicks);
      v.ctr_p = two_proportion_p_value(v.clicks, v.impressions, base.clicks, base.impressions);
      v.cvr_p = two_proportion_p_value(v.conversions, v.clicks, base.conversions, base.clicks);
    }
    ab.variants.push_back(std::move(v));
  };
  add(base);
  for (const auto& [name, v] : by)
    if (name != ab.baseline) add(v);
  return ab;
}

namespace {

std::string variant_label(const std::string& v) { return v.empty() ? "(no variant)" : v; }

std::string diff_text(const char* what, const Interval& d, double p) {
  if (std::isnan(d.estimate)) return fmt::format("{} n/a (no data)", what);
  return fmt::format("{} {:+.2f} pp (95% CI {:+.2f} to {:+.2f} pp, p = {:.3g}), {}", what,
                     d.estimate * 100, d.low * 100, d.high * 100, p,
                     d.excludes_zero() ? "significant at 5 %" : "not significant at 5 %");
}

json interval_json(const Interval& i) {
  auto n = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  return json{{"estimate", n(i.estimate)}, {"low", n(i.low)}, {"high", n(i.high)}};
}

}  // namespace

std::vector<std::string> AbComparison::verdicts() const {
  std::vector<std::string> out;
  for (const auto& v : variants) {
    if (v.baseline) continue;
    out.push_back(fmt::format("{} vs {}: {}; {}", variant_label(v.name), variant_label(baseline),
                              diff_text("CTR", v.ctr_diff, v.ctr_p),
                              diff_text("CVR", v.cvr_diff, v.cvr_p)));
  }
  return out;
}

json AbComparison::to_json() const {
  json vs = json::array();
  auto n = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  for (const auto& v : variants)
    vs.push_back({{"name", v.name},
                  {"baseline", v.baseline},
                  {"assets", v.assets},
                  {"rows", v.rows},
                  {"impressions", v.impressions},
                  {"clicks", v.clicks},
                  {"conversions", v.conversions},
                  {"ctr", interval_json(v.ctr)},
                  {"cvr", interval_json(v.cvr)},
                  {"ctr_diff", interval_json(v.ctr_diff)},
                  {"cvr_diff", interval_json(v.cvr_diff)},
                  {"ctr_p", n(v.ctr_p)},
                  {"cvr_p", n(v.cvr_p)},
                  {"ctr_significant", !v.baseline && v.ctr_diff.excludes_zero()},
                  {"cvr_significant", !v.baseline && v.cvr_diff.excludes_zero()}});
  return json{{"baseline", baseline},
              {"rows", rows},
              {"confidence", 0.95},
              {"variants", vs},
              {"verdicts", verdicts()}};
}

}  // namespace studio
