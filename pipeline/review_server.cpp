// The review page's server: cpp-httplib (the only file that includes <httplib.h>), the run folder
// read into assets with their revisions and verdicts, file serving confined to the run folder, and
// review.jsonl lines appended whole (one write + fsync). Formats: docs/review.md.
#include "pipeline/review_server.h"

#include <fcntl.h>
#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "core/error.h"
#include "core/json_file.h"
#include "core/path_confine.h"
#include "pipeline/journal.h"
#include "pipeline/kpi.h"

namespace studio {

// The page, embedded at build time from pipeline/review_page.html (review_page_embed.cmake).
extern const unsigned char kReviewPageHtml[];
extern const std::size_t kReviewPageHtmlSize;

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::size_t kMaxTextField = 4000;               // reason, note (characters)
constexpr std::size_t kMaxCaptionBytes = 64 * 1024;       // caption text shown on the page
constexpr std::uintmax_t kMaxServedFile = 1024ull << 20;  // 1 GiB

std::string dump(const json& j) {
  // Captions are model output: replace invalid UTF-8 instead of failing the whole response.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::size_t utf8_chars(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// /bin/sh single quotes when the word needs them.
std::string shell_word(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                        "0123456789_-./=:@+,") == std::string::npos)
    return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

int kind_rank(const std::string& kind) {
  static const std::vector<std::string> order = {"caption", "visual", "edit", "video", "model"};
  const auto it = std::find(order.begin(), order.end(), kind);
  return static_cast<int>(it - order.begin());
}

std::string media_of(const std::string& output) {
  std::string ext = fs::path(output).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".webp") return "image";
  if (ext == ".txt") return "text";
  if (ext == ".mp4" || ext == ".webm") return "video";
  if (ext == ".glb" || ext == ".gltf") return "model";
  return "other";
}

std::string content_type_of(const fs::path& file) {
  std::string ext = file.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  static const std::map<std::string, std::string> types = {{".png", "image/png"},
                                                           {".jpg", "image/jpeg"},
                                                           {".jpeg", "image/jpeg"},
                                                           {".webp", "image/webp"},
                                                           {".txt", "text/plain; charset=utf-8"},
                                                           {".json", "application/json"},
                                                           {".jsonl", "text/plain; charset=utf-8"},
                                                           {".csv", "text/csv; charset=utf-8"},
                                                           {".mp4", "video/mp4"},
                                                           {".webm", "video/webm"},
                                                           {".glb", "model/gltf-binary"},
                                                           {".gltf", "model/gltf+json"},
                                                           {".html", "text/html; charset=utf-8"},
                                                           {".svg", "image/svg+xml"}};
  const auto it = types.find(ext);
  return it == types.end() ? "application/octet-stream" : it->second;
}

// --- the run folder as the page sees it -------------------------------------------------------

struct BaseAsset {
  JournalRecord base;                        // revision 0
  std::map<int64_t, JournalRecord> records;  // revision -> its last record (0 included)
  // The highest revision that is done (what the reviewer sees and decides on).
  const JournalRecord& latest() const {
    for (auto it = records.rbegin(); it != records.rend(); ++it)
      if (it->second.status == "done") return it->second;
    return base;
  }
};

struct RunIndex {
  std::map<std::string, BaseAsset> bases;  // base work_id -> asset (its original is done)
  std::map<std::string, std::pair<std::string, int64_t>> by_work_id;  // any -> (base, revision)
  std::map<std::string, std::pair<std::string, int64_t>> by_output;   // output -> (base, rev)
  std::vector<JournalRecord> failed;  // work items whose last record failed and that no base has
  std::vector<std::string> warnings;
};

