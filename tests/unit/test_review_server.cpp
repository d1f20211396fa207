// The review server (pipeline/review_server.h) in-process on a hand-made run folder: the page,
// /api/run (revisions grouped under their base asset, captions, previews, verdicts), files served
// and confined to the run folder (.., encoded variants, absolute paths, symlinks, directories), the
// token, POST /api/review writing exactly one valid v2 line or nothing, and loopback-only binding.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <httplib.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <cmath>
#include <memory>

#include "core/error.h"
#include "pipeline/journal.h"
#include "pipeline/kpi.h"
#include "pipeline/review_server.h"
#include "tests/support/fixtures.h"
#include "tests/support/process.h"

using namespace studio;
using nlohmann::json;
using studio::test::read_file;
using studio::test::temp_dir;
using studio::test::write_file;
namespace fs = std::filesystem;

namespace {

const std::string kToken = "test-token-0123456789abcdef";

JournalRecord record(const std::string& id, const std::string& item, const std::string& kind,
                     const std::string& output, const std::string& status = "done") {
  JournalRecord r;
  r.work_id = id;
  r.item = item;
  r.kind = kind;
  r.channel = "web-banner";
  r.variant = "default";
  r.status = status;
  r.output = status == "done" ? output : "";
  r.stage = status == "done" ? "write" : "text";
  r.error = status == "done" ? "" : "model exploded";
  return r;
}

// DIR/run: a caption (original + revision 1), a visual, an edit with before/mask previews, a
// failed caption; a ledger for the visual and the edit. DIR/secret.txt lies outside the run.
struct FakeRun {
  fs::path dir, run;
  std::string caption_r1_text = "Second take: a mug that keeps coffee warm. #mug #coffee #warm";
};

FakeRun make_run(const std::string& name) {
  FakeRun f;
  f.dir = temp_dir(name);
  f.run = f.dir / "run";
  write_file(f.dir / "secret.txt", "TOP-SECRET outside the run\n");
  write_file(f.run / "run.json", json{{"run_id", "run42"},
                                      {"job_name", "reviewtest"},
                                      {"job_file", (f.dir / "job.json").string()}}
                                     .dump());
  const json caption_side = {
      {"caption",
       {{"passed", true},
        {"rounds", 2},
        {"failure", ""},
        {"best", 0},
        {"drafts", json::array({{{"draft", 0},
                                 {"first_pass", false},
                                 {"repairs", {"inserted hashtags from the brief"}},
                                 {"violations", json::array()}}})}}},
      {"preset", {{"rules", {{"min_chars", 20}, {"max_chars", 300}}}}}};
  write_file(f.run / "MUG-001/web-banner/caption-default-s0.txt", "First take on a mug.");
  write_file(f.run / "MUG-001/web-banner/caption-default-s0.txt.json", caption_side.dump());
  write_file(f.run / "MUG-001/web-banner/caption-default-s0.r1.txt", f.caption_r1_text);
  write_file(f.run / "MUG-001/web-banner/caption-default-s0.r1.txt.json", caption_side.dump());
  write_file(f.run / "MUG-001/web-banner/visual-default-s0.png", "\x89PNG fake image bytes");
  write_file(f.run / "MUG-001/web-banner/visual-default-s0.png.json",
             json{{"image", {{"prompt", "a red mug"}}}}.dump());
  write_file(f.run / "CUP-002/web-banner/edit-default-s0.png", "\x89PNG edited");
  write_file(f.run / "CUP-002/web-banner/edit-default-s0.before.png", "\x89PNG before");
  write_file(f.run / "CUP-002/web-banner/edit-default-s0.mask.png", "\x89PNG mask");
  write_file(f.run / "CUP-002/web-banner/edit-default-s0.png.json",
             json{{"edit", {{"prompt", "a cup in snow"}}},
                  {"previews",
                   {{"before", "CUP-002/web-banner/edit-default-s0.before.png"},
                    {"mask", "CUP-002/web-banner/edit-default-s0.mask.png"}}}}
                 .dump());
  {
    Journal j(f.run, "0-of-1");
    j.append(record("cap1", "MUG-001", "caption", "MUG-001/web-banner/caption-default-s0.txt"));
    j.append(record("vis1", "MUG-001", "visual", "MUG-001/web-banner/visual-default-s0.png"));
    j.append(record("edit1", "CUP-002", "edit", "CUP-002/web-banner/edit-default-s0.png"));
    j.append(record("cap2", "CUP-002", "caption", "", "failed"));
    JournalRecord r1 =
        record("cap1r1", "MUG-001", "caption", "MUG-001/web-banner/caption-default-s0.r1.txt");
    r1.revision = 1;
    r1.base_work_id = "cap1";
    j.append(r1);
  }
  {
    LedgerWriter w(f.run, "0-of-1", "run42");
    RunEvent start;
    start.event = "start";
    start.t = 1.7e9;
    w.write(start);
    for (const char* id : {"vis1", "edit1"}) {
      StageEvent e;
      e.work_id = id;
      e.item = std::string(id) == "vis1" ? "MUG-001" : "CUP-002";
      e.kind = std::string(id) == "vis1" ? "visual" : "edit";
      e.channel = "web-banner";
      e.variant = "default";
      e.stage = "write";
      e.t_start = 1.7e9;
      e.t_end = 1.7e9 + 5;
      e.compute_s = 5;
      e.nfe = 12;
      w.write(e);
    }
    RunEvent stop;
    stop.event = "stop";
    stop.t = 1.7e9 + 6;
    w.write(stop);
  }
  return f;
}

struct Served {
  std::unique_ptr<ReviewServer> server;
  std::unique_ptr<httplib::Client> client;
};

Served serve(const fs::path& run) {
  Served s;
  ReviewServerOptions o;
  o.token = kToken;
  o.reviewer = "kim";
  s.server = std::make_unique<ReviewServer>(run, o);
  const int port = s.server->start();
  REQUIRE(port > 0);
  s.client = std::make_unique<httplib::Client>("127.0.0.1", port);
  s.client->set_url_encode(false);  // send request paths exactly as written
  s.client->set_connection_timeout(5);
  return s;
}

std::string with_token(const std::string& path) {
  return path + (path.find('?') == std::string::npos ? "?" : "&") + "token=" + kToken;
}

json get_run(httplib::Client& c) {
  const auto r = c.Get(with_token("/api/run").c_str());
  REQUIRE(r);
  REQUIRE(r->status == 200);
  return json::parse(r->body);
}

const json* find_asset(const json& run, const std::string& work_id) {
  for (const auto& it : run["items"])
    for (const auto& ch : it["channels"])
      for (const auto& a : ch["assets"])
        if (a["work_id"] == work_id) return &a;
  return nullptr;
}

httplib::Result post(httplib::Client& c, const json& body) {
  return c.Post(with_token("/api/review").c_str(), body.dump(), "application/json");
}

std::vector<json> review_lines(const fs::path& run) {
  std::vector<json> v;
  const std::string text = read_file(run / "review.jsonl");
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t nl = text.find('\n', at);
    REQUIRE(nl != std::string::npos);  // every line whole
    v.push_back(json::parse(text.substr(at, nl - at)));
    at = nl + 1;
  }
  return v;
}

}  // namespace

