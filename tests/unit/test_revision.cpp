// Revision rounds (`studio run --revise`, pipeline/revision.h) on the tiny models: only the assets
// whose last review verdict is reject / revise are made again, as <name>.rN.<ext>, with the
// reviewer's note as the instruction; the originals stay; a finished round finds nothing new; a
// verdict on a revision makes the next one from it.
#include <catch2/catch.hpp>

#include <map>
#include <set>

#include "core/json_file.h"
#include "pipeline/plan.h"
#include "pipeline/revision.h"
#include "tests/support/fixtures.h"
#include "tests/support/process.h"
#include "tests/support/run_job.h"

using namespace studio;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

test::ProcessResult studio_run(const fs::path& job, const std::string& extra = "") {
  return test::run_command(test::shell_quote(test::studio_exe().string()) + " run " +
                           test::shell_quote(job.string()) + " --progress none " + extra + " 2>&1");
}

// The journal's last record per work id.
std::map<std::string, json> last_records(const fs::path& out) {
  std::map<std::string, json> m;
  for (const auto& l : test::run_journal_lines(out)) m[l["work_id"].get<std::string>()] = l;
  return m;
}

void append_review(const fs::path& out, const json& line) {
  std::string text = fs::exists(out / "review.jsonl") ? test::read_file(out / "review.jsonl") : "";
  test::write_file(out / "review.jsonl", text + line.dump() + "\n");
}

json verdict(const json& record, const std::string& v, const std::string& reason,
             const std::string& note, int64_t revision = 0) {
  return {{"v", 2},
          {"work_id", record.value("base_work_id", record["work_id"].get<std::string>())},
          {"revision", revision},
          {"output", record["output"]},
          {"verdict", v},
          {"reason", reason},
          {"note", note},
          {"reviewer", "test"},
          {"seconds", 4.5},
          {"time", "2026-11-23T08:00:00.000Z"}};
}

}  // namespace

TEST_CASE("revision outputs are numbered beside the original", "[revise]") {
  CHECK(revision_output("MUG/web/caption-A-s0.txt", 1).generic_string() ==
        "MUG/web/caption-A-s0.r1.txt");
  CHECK(revision_output("MUG/web/visual-A-s3.png", 12).generic_string() ==
        "MUG/web/visual-A-s3.r12.png");
}