RunIndex index_run(const fs::path& run_dir) {
  RunIndex ix;
  std::map<std::string, JournalRecord> last;  // work_id -> last record (last line wins)
  std::vector<std::string> order;
  for (auto& r : read_all_journals(run_dir, &ix.warnings)) {
    if (!last.count(r.work_id)) order.push_back(r.work_id);
    last[r.work_id] = std::move(r);
  }
  for (const auto& id : order) {
    const JournalRecord& r = last[id];
    if (r.revision != 0) continue;
    if (r.status == "done") {
      BaseAsset a;
      a.base = r;
      a.records[0] = r;
      ix.bases.emplace(id, std::move(a));
      ix.by_work_id[id] = {id, 0};
      ix.by_output[r.output] = {id, 0};
    } else {
      ix.failed.push_back(r);
    }
  }
  for (const auto& id : order) {
    const JournalRecord& r = last[id];
    if (r.revision == 0) continue;
    const auto b = ix.bases.find(r.base_work_id);
    if (b == ix.bases.end()) {
      ix.warnings.push_back(
          fmt::format("revision {} ({}) names base asset {}, which the journal "
                      "does not have as done; not shown",
                      r.revision, r.work_id, r.base_work_id));
      continue;
    }
    b->second.records[r.revision] = r;
    ix.by_work_id[id] = {r.base_work_id, r.revision};
    if (!r.output.empty()) ix.by_output[r.output] = {r.base_work_id, r.revision};
    if (r.status != "done") ix.failed.push_back(r);
  }
  return ix;
}

struct ReviewLine {
  std::string base, output, verdict, reason, note, reviewer, time;
  int64_t revision = 0;
  double seconds = 0;
  std::size_t line = 0;

  json to_json() const {
    return json{{"verdict", verdict}, {"revision", revision}, {"output", output},
                {"reason", reason},   {"note", note},         {"reviewer", reviewer},
                {"seconds", seconds}, {"time", time}};
  }
};

// RUN_DIR/review.jsonl, tolerant (the page must open even when a line is bad): version-2 lines and
// older ones ({"work_id"|"output", "verdict", "reviewer", "note"}); a torn last line and bad lines
// are skipped with a warning. Lines are mapped to their base asset; unknown assets are skipped.
std::vector<ReviewLine> read_review_lines(const fs::path& run_dir, const RunIndex& ix,
                                          std::vector<std::string>* warnings) {
  std::vector<ReviewLine> out;
  const fs::path file = run_dir / "review.jsonl";
  std::ifstream in(file, std::ios::binary);
  if (!in) return out;
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  std::size_t at = 0, n = 0;
  while (at < text.size()) {
    const std::size_t nl = text.find('\n', at);
    ++n;
    if (nl == std::string::npos) {
      if (!trim(text.substr(at)).empty())
        warnings->push_back(
            fmt::format("{}:{}: torn last line (no newline) ignored", file.string(), n));
      break;
    }
    const std::string raw = text.substr(at, nl - at);
    at = nl + 1;
    if (trim(raw).empty()) continue;
    try {
      const json j = json::parse(raw);
      if (!j.is_object()) throw std::runtime_error("not a JSON object");
      auto s = [&](const char* k) {
        return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string();
      };
      ReviewLine r;
      r.verdict = s("verdict");
      if (r.verdict != "accept" && r.verdict != "reject" && r.verdict != "revise")
        throw std::runtime_error("unknown verdict \"" + r.verdict + "\"");
      r.output = s("output");
      r.reason = s("reason");
      r.note = s("note");
      r.reviewer = s("reviewer");
      r.time = s("time");
      if (j.contains("seconds") && j["seconds"].is_number()) r.seconds = j["seconds"].get<double>();
      const std::string work_id = s("work_id");
      std::optional<std::pair<std::string, int64_t>> who;
      if (const auto w = ix.by_work_id.find(work_id); !work_id.empty() && w != ix.by_work_id.end())
        who = w->second;
      else if (const auto o = ix.by_output.find(r.output);
               !r.output.empty() && o != ix.by_output.end())
        who = o->second;
      if (!who) continue;  // an asset this journal does not have (another run's line)
      r.base = who->first;
      r.revision = j.contains("revision") && j["revision"].is_number_integer()
                       ? j["revision"].get<int64_t>()
                       : who->second;
      r.line = n;
      out.push_back(std::move(r));
    } catch (const std::exception& e) {
      warnings->push_back(fmt::format("{}:{}: line skipped ({})", file.string(), n, e.what()));
    }
  }
  return out;
}

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json item_kpi_json(const ItemKpi& k) {
  return json{{"status", k.status},
              {"turnaround_s", number_or_null(k.turnaround_s)},
              {"latency_s", number_or_null(k.latency_s)},
              {"compute_s", number_or_null(k.compute_s)},
              {"cost", number_or_null(k.cost)},
              {"nfe", k.nfe},
              {"tokens", k.tokens},
              {"rounds", k.rounds},
              {"attempts", k.attempts},
              {"first_pass", k.first_pass ? json(*k.first_pass) : json(nullptr)}};
}