TEST_CASE("review server: the page, the token and /api/run", "[review]") {
  const FakeRun f = make_run("review_api");
  Served s = serve(f.run);
  httplib::Client& c = *s.client;
  CHECK(s.server->url() ==
        "http://127.0.0.1:" + std::to_string(s.server->port()) + "/?token=" + kToken);

  SECTION("the page loads, self-contained, with a CSP") {
    const auto r = c.Get(with_token("/").c_str());
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->get_header_value("Content-Type").rfind("text/html", 0) == 0);
    CHECK(r->body.find("id=\"asset-list\"") != std::string::npos);
    CHECK(r->body.find("<script nonce=\"") != std::string::npos);
    CHECK(r->body.find("src=\"http") == std::string::npos);
    CHECK(r->body.find("href=\"http") == std::string::npos);
    const std::string csp = r->get_header_value("Content-Security-Policy");
    CHECK(csp.find("default-src 'none'") != std::string::npos);
    CHECK(csp.find("'nonce-") != std::string::npos);
    CHECK(r->get_header_value("X-Content-Type-Options") == "nosniff");
  }

  SECTION("every route needs the token") {
    for (const std::string path :
         {"/", "/api/run", "/files/MUG-001/web-banner/visual-default-s0.png"}) {
      INFO(path);
      const auto none = c.Get(path.c_str());
      REQUIRE(none);
      CHECK(none->status == 403);
      const auto wrong = c.Get((path + "?token=" + std::string(kToken.size(), 'x')).c_str());
      REQUIRE(wrong);
      CHECK(wrong->status == 403);
      const auto by_header = c.Get(path.c_str(), {{"X-Studio-Token", kToken}});
      REQUIRE(by_header);
      CHECK(by_header->status == 200);
    }
    const auto p = c.Post("/api/review", json{{"work_id", "vis1"}}.dump(), "application/json");
    REQUIRE(p);
    CHECK(p->status == 403);
    CHECK_FALSE(fs::exists(f.run / "review.jsonl"));
  }

  SECTION("/api/run groups assets by item and channel, revisions under their base") {
    const json run = get_run(c);
    CHECK(run["run_id"] == "run42");
    CHECK(run["job_name"] == "reviewtest");
    CHECK(run["revise_command"] == "studio run " + (f.dir / "job.json").string() + " --revise");
    REQUIRE(run["items"].size() == 2);
    CHECK(run["items"][0]["item"] == "CUP-002");  // items by name
    CHECK(run["items"][1]["item"] == "MUG-001");
    const json& mug = run["items"][1]["channels"][0];
    CHECK(mug["channel"] == "web-banner");
    REQUIRE(mug["assets"].size() == 2);  // the revision is no asset of its own
    CHECK(mug["assets"][0]["kind"] == "caption");
    CHECK(mug["assets"][1]["kind"] == "visual");
    CHECK(run["counts"]["assets"] == 3);
    CHECK(run["counts"]["undecided"] == 3);

    const json* cap = find_asset(run, "cap1");
    REQUIRE(cap);
    CHECK((*cap)["revision"] == 1);
    CHECK((*cap)["latest_work_id"] == "cap1r1");
    CHECK((*cap)["output"] == "MUG-001/web-banner/caption-default-s0.r1.txt");
    REQUIRE((*cap)["revisions"].size() == 2);
    CHECK((*cap)["revisions"][0]["revision"] == 0);
    CHECK((*cap)["revisions"][0]["output"] == "MUG-001/web-banner/caption-default-s0.txt");
    CHECK((*cap)["revisions"][1]["work_id"] == "cap1r1");
    CHECK((*cap)["media"] == "text");
    CHECK((*cap)["caption"]["text"] == f.caption_r1_text);
    CHECK((*cap)["caption"]["chars"] == f.caption_r1_text.size());
    CHECK((*cap)["caption"]["passed"] == true);
    CHECK((*cap)["caption"]["repairs"][0] == "inserted hashtags from the brief");
    CHECK((*cap)["caption"]["rules"]["max_chars"] == 300);
    CHECK((*cap)["verdict"].is_null());

    const json* edit = find_asset(run, "edit1");
    REQUIRE(edit);
    CHECK((*edit)["media"] == "image");
    CHECK((*edit)["prompt"] == "a cup in snow");
    CHECK((*edit)["previews"]["before"] == "CUP-002/web-banner/edit-default-s0.before.png");
    CHECK((*edit)["previews"]["mask"] == "CUP-002/web-banner/edit-default-s0.mask.png");
    REQUIRE((*edit)["kpi"].is_object());
    CHECK((*edit)["kpi"]["nfe"] == 12);
    const json* vis = find_asset(run, "vis1");
    REQUIRE(vis);
    CHECK((*vis)["previews"].empty());

    REQUIRE(run["failed"].size() == 1);
    CHECK(run["failed"][0]["work_id"] == "cap2");
    CHECK(run["failed"][0]["error"] == "model exploded");
    REQUIRE(run["kpi"].is_object());
    CHECK(run["kpi"]["assets"] == 2);
  }

  SECTION("older review lines (no \"v\") still give the current verdict") {
    write_file(f.run / "review.jsonl",
               json{{"output", "MUG-001/web-banner/visual-default-s0.png"},
                    {"verdict", "reject"},
                    {"reviewer", "kim"},
                    {"note", "too dark"}}
                       .dump() +
                   "\n" + json{{"work_id", "edit1"}, {"verdict", "accept"}}.dump() + "\n" +
                   "{\"work_id\":\"cap1\",\"verd");  // a torn last line is dropped
    const json run = get_run(c);
    CHECK((*find_asset(run, "vis1"))["verdict"]["verdict"] == "reject");
    CHECK((*find_asset(run, "vis1"))["verdict"]["note"] == "too dark");
    CHECK((*find_asset(run, "edit1"))["verdict"]["verdict"] == "accept");
    CHECK((*find_asset(run, "cap1"))["verdict"].is_null());
    CHECK(run["counts"]["reject"] == 1);
    CHECK(run["counts"]["accept"] == 1);
    CHECK(run["counts"]["undecided"] == 1);
  }
}

