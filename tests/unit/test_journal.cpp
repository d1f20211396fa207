// The run journal: torn last lines recovered, corrupt lines reported, last record wins, outputs
// verified by size and SHA-256, and concurrent appends that never interleave.
#include <catch2/catch.hpp>

#include <set>
#include <thread>

#include "core/error.h"
#include "pipeline/journal.h"
#include "tests/support/expect_error.h"
#include "tests/support/fixtures.h"

using namespace studio;
using studio::test::read_file;
using studio::test::temp_dir;
using studio::test::write_file;
namespace fs = std::filesystem;

namespace {

JournalRecord record(const std::string& id, const std::string& status, int64_t attempt = 1) {
  JournalRecord r;
  r.work_id = id;
  r.item = "mug";
  r.kind = "caption";
  r.channel = "web";
  r.variant = "A";
  r.seed = 7;
  r.status = status;
  r.stage = status == "done" ? "write" : "text";
  r.error = status == "done" ? "" : "caption rules not met";
  r.attempt = attempt;
  return r;
}

std::string line_of(const JournalRecord& r) { return r.to_json().dump() + "\n"; }

}  // namespace

TEST_CASE("journal: append, reopen, last record wins", "[unit][journal]") {
  const fs::path run = temp_dir("journal_last_wins");
  {
    Journal j(run, "0-of-1");
    CHECK(j.records().empty());
    CHECK(fs::exists(run / "journal" / "0-of-1.jsonl"));
    j.append(record("a", "done"));
    j.append(record("b", "failed"));
    j.append(record("c", "done"));
    j.append(record("b", "done", 2));
    j.append(record("c", "failed", 2));
  }
  Journal j(run, "0-of-1");
  CHECK(j.warnings().empty());
  REQUIRE(j.records().size() == 5);
  CHECK(j.done("a"));
  CHECK(j.done("b"));  // failed, then retried and done
  CHECK_FALSE(j.done("c"));  // done, then failed: re-done on resume
  CHECK_FALSE(j.done("zzz"));
  REQUIRE(j.last("b"));
  CHECK(j.last("b")->attempt == 2);
  CHECK(j.attempts("b") == 2);
  CHECK(j.attempts("zzz") == 0);
  CHECK_FALSE(j.last("a")->time.empty());
  CHECK(j.last("a")->time.back() == 'Z');
  // Every line is one JSON object with the documented fields.
  const auto line = nlohmann::json::parse(read_file(j.file()).substr(0, read_file(j.file()).find('\n')));
  for (const char* key : {"v", "work_id", "item", "kind", "channel", "variant", "seed", "status",
                          "output", "sha256", "bytes", "stage", "error", "attempt", "time"})
    CHECK(line.contains(key));
}

TEST_CASE("journal: a torn last line is dropped and cut off the file", "[unit][journal]") {
  const fs::path run = temp_dir("journal_torn");
  const fs::path file = run / "journal" / "0-of-1.jsonl";
  const std::string good = line_of(record("a", "done")) + line_of(record("b", "done"));

  SECTION("no final newline") {
    const std::string torn = line_of(record("c", "done"));
    write_file(file, good + torn.substr(0, torn.size() / 2));
  }
  SECTION("a final line that is not JSON") { write_file(file, good + "{\"v\":1,\"work_id\":\"c\",\x01\n"); }
  SECTION("a complete line without its newline") {
    const std::string whole = line_of(record("c", "done"));
    write_file(file, good + whole.substr(0, whole.size() - 1));
  }
  SECTION("zero bytes left by a power loss") { write_file(file, good + std::string(37, '\0')); }

  Journal j(run, "0-of-1");
  CHECK(j.records().size() == 2);
  REQUIRE(j.warnings().size() == 1);
  CHECK_THAT(j.warnings()[0], Catch::Contains("torn last line") && Catch::Contains(":3"));
  CHECK(read_file(file) == good);  // cut off
  CHECK_FALSE(j.done("c"));
  j.append(record("c", "done"));
  Journal again(run, "0-of-1");
  CHECK(again.warnings().empty());
  CHECK(again.records().size() == 3);
  CHECK(again.done("c"));
}