json headline_json(const KpiSummary& s) {
  return json{{"work_items", s.work_items},
              {"assets", s.assets},
              {"failed", s.failed},
              {"makespan_s", number_or_null(s.makespan_s)},
              {"throughput_per_hour", number_or_null(s.throughput_per_hour)},
              {"turnaround_p50_s", number_or_null(s.turnaround.p50)},
              {"turnaround_p90_s", number_or_null(s.turnaround.p90)},
              {"cost_total", number_or_null(s.cost_total)},
              {"cost_per_asset", number_or_null(s.cost_per_asset)},
              {"copy_fpy", number_or_null(s.yield.copy_fpy())},
              {"review_fpy", number_or_null(s.yield.review_fpy())},
              {"reviewed", s.yield.reviewed},
              {"accepted", s.yield.accepted},
              {"hours_replaced", number_or_null(s.hours_replaced)}};
}

// The caption's checks from its sidecar: passed, rounds, failure, the chosen draft's repairs and
// violations, and the rules it was checked against.
json caption_json(const json& side) {
  json c = json::object();
  if (!side.contains("caption") || !side["caption"].is_object()) return c;
  const json& cap = side["caption"];
  for (const char* k : {"passed", "rounds", "failure", "nfe"})
    if (cap.contains(k)) c[k] = cap[k];
  c["repairs"] = json::array();
  c["violations"] = json::array();
  if (cap.contains("drafts") && cap["drafts"].is_array() && !cap["drafts"].empty()) {
    std::size_t best = 0;
    if (cap.contains("best") && cap["best"].is_number_unsigned())
      best = std::min<std::size_t>(cap["best"].get<std::size_t>(), cap["drafts"].size() - 1);
    const json& d = cap["drafts"][best];
    if (d.is_object()) {
      if (d.contains("repairs") && d["repairs"].is_array()) c["repairs"] = d["repairs"];
      if (d.contains("violations") && d["violations"].is_array()) c["violations"] = d["violations"];
      if (d.contains("first_pass")) c["first_pass"] = d["first_pass"];
    }
  }
  if (side.contains("preset") && side["preset"].is_object() && side["preset"].contains("rules"))
    c["rules"] = side["preset"]["rules"];
  return c;
}

// The generation prompt of an image-like asset, when its sidecar has one.
std::string prompt_of(const json& side) {
  for (const char* k : {"edit", "image", "video", "model"})
    if (side.contains(k) && side[k].is_object() && side[k].contains("prompt") &&
        side[k]["prompt"].is_string())
      return side[k]["prompt"].get<std::string>();
  return "";
}

bool token_equal(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

bool valid_token(const std::string& t) {
  return t.size() >= 16 && t.size() <= 128 &&
         t.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") ==
             std::string::npos;
}

}  // namespace

// --- public helpers ---------------------------------------------------------------------------