TEST_CASE("review server: files are served from the run folder only", "[review]") {
  const FakeRun f = make_run("review_files");
  fs::create_symlink(f.dir / "secret.txt", f.run / "MUG-001" / "escape.txt");
  fs::create_directory_symlink(f.dir, f.run / "up");
  Served s = serve(f.run);
  httplib::Client& c = *s.client;

  const auto ok = c.Get(with_token("/files/MUG-001/web-banner/visual-default-s0.png").c_str());
  REQUIRE(ok);
  CHECK(ok->status == 200);
  CHECK(ok->body == read_file(f.run / "MUG-001/web-banner/visual-default-s0.png"));
  CHECK(ok->get_header_value("Content-Type") == "image/png");
  CHECK(ok->get_header_value("X-Content-Type-Options") == "nosniff");
  CHECK(ok->get_header_value("Content-Security-Policy").find("sandbox") != std::string::npos);
  const auto txt = c.Get(with_token("/files/MUG-001/web-banner/caption-default-s0.txt").c_str());
  REQUIRE(txt);
  CHECK(txt->get_header_value("Content-Type") == "text/plain; charset=utf-8");
  const auto encoded =
      c.Get(with_token("/files/MUG-001%2Fweb-banner%2Fvisual-default-s0.png").c_str());
  REQUIRE(encoded);
  CHECK(encoded->status == 200);

  const std::string secret = (f.dir / "secret.txt").string();
  for (const std::string& path : std::vector<std::string>{
           "/files/../secret.txt", "/files/%2e%2e%2fsecret.txt", "/files/..%2fsecret.txt",
           "/files/%2E%2E/secret.txt", "/files/MUG-001/../../secret.txt",
           "/files/MUG-001/%2e%2e/%2e%2e/secret.txt", "/files/" + secret, "/files//" + secret,
           "/files/%2F" + secret.substr(1), "/files/MUG-001/escape.txt", "/files/up/secret.txt",
           "/files/MUG-001", "/files/MUG-001/", "/files/", "/files/MUG-001%5C..%5C..%5Csecret.txt",
           "/files/MUG-001/web-banner%00.txt", "/files/no-such-file.png"}) {
    INFO(path);
    const auto r = c.Get(with_token(path).c_str());
    REQUIRE(r);
    CHECK((r->status == 403 || r->status == 404));
    CHECK(r->body.find("TOP-SECRET") == std::string::npos);
  }

  SECTION("resolve_run_file says why") {
    const fs::path root = fs::canonical(f.run);
    std::string why;
    CHECK(resolve_run_file(root, "MUG-001/web-banner/visual-default-s0.png", &why));
    CHECK_FALSE(resolve_run_file(root, "a/../../secret.txt", &why));
    CHECK(why == "\"..\" in path");
    CHECK_FALSE(resolve_run_file(root, "MUG-001/escape.txt", &why));
    CHECK(why == "outside the run folder");
    CHECK_FALSE(resolve_run_file(root, "MUG-001", &why));
    CHECK(why == "not a regular file");
    CHECK_FALSE(resolve_run_file(root, secret, &why));
    CHECK(why == "absolute path");
  }
}