TEST_CASE("journal: a corrupt line before the last is an error naming file and line",
          "[unit][journal]") {
  const fs::path run = temp_dir("journal_corrupt");
  const fs::path file = run / "journal" / "0-of-1.jsonl";
  const std::string a = line_of(record("a", "done"));
  const std::string before = a + "{not json\n" + line_of(record("b", "done"));
  write_file(file, before);
  try {
    Journal j(run, "0-of-1");
    FAIL("no error");
  } catch (const FormatError& e) {
    CHECK_THAT(e.where(), Catch::Contains("0-of-1.jsonl:2"));
    CHECK_THAT(e.hint(), Catch::Contains("delete that line"));
  }
  CHECK(read_file(file) == before);  // nothing cut

  // A number too large for a double (out_of_range from the parser): the same error.
  const std::string overflow = a + "{\"v\":1,\"x\":1e999}\n" + a;
  write_file(file, overflow);
  const auto e = studio::test::caught<FormatError>([&] { Journal j(run, "0-of-1"); });
  CHECK_THAT(e.where(), Catch::Contains("0-of-1.jsonl:2"));
  CHECK_THAT(e.what_failed(), Catch::Contains("number overflow"));
  CHECK(read_file(file) == overflow);

  // Valid JSON that is not a record: also an error, also with the line.
  write_file(file, a + "{\"v\":1,\"status\":\"done\"}\n" + a);
  try {
    Journal j(run, "0-of-1");
    FAIL("no error");
  } catch (const FormatError& e) {
    CHECK_THAT(e.where(), Catch::Contains(":2"));
    CHECK_THAT(e.what_failed(), Catch::Contains("work_id"));
  }
  write_file(file, a + "{\"v\":2,\"work_id\":\"x\",\"status\":\"done\"}\n" + a);
  CHECK_THROWS_AS(Journal(run, "0-of-1"), FormatError);
}

TEST_CASE("journal: verify_output detects missing and altered outputs", "[unit][journal]") {
  const fs::path run = temp_dir("journal_verify");
  write_file(run / "mug" / "web" / "caption-A-s7.txt", "A mug for mornings.\n");
  Journal j(run, "0-of-1");
  JournalRecord r = record("a", "done");
  r.output = "mug/web/caption-A-s7.txt";
  hash_output(run, r);
  CHECK(r.bytes == 20);
  CHECK(r.sha256.size() == 64);
  j.append(r);

  std::string why;
  CHECK(verify_output(run, r, &why));
  CHECK(j.done_and_verified("a", &why));

  write_file(run / r.output, "A mug for mornings!\n");  // same size, other bytes
  CHECK_FALSE(verify_output(run, r, &why));
  CHECK_THAT(why, Catch::Contains("changed"));
  CHECK_FALSE(j.done_and_verified("a"));

  write_file(run / r.output, "A mug.\n");
  CHECK_FALSE(verify_output(run, r, &why));
  CHECK_THAT(why, Catch::Contains("bytes"));

  fs::remove(run / r.output);
  CHECK_FALSE(verify_output(run, r, &why));
  CHECK_THAT(why, Catch::Contains("missing"));

  JournalRecord failed = record("b", "failed");
  CHECK_FALSE(verify_output(run, failed, &why));
}

TEST_CASE("journal: concurrent appends from threads do not interleave", "[unit][journal]") {
  const fs::path run = temp_dir("journal_threads");
  constexpr int kThreads = 8, kEach = 100;
  {
    Journal j(run, "0-of-1");
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&j, t] {
        for (int i = 0; i < kEach; ++i) {
          JournalRecord r = record("t" + std::to_string(t) + "-" + std::to_string(i), "failed");
          r.error = std::string(3000 + t * 100, static_cast<char>('a' + t));  // long lines
          j.append(r);
        }
      });
    for (auto& th : threads) th.join();
    CHECK(j.records().size() == kThreads * kEach);
  }
  Journal j(run, "0-of-1");
  CHECK(j.warnings().empty());
  const auto records = j.records();
  REQUIRE(records.size() == kThreads * kEach);
  std::set<std::string> ids;
  for (const auto& r : records) {
    ids.insert(r.work_id);
    const int t = r.work_id[1] - '0';
    CHECK(r.error == std::string(3000 + t * 100, static_cast<char>('a' + t)));
  }
  CHECK(ids.size() == kThreads * kEach);
}

TEST_CASE("journal: read_all_journals reads every shard", "[unit][journal]") {
  const fs::path run = temp_dir("journal_all");
  {
    Journal a(run, "0-of-2");
    Journal b(run, "1-of-2");
    a.append(record("x", "done"));
    b.append(record("y", "done"));
    b.append(record("z", "failed"));
  }
  const std::string torn = line_of(record("w", "done"));
  write_file(run / "journal" / "1-of-2.jsonl",
             read_file(run / "journal" / "1-of-2.jsonl") + torn.substr(0, 10));
  std::vector<std::string> warnings;
  const auto all = read_all_journals(run, &warnings);
  REQUIRE(all.size() == 3);
  CHECK(all[0].work_id == "x");
  CHECK(all[2].work_id == "z");
  CHECK(warnings.size() == 1);
  CHECK(read_file(run / "journal" / "1-of-2.jsonl").size() > 0);
  CHECK_THROWS_AS(Journal(run, "../evil"), UsageError);
}