bool is_loopback_host(const std::string& host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  unsigned a = 0, b = 0, c = 0, d = 0;
  char tail = 0;
  return std::sscanf(host.c_str(), "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 &&
         b < 256 && c < 256 && d < 256;
}

std::string random_review_token() {
  const int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError("cannot open /dev/urandom for the review token", "/dev/urandom");
  unsigned char bytes[16];
  std::size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = ::read(fd, bytes + got, sizeof bytes - got);
    if (n <= 0) {
      ::close(fd);
      throw IoError("cannot read /dev/urandom for the review token", "/dev/urandom",
                    "pass a token with --token");
    }
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
  std::string hex;
  for (unsigned char x : bytes) hex += fmt::format("{:02x}", x);
  return hex;
}

std::optional<fs::path> resolve_run_file(const fs::path& root, const std::string& relative,
                                         std::string* why) {
  auto refuse = [&](const std::string& reason) -> std::optional<fs::path> {
    if (why) *why = reason;
    return std::nullopt;
  };
  if (relative.empty()) return refuse("empty path");
  if (relative.find('\0') != std::string::npos) return refuse("NUL in path");
  if (relative.find('\\') != std::string::npos) return refuse("backslash in path");
  if (relative.front() == '/') return refuse("absolute path");
  std::size_t at = 0;
  while (at <= relative.size()) {
    const std::size_t slash = std::min(relative.find('/', at), relative.size());
    if (relative.compare(at, slash - at, "..") == 0 && slash - at == 2)
      return refuse("\"..\" in path");
    at = slash + 1;
  }
  std::error_code ec;
  const fs::path resolved = fs::weakly_canonical(root / relative, ec);
  if (ec) return refuse("cannot resolve path");
  if (!path_within(root, resolved)) return refuse("outside the run folder");
  if (resolved == root) return refuse("the run folder itself");
  const fs::file_status st = fs::status(resolved, ec);
  if (ec || !fs::exists(st)) return refuse("no such file");
  if (!fs::is_regular_file(st)) return refuse("not a regular file");
  return resolved;
}

json review_run_state(const fs::path& run_dir) {
  std::error_code ec;
  const fs::path root = fs::canonical(run_dir, ec);
  if (ec) throw IoError("cannot open the run folder", run_dir.string(), "check the path");
  RunIndex ix = index_run(root);
  std::vector<std::string> warnings = ix.warnings;
  const KpiConfig config = read_run_config(root);

  // KPIs per work item (the ledger is optional: a run copied without it still opens).
  std::map<std::string, ItemKpi> kpis;
  json headline = nullptr;
  std::string kpi_error;
  if (fs::is_directory(root / "ledger")) {
    try {
      const KpiSummary s = compute_kpis(root);
      for (const auto& k : s.items) kpis[k.work_id] = k;
      headline = headline_json(s);
    } catch (const Error& e) {
      kpi_error = e.what();
    }
  } else {
    kpi_error = "no ledger/ in the run folder: no KPIs";
  }

  const auto lines = read_review_lines(root, ix, &warnings);
  std::map<std::string, std::vector<const ReviewLine*>> by_base;
  for (const auto& l : lines) by_base[l.base].push_back(&l);

  // item -> channel -> assets (sorted by kind, variant, seed)
  std::map<std::string, std::map<std::string, std::vector<const BaseAsset*>>> tree;
  for (const auto& [id, a] : ix.bases) tree[a.base.item][a.base.channel].push_back(&a);

  std::size_t n_assets = 0;
  std::map<std::string, std::size_t> counts = {
      {"accept", 0}, {"reject", 0}, {"revise", 0}, {"undecided", 0}};
  json items = json::array();
  for (auto& [item, channels] : tree) {
    json jchannels = json::array();
    for (auto& [channel, assets] : channels) {
      std::sort(assets.begin(), assets.end(), [](const BaseAsset* x, const BaseAsset* y) {
        const auto kx = std::make_tuple(kind_rank(x->base.kind), x->base.kind, x->base.variant,
                                        x->base.seed, x->base.output);
        const auto ky = std::make_tuple(kind_rank(y->base.kind), y->base.kind, y->base.variant,
                                        y->base.seed, y->base.output);
        return kx < ky;
      });
      json jassets = json::array();
      for (const BaseAsset* a : assets) {
        const JournalRecord& latest = a->latest();
        json revisions = json::array();
        for (const auto& [rev, r] : a->records) {
          const auto k = kpis.find(r.work_id);
          revisions.push_back(
              {{"revision", rev},
               {"work_id", r.work_id},
               {"output", r.output},
               {"status", r.status},
               {"error", r.error},
               {"time", r.time},
               {"kpi", k == kpis.end() ? json(nullptr) : item_kpi_json(k->second)}});
        }
        json side = json::object();
        const fs::path side_file = root / (latest.output + ".json");
        if (fs::exists(side_file)) {
          try {
            side = read_json_file(side_file);
          } catch (const Error& e) {
            warnings.push_back(e.what());
          }
        }
        json asset = {{"work_id", a->base.work_id},  {"item", item},
                      {"channel", channel},          {"kind", a->base.kind},
                      {"variant", a->base.variant},  {"seed", a->base.seed},
                      {"revision", latest.revision}, {"latest_work_id", latest.work_id},
                      {"output", latest.output},     {"media", media_of(latest.output)},
                      {"revisions", revisions}};
        const std::string prompt = prompt_of(side);
        if (!prompt.empty()) asset["prompt"] = prompt;
        if (a->base.kind == "caption" || media_of(latest.output) == "text") {
          json cap = caption_json(side);
          std::string text;
          std::ifstream in(root / latest.output, std::ios::binary);
          if (in) {
            text.resize(kMaxCaptionBytes);
            in.read(text.data(), static_cast<std::streamsize>(text.size()));
            text.resize(static_cast<std::size_t>(in.gcount()));
          }
          cap["text"] = text;
          cap["chars"] = utf8_chars(text);
          asset["caption"] = cap;
        }
        // Edit previews (source photo, product mask) named by the sidecar, if inside the run.
        json previews = json::object();
        if (side.contains("previews") && side["previews"].is_object()) {
          for (const char* k : {"before", "mask"}) {
            const json& v = side["previews"].value(k, json());
            if (!v.is_string()) continue;
            std::string why;
            if (resolve_run_file(root, v.get<std::string>(), &why))
              previews[k] = v;
            else
              warnings.push_back(fmt::format("{}: preview \"{}\" not shown ({})", latest.output,
                                             v.get<std::string>(), why));
          }
        }
        asset["previews"] = previews;
        const auto k = kpis.find(latest.work_id);
        asset["kpi"] = k == kpis.end() ? json(nullptr) : item_kpi_json(k->second);

        // The verdict: the last line on this asset; current only if it is on the latest revision.
        json history = json::array();
        const ReviewLine* last = nullptr;
        if (const auto b = by_base.find(a->base.work_id); b != by_base.end())
          for (const ReviewLine* l : b->second) {
            history.push_back(l->to_json());
            last = l;
          }
        asset["history"] = history;
        const bool current = last && last->revision == latest.revision;
        asset["verdict"] = current ? last->to_json() : json(nullptr);
        asset["previous_verdict"] = last && !current ? last->to_json() : json(nullptr);
        ++counts[current ? last->verdict : std::string("undecided")];
        ++n_assets;
        jassets.push_back(std::move(asset));
      }
      jchannels.push_back({{"channel", channel}, {"assets", std::move(jassets)}});
    }
    items.push_back({{"item", item}, {"channels", std::move(jchannels)}});
  }

  json failed = json::array();
  for (const auto& r : ix.failed)
    failed.push_back({{"work_id", r.work_id},
                      {"item", r.item},
                      {"channel", r.channel},
                      {"kind", r.kind},
                      {"variant", r.variant},
                      {"seed", r.seed},
                      {"revision", r.revision},
                      {"base_work_id", r.base_work_id},
                      {"stage", r.stage},
                      {"error", r.error}});

  std::string revise_command;
  if (!config.job_file.empty())
    revise_command = "studio run " + shell_word(config.job_file) + " --revise";
  return json{{"run_id", config.run_id},
              {"job_name", config.job_name},
              {"job_file", config.job_file},
              {"run_dir", root.string()},
              {"revise_command", revise_command},
              {"items", std::move(items)},
              {"failed", std::move(failed)},
              {"counts",
               {{"assets", n_assets},
                {"accept", counts["accept"]},
                {"reject", counts["reject"]},
                {"revise", counts["revise"]},
                {"undecided", counts["undecided"]}}},
              {"kpi", headline},
              {"kpi_error", kpi_error},
              {"warnings", warnings}};
}

// --- the server -------------------------------------------------------------------------------

struct ReviewServer::Impl {
  fs::path run_dir;  // canonical
  ReviewServerOptions options;
  httplib::Server server;
  std::thread thread;
  int port = 0;
  bool started = false;
  std::mutex write_mutex;  // one review line (and report) at a time

  void send_json(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(dump(body), "application/json");
  }
  void send_error(httplib::Response& res, int status, const std::string& message) {
    send_json(res, status, json{{"error", message}});
  }

  bool authorised(const httplib::Request& req) const {
    std::string given = req.get_header_value("X-Studio-Token");
    if (given.empty() && req.has_param("token")) given = req.get_param_value("token");
    return token_equal(given, options.token);
  }

  void serve_page(httplib::Response& res) {
    // A fresh nonce per response for the page's one inline script.
    const std::string nonce = random_review_token();
    std::string page(reinterpret_cast<const char*>(kReviewPageHtml), kReviewPageHtmlSize);
    const std::string mark = "<script>";
    if (const auto at = page.find(mark); at != std::string::npos)
      page.replace(at, mark.size(), "<script nonce=\"" + nonce + "\">");
    res.set_header("Content-Security-Policy",
                   "default-src 'none'; script-src 'nonce-" + nonce +
                       "'; style-src 'unsafe-inline'; img-src 'self' data:; media-src 'self'; "
                       "connect-src 'self'; base-uri 'none'; form-action 'none'; "
                       "frame-ancestors 'none'");
    res.set_content(page, "text/html; charset=utf-8");
  }

  void serve_file(const httplib::Request& req, httplib::Response& res) {
    std::string why;
    const auto file = resolve_run_file(run_dir, req.matches[1].str(), &why);
    if (!file) {
      res.status = why == "no such file" ? 404 : 403;
      res.set_content("refused: " + why + "\n", "text/plain; charset=utf-8");
      return;
    }
    std::error_code ec;
    const auto size = fs::file_size(*file, ec);
    if (ec || size > kMaxServedFile) {
      res.status = 403;
      res.set_content("refused: unreadable or larger than 1 GiB\n", "text/plain; charset=utf-8");
      return;
    }
    std::ifstream in(*file, std::ios::binary);
    std::string body(static_cast<std::size_t>(size), '\0');
    if (!in.read(body.data(), static_cast<std::streamsize>(body.size()))) {
      res.status = 404;
      res.set_content("refused: cannot read the file\n", "text/plain; charset=utf-8");
      return;
    }
    // Served files never run scripts in the page's origin (a generated .html, an .svg).
    res.set_header("Content-Security-Policy",
                   "default-src 'none'; img-src 'self'; media-src 'self'; "
                   "style-src 'unsafe-inline'; sandbox");
    res.set_content(std::move(body), content_type_of(*file).c_str());
  }

  void post_review(const httplib::Request& req, httplib::Response& res) {
    json body;
    try {
      body = json::parse(req.body);
    } catch (const json::exception&) {
      return send_error(res, 400, "the body is not JSON");
    }
    if (!body.is_object()) return send_error(res, 400, "the body must be a JSON object");
    auto str = [&](const char* k, std::string* out) {
      if (!body.contains(k) || body[k].is_null()) return true;
      if (!body[k].is_string()) return false;
      *out = body[k].get<std::string>();
      return true;
    };
    std::string work_id, verdict, reason, note;
    if (!str("work_id", &work_id) || work_id.empty())
      return send_error(res, 400, "\"work_id\" (a string) is required");
    if (!str("verdict", &verdict) ||
        (verdict != "accept" && verdict != "reject" && verdict != "revise"))
      return send_error(res, 400, "\"verdict\" must be \"accept\", \"reject\" or \"revise\"");
    if (!str("reason", &reason)) return send_error(res, 400, "\"reason\" must be a string");
    if (!str("note", &note)) return send_error(res, 400, "\"note\" must be a string");
    if (utf8_chars(reason) > kMaxTextField || utf8_chars(note) > kMaxTextField ||
        work_id.size() > kMaxTextField)
      return send_error(
          res, 400,
          fmt::format("\"reason\" and \"note\" are limited to {} characters", kMaxTextField));
    reason = trim(reason);
    note = trim(note);
    if (verdict == "reject" && reason.empty())
      return send_error(res, 400, "a rejection needs a \"reason\"");
    if (verdict == "revise" && note.empty())
      return send_error(res, 400, "a revision request needs a \"note\" (the next instruction)");
    if (!body.contains("seconds") || !body["seconds"].is_number())
      return send_error(res, 400, "\"seconds\" (time on the asset, a number) is required");
    const double seconds = body["seconds"].get<double>();
    if (!std::isfinite(seconds) || seconds < 0)
      return send_error(res, 400, "\"seconds\" must be finite and >= 0");
    if (!body.contains("revision") || !body["revision"].is_number_integer())
      return send_error(res, 400, "\"revision\" (an integer) is required");
    const int64_t revision = body["revision"].get<int64_t>();

    std::lock_guard<std::mutex> lock(write_mutex);
    const RunIndex ix = index_run(run_dir);
    const auto b = ix.bases.find(work_id);
    if (b == ix.bases.end())
      return send_error(res, 400,
                        "unknown asset \"" + work_id +
                            "\" (not a done original in "
                            "the run's journal; reload the page)");
    const JournalRecord& latest = b->second.latest();
    if (revision != latest.revision)
      return send_error(res, 400,
                        fmt::format("stale revision {}: the latest revision of {} is {} (reload "
                                    "the page)",
                                    revision, work_id, latest.revision));
    nlohmann::ordered_json line;
    line["v"] = 2;
    line["work_id"] = work_id;
    line["revision"] = revision;
    line["output"] = latest.output;
    line["verdict"] = verdict;
    line["reason"] = verdict == "reject" ? reason : std::string();
    line["note"] = verdict == "revise" ? note : std::string();
    line["reviewer"] = options.reviewer;
    line["seconds"] = seconds;
    line["time"] = iso8601_utc_now();
    std::string text;
    try {
      text = line.dump();  // strict: the line must be valid UTF-8
    } catch (const nlohmann::json::exception&) {
      return send_error(res, 400, "\"reason\" or \"note\" is not valid UTF-8");
    }
    AppendFile out(run_dir / "review.jsonl");
    out.append_line(text, /*sync=*/true);
    out.close();

    json reply = {{"ok", true}, {"verdict", json::parse(text)}};
    if (fs::is_directory(run_dir / "ledger")) {
      try {
        write_kpi_report(compute_kpis(run_dir), run_dir);
        reply["report"] = "regenerated";
      } catch (const std::exception& e) {
        reply["report"] = "failed";
        reply["report_error"] = e.what();
      }
    } else {
      reply["report"] = "no ledger/: report not regenerated";
    }
    send_json(res, 200, reply);
  }
};

ReviewServer::ReviewServer(fs::path run_dir, ReviewServerOptions options)
    : impl_(std::make_unique<Impl>()) {
  std::error_code ec;
  impl_->run_dir = fs::canonical(run_dir, ec);
  if (ec || !fs::is_directory(impl_->run_dir))
    throw IoError("the run folder does not exist", run_dir.string(),
                  "pass the output folder of `studio run`");
  if (options.token.empty()) options.token = random_review_token();
  if (!valid_token(options.token))
    throw UsageError("the review token must be 16 to 128 characters of A-Z a-z 0-9 _ -", "--token",
                     "leave it out to get a random one");
  if (options.port < 0 || options.port > 65535)
    throw UsageError(fmt::format("port {} is out of range", options.port), "--port",
                     "use 1..65535, or 0 for a free port");
  impl_->options = std::move(options);
}

ReviewServer::~ReviewServer() { stop(); }

int ReviewServer::start() {
  Impl& m = *impl_;
  if (m.started) return m.port;
  httplib::Server& s = m.server;
  s.set_payload_max_length(64 * 1024);
  s.set_keep_alive_timeout(2);  // stop() waits for idle keep-alive connections this long at most
  s.set_default_headers({{"X-Content-Type-Options", "nosniff"},
                         {"Referrer-Policy", "no-referrer"},
                         {"Cache-Control", "no-store"},
                         {"Cross-Origin-Resource-Policy", "same-origin"},
                         {"X-Frame-Options", "DENY"}});
  s.set_pre_routing_handler([&m](const httplib::Request& req, httplib::Response& res) {
    if (m.authorised(req)) return httplib::Server::HandlerResponse::Unhandled;
    res.status = 403;
    res.set_content("forbidden: missing or wrong token (open the URL `studio review` printed)\n",
                    "text/plain; charset=utf-8");
    return httplib::Server::HandlerResponse::Handled;
  });
  s.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty())
      res.set_content(fmt::format("error {}\n", res.status), "text/plain; charset=utf-8");
  });
  s.set_exception_handler(
      [&m](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown error";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        m.send_error(res, 500, what);
      });
  s.Get("/", [&m](const httplib::Request&, httplib::Response& res) { m.serve_page(res); });
  s.Get("/api/run", [&m](const httplib::Request&, httplib::Response& res) {
    m.send_json(res, 200, review_run_state(m.run_dir));
  });
  s.Get("/files/(.*)",
        [&m](const httplib::Request& req, httplib::Response& res) { m.serve_file(req, res); });
  s.Post("/api/review",
         [&m](const httplib::Request& req, httplib::Response& res) { m.post_review(req, res); });

  const std::string host = m.options.host;
  const std::string bind_host = host.size() > 2 && host.front() == '[' && host.back() == ']'
                                    ? host.substr(1, host.size() - 2)
                                    : host;
  if (m.options.port == 0) {
    m.port = s.bind_to_any_port(bind_host);
    if (m.port <= 0)
      throw IoError("cannot bind the review server to " + host, host,
                    "check --host (an address of this machine)");
  } else {
    if (!s.bind_to_port(bind_host, m.options.port))
      throw IoError(
          fmt::format("cannot bind the review server to {} port {}", host, m.options.port), host,
          "the port may be in use: pick another with --port, or --port 0");
    m.port = m.options.port;
  }
  m.thread = std::thread([&s] { s.listen_after_bind(); });
  m.started = true;
  return m.port;
}

void ReviewServer::stop() {
  Impl& m = *impl_;
  if (!m.started) return;
  m.server.stop();
  if (m.thread.joinable()) m.thread.join();
  m.started = false;
}

int ReviewServer::port() const { return impl_->port; }
const std::string& ReviewServer::token() const { return impl_->options.token; }
const fs::path& ReviewServer::run_dir() const { return impl_->run_dir; }

std::string ReviewServer::url() const {
  std::string host = impl_->options.host;
  if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
  return fmt::format("http://{}:{}/?token={}", host, impl_->port, impl_->options.token);
}

}  // namespace studio