TEST_CASE("review server: POST /api/review appends one v2 line or nothing", "[review]") {
  const FakeRun f = make_run("review_post");
  Served s = serve(f.run);
  httplib::Client& c = *s.client;
  const fs::path file = f.run / "review.jsonl";

  const json good = {{"work_id", "vis1"},           {"revision", 0}, {"verdict", "reject"},
                     {"reason", "logo is cut off"}, {"note", ""},    {"seconds", 3.25}};
  SECTION("invalid decisions are refused with a JSON error and write nothing") {
    std::vector<json> bad;
    for (const auto& [key, value] :
         std::vector<std::pair<std::string, json>>{{"verdict", "maybe"},
                                                   {"verdict", nullptr},
                                                   {"reason", ""},
                                                   {"reason", "   "},
                                                   {"reason", std::string(4001, 'x')},
                                                   {"work_id", "no-such-asset"},
                                                   {"work_id", "cap1r1"},  // a revision's id
                                                   {"work_id", "cap2"},    // failed
                                                   {"revision", 1},
                                                   {"revision", "0"},
                                                   {"seconds", -1},
                                                   {"seconds", "3"},
                                                   {"seconds", nullptr}}) {
      json b = good;
      b[key] = value;
      bad.push_back(b);
    }
    json revise_without_note = good;
    revise_without_note["verdict"] = "revise";
    bad.push_back(revise_without_note);
    json stale = good;  // cap1 is at revision 1
    stale["work_id"] = "cap1";
    bad.push_back(stale);
    for (const auto& b : bad) {
      INFO(b.dump());
      const auto r = post(c, b);
      REQUIRE(r);
      CHECK(r->status == 400);
      CHECK(json::parse(r->body).contains("error"));
    }
    const auto not_json = c.Post(with_token("/api/review").c_str(), "{verdict", "application/json");
    REQUIRE(not_json);
    CHECK(not_json->status == 400);
    CHECK_FALSE(fs::exists(file));
  }

  SECTION("a valid decision appends exactly one line and regenerates the report") {
    const auto r = post(c, good);
    REQUIRE(r);
    INFO(r->body);
    REQUIRE(r->status == 200);
    const json reply = json::parse(r->body);
    CHECK(reply["verdict"]["verdict"] == "reject");
    CHECK(reply["report"] == "regenerated");
    CHECK(fs::exists(f.run / "report.html"));
    CHECK(fs::exists(f.run / "kpi.csv"));
    auto lines = review_lines(f.run);
    REQUIRE(lines.size() == 1);
    const json& l = lines[0];
    CHECK(l["v"] == 2);
    CHECK(l["work_id"] == "vis1");
    CHECK(l["revision"] == 0);
    CHECK(l["output"] == "MUG-001/web-banner/visual-default-s0.png");
    CHECK(l["verdict"] == "reject");
    CHECK(l["reason"] == "logo is cut off");
    CHECK(l["note"] == "");
    CHECK(l["reviewer"] == "kim");
    CHECK(l["seconds"] == Approx(3.25));
    CHECK(l["time"].get<std::string>().size() == std::string("2026-11-22T22:03:59.123Z").size());
    CHECK(l.size() == 10);

    // A revision request on the caption's latest revision (1); the page then shows both.
    const auto r2 = post(c, {{"work_id", "cap1"},
                             {"revision", 1},
                             {"verdict", "revise"},
                             {"note", "mention the 350 ml"},
                             {"seconds", 0}});
    REQUIRE(r2);
    CHECK(r2->status == 200);
    lines = review_lines(f.run);
    REQUIRE(lines.size() == 2);
    CHECK(lines[1]["revision"] == 1);
    CHECK(lines[1]["note"] == "mention the 350 ml");
    CHECK(lines[1]["output"] == "MUG-001/web-banner/caption-default-s0.r1.txt");
    const json run = get_run(c);
    CHECK((*find_asset(run, "vis1"))["verdict"]["reason"] == "logo is cut off");
    CHECK((*find_asset(run, "cap1"))["verdict"]["verdict"] == "revise");
    CHECK(run["counts"]["reject"] == 1);
    CHECK(run["counts"]["revise"] == 1);
  }
}