#ifdef STUDIO_HAVE_IMAGE
TEST_CASE("studio run --revise re-makes only the assets reviewers sent back", "[run][revise]") {
  const fs::path dir = test::temp_dir("run_revise");
  const fs::path job = test::write_run_job(dir);
  const fs::path out = dir / "out";

  SECTION("without a review there is nothing to revise") {
    const auto r0 = studio_run(job);
    REQUIRE(r0.exit_code == 0);
    const auto r = studio_run(job, "--revise");
    CHECK(r.exit_code != 0);
    CHECK(r.output.find("review.jsonl") != std::string::npos);
    CHECK(r.output.find("studio review") != std::string::npos);
    const auto both = studio_run(job, "--revise --resume");
    CHECK(both.exit_code != 0);
    CHECK(both.output.find("--revise and --resume") != std::string::npos);
  }

  SECTION("a round, a second round, and nothing twice") {
    const fs::path empty = test::temp_dir("run_revise_norun");
    const auto none = studio_run(test::write_run_job(empty), "--revise");
    CHECK(none.exit_code != 0);
    CHECK(none.output.find("no run of this job to revise") != std::string::npos);

    const auto first = studio_run(job);
    INFO(first.output);
    REQUIRE(first.exit_code == 0);
    const auto originals = test::run_assets(out);
    REQUIRE(originals.size() == 4);
    std::map<std::string, json> by_output;  // output -> journal record
    for (const auto& [id, rec] : last_records(out)) by_output[rec["output"]] = rec;
    std::vector<json> captions, visuals;
    for (const auto& [path, rec] : by_output)
      (rec["kind"] == "caption" ? captions : visuals).push_back(rec);
    REQUIRE(captions.size() == 2);
    REQUIRE(visuals.size() == 2);

    // One caption to revise with a note, one visual rejected, one visual to revise, one caption
    // accepted after an earlier reject (the last verdict counts).
    append_review(out, verdict(captions[1], "reject", "too long", ""));
    append_review(out, verdict(captions[0], "revise", "", "mention that it is dishwasher safe"));
    append_review(out, verdict(visuals[0], "reject", "too dark", ""));
    append_review(out, verdict(visuals[1], "revise", "", "on a marble table"));
    append_review(out, verdict(captions[1], "accept", "", ""));

    const auto round = studio_run(job, "--revise");
    INFO(round.output);
    REQUIRE(round.exit_code == 0);
    CHECK(round.output.find("4 asset(s) reviewed, 1 accepted, 3 sent back") != std::string::npos);
    const auto after = test::run_assets(out);
    CHECK(after.size() == 7);
    for (const auto& [path, bytes] : originals) CHECK(after.at(path) == bytes);  // kept as made

    auto rev_path = [](const json& rec, int n) {
      return revision_output(rec["output"].get<std::string>(), n).generic_string();
    };
    CHECK(after.count(rev_path(captions[0], 1)) == 1);
    CHECK(after.count(rev_path(captions[1], 1)) == 0);
    CHECK(after.count(rev_path(visuals[0], 1)) == 1);
    CHECK(after.count(rev_path(visuals[1], 1)) == 1);

    // Journal and ledger: the revisions are their own work items, tied to their base.
    std::map<std::string, json> revisions;
    for (const auto& [id, rec] : last_records(out))
      if (rec.value("revision", 0) > 0) revisions[rec["base_work_id"]] = rec;
    REQUIRE(revisions.size() == 3);
    for (const json* base : {&captions[0], &visuals[0], &visuals[1]}) {
      const json& rec = revisions.at((*base)["work_id"]);
      CHECK(rec["status"] == "done");
      CHECK(rec["revision"] == 1);
      CHECK(rec["output"] == rev_path(*base, 1));
      CHECK(rec["work_id"] != (*base)["work_id"]);
    }
    const std::string ledger = test::read_file(out / "ledger" / "0-of-1.jsonl");
    CHECK(ledger.find("\"revision\":1") != std::string::npos);
    CHECK(ledger.find("\"base_work_id\":\"" + captions[0]["work_id"].get<std::string>() + "\"") !=
          std::string::npos);

    // Sidecars say what each revision did.
    const json cap = read_json_file(out / (rev_path(captions[0], 1) + ".json"));
    CHECK(cap["revision"]["verdict"] == "revise");
    CHECK(cap["revision"]["note"] == "mention that it is dishwasher safe");
    CHECK(cap["revision"]["source_text"].get<std::string>() + "\n" ==
          originals.at(captions[0]["output"].get<std::string>()));
    CHECK(cap["caption"]["passed"] == true);
    const json rej = read_json_file(out / (rev_path(visuals[0], 1) + ".json"));
    CHECK(rej["revision"]["verdict"] == "reject");
    CHECK(rej["revision"]["note"] == "too dark");
    CHECK(rej["image"]["seed"] == visuals[0]["seed"].get<int64_t>() + 1000);
    const json red = read_json_file(out / (rev_path(visuals[1], 1) + ".json"));
    CHECK(red["revision"]["verdict"] == "revise");
    const std::string prompt = red["edit"]["prompt"];
    CHECK(prompt.size() > std::string(", on a marble table").size());
    CHECK(prompt.substr(prompt.size() - 19) == ", on a marble table");
    CHECK(red["edit"]["source_prompt"].get<std::string>() + ", on a marble table" == prompt);
    CHECK(after.at(rev_path(visuals[1], 1)) !=
          originals.at(visuals[1]["output"].get<std::string>()));

    // The round regenerated the report.
    CHECK(fs::exists(out / "report.html"));

    // Nothing new until the revisions are reviewed: running again makes nothing.
    const size_t lines = test::run_journal_lines(out).size();
    const auto again = studio_run(job, "--revise");
    INFO(again.output);
    CHECK(again.exit_code == 0);
    CHECK(again.output.find("3 waiting for the review of their last revision") !=
          std::string::npos);
    CHECK(test::run_journal_lines(out).size() == lines);

    // A second round: the revised caption is sent back again and is revised from revision 1.
    append_review(out, verdict(revisions.at(captions[0]["work_id"]), "revise", "", "shorter", 1));
    const auto second = studio_run(job, "--revise");
    INFO(second.output);
    REQUIRE(second.exit_code == 0);
    const auto final_assets = test::run_assets(out);
    CHECK(final_assets.size() == 8);
    const json cap2 = read_json_file(out / (rev_path(captions[0], 2) + ".json"));
    CHECK(cap2["revision"]["revision"] == 2);
    CHECK(cap2["revision"]["source"] == rev_path(captions[0], 1));
    CHECK(cap2["revision"]["source_text"].get<std::string>() + "\n" ==
          final_assets.at(rev_path(captions[0], 1)));
  }
}
#endif  // STUDIO_HAVE_IMAGE