TEST_CASE("review server: listens on loopback only by default", "[review]") {
  CHECK(is_loopback_host("127.0.0.1"));
  CHECK(is_loopback_host("127.1.2.3"));
  CHECK(is_loopback_host("::1"));
  CHECK(is_loopback_host("localhost"));
  CHECK_FALSE(is_loopback_host("0.0.0.0"));
  CHECK_FALSE(is_loopback_host("192.168.1.10"));
  CHECK_FALSE(is_loopback_host("127.0.0.1.example.com"));
  CHECK(random_review_token().size() == 32);
  CHECK(random_review_token() != random_review_token());
  ReviewServerOptions bad_token;
  bad_token.token = "short";
  const FakeRun f = make_run("review_loopback");
  CHECK_THROWS_AS(ReviewServer(f.run, bad_token), UsageError);

  Served s = serve(f.run);
  // The machine's first non-loopback IPv4 address, if it has one.
  std::string other;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) == 0) {
    for (ifaddrs* i = list; i && other.empty(); i = i->ifa_next) {
      if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
      char buf[INET_ADDRSTRLEN] = {};
      const auto* in = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
      inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
      if (!is_loopback_host(buf)) other = buf;
    }
    freeifaddrs(list);
  }
  if (other.empty()) {
    WARN("no non-loopback IPv4 address on this machine: the interface check is skipped");
    return;
  }
  INFO("non-loopback address " << other);
  httplib::Client remote(other, s.server->port());
  remote.set_connection_timeout(2);
  const auto r = remote.Get(with_token("/api/run").c_str());
  CHECK_FALSE(r);  // nothing listens there
  const auto local = s.client->Get(with_token("/api/run").c_str());
  REQUIRE(local);
  CHECK(local->status == 200);
}

TEST_CASE("studio review refuses a folder that is not a run", "[review]") {
  const fs::path dir = temp_dir("review_cli");
  const auto missing = test::run_studio("review " + test::shell_quote((dir / "nope").string()));
  CHECK(missing.exit_code == 1);
  CHECK(missing.output.find("does not exist") != std::string::npos);
  const auto not_run = test::run_studio("review " + test::shell_quote(dir.string()));
  INFO(not_run.output);
  CHECK(not_run.exit_code == 1);
  CHECK(not_run.output.find("not a run folder") != std::string::npos);
  const auto bad_port =
      test::run_studio("review " + test::shell_quote(dir.string()) + " --port 70000");
  CHECK(bad_port.exit_code == 2);
}
