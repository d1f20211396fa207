// text/caption_rules: every rule's violations with byte ranges into multi-byte text, word
// boundaries, emoji sequences (ZWJ, flags, keycaps, skin tones), strict JSON reading.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "text/caption_rules.h"

using namespace studio;
using nlohmann::json;

namespace {

// Byte range of the n-th (0-based) occurrence of `needle` in `text`, found with plain byte search.
std::pair<size_t, size_t> bytes_of(const std::string& text, const std::string& needle,
                                   int nth = 0) {
  size_t at = text.find(needle);
  for (int i = 0; i < nth && at != std::string::npos; ++i) at = text.find(needle, at + 1);
  REQUIRE(at != std::string::npos);
  return {at, at + needle.size()};
}

std::vector<RuleViolation> of_rule(const std::vector<RuleViolation>& all, const std::string& rule) {
  std::vector<RuleViolation> out;
  for (const RuleViolation& v : all)
    if (v.rule == rule) out.push_back(v);
  return out;
}

std::string config_error_message(const json& j, const std::string& path = "/caption/rules") {
  try {
    CaptionRules::from_json(j, "presets/shop.json", path);
  } catch (const ConfigError& e) {
    CHECK(e.where() == "presets/shop.json");
    CHECK_THAT(e.hint(), Catch::Contains("docs/presets.md"));
    return e.what_failed();
  }
  FAIL("from_json accepted " << j.dump());
  return {};
}

// "café ☕ fresh roast": é is 2 bytes, ☕ (U+2615) 3 bytes; 18 characters, 21 bytes.
const std::string kCafe = "caf\xc3\xa9 \xe2\x98\x95 fresh roast";

}  // namespace

TEST_CASE("count_chars counts code points", "[unit][text][caption_rules]") {
  CHECK(count_chars("") == 0);
  CHECK(count_chars(kCafe) == 18);
  CHECK(kCafe.size() == 21);
  CHECK(count_chars("\xf0\x9f\x87\xab\xf0\x9f\x87\xb7") == 2);  // a flag is two code points
}

TEST_CASE("no rules, no violations, empty() tells", "[unit][text][caption_rules]") {
  CaptionRules rules;
  CHECK(rules.empty());
  CHECK(check_caption(kCafe, rules).empty());
  rules.case_sensitive = true;  // a matching mode, not a rule
  CHECK(rules.empty());
  rules.emoji = EmojiPolicy::kNone;
  CHECK_FALSE(rules.empty());
  CaptionRules tags;
  tags.hashtags_max = 3;
  CHECK_FALSE(tags.empty());
}

TEST_CASE("max_chars re-masks from the word that crosses the limit",
          "[unit][text][caption_rules]") {
  CaptionRules rules;
  rules.max_chars = 18;
  CHECK(check_caption(kCafe, rules).empty());

  rules.max_chars = 9;  // character 9 is the 'e' of "fresh" (characters 7..11)
  auto v = check_caption(kCafe, rules);
  REQUIRE(v.size() == 1);
  CHECK(v[0].rule == "max_chars");
  CHECK(v[0].begin == bytes_of(kCafe, "fresh").first);
  CHECK(v[0].begin == 10);
  CHECK(v[0].end == kCafe.size());
  CHECK(v[0].insert.empty());
  CHECK_THAT(v[0].message, Catch::Contains("caption has 18 characters, the limit is 9"));
  CHECK_THAT(v[0].message, Catch::Contains("character 7"));

  rules.max_chars = 12;  // character 12 is the space after "fresh"
  v = check_caption(kCafe, rules);
  REQUIRE(v.size() == 1);
  CHECK(v[0].begin == bytes_of(kCafe, " roast").first);
  CHECK(v[0].end == kCafe.size());

  rules.max_chars = 5;  // character 5 is the ☕ itself (a one-character word)
  v = check_caption(kCafe, rules);
  REQUIRE(v.size() == 1);
  CHECK(v[0].begin == 6);
}

TEST_CASE("min_chars asks for text at the end", "[unit][text][caption_rules]") {
  CaptionRules rules;
  rules.min_chars = 18;
  CHECK(check_caption(kCafe, rules).empty());
  rules.min_chars = 40;
  auto v = check_caption(kCafe, rules);
  REQUIRE(v.size() == 1);
  CHECK(v[0].rule == "min_chars");
  CHECK(v[0].begin == kCafe.size());
  CHECK(v[0].end == kCafe.size());
  CHECK_THAT(v[0].message, Catch::Contains("18 characters") && Catch::Contains("40"));
}

TEST_CASE("required words: whole words, case-insensitive unless case_sensitive",
          "[unit][text][caption_rules]") {
  CaptionRules rules;
  rules.required_words = {"Roast", "espresso", "fresh roast", "caf\xc3\x89"};  // "CAFÉ" lowercase-É
  auto v = check_caption(kCafe, rules);
  REQUIRE(v.size() == 1);
  CHECK(v[0].rule == "required_words");
  CHECK(v[0].insert == "espresso");
  CHECK(v[0].begin == kCafe.size());
  CHECK(v[0].end == kCafe.size());
  CHECK_THAT(v[0].message, Catch::Contains("\"espresso\""));

  rules.required_words = {"roas", "rest"};  // inside words only: no match
  v = check_caption(kCafe, rules);
  REQUIRE(v.size() == 2);
  CHECK(v[0].insert == "roas");
  CHECK(v[1].insert == "rest");

  rules.case_sensitive = true;
  rules.required_words = {"Roast", "roast"};
  v = check_caption(kCafe, rules);
  REQUIRE(v.size() == 1);
  CHECK(v[0].insert == "Roast");
}

TEST_CASE("banned words: every occurrence, word boundaries, byte ranges",
          "[unit][text][caption_rules]") {
  const std::string text = "\xe2\x98\x95 Cheapest caf\xc3\xa9, cheap_deal, cheap! CHEAP deals";
  CaptionRules rules;
  rules.banned_words = {"cheap", "deals"};
  auto v = check_caption(text, rules);
  REQUIRE(v.size() == 3);  // not "Cheapest", not "cheap_deal"
  for (const auto& x : v) CHECK(x.rule == "banned_words");
  CHECK(v[0].begin == bytes_of(text, "cheap!").first);
  CHECK(v[0].end == bytes_of(text, "cheap!").first + 5);
  CHECK(std::make_pair(v[1].begin, v[1].end) == bytes_of(text, "CHEAP"));
  CHECK(std::make_pair(v[2].begin, v[2].end) == bytes_of(text, "deals"));  // sorted by position
  CHECK(v[0].insert.empty());
  // Character offset in the message: ☕ is one character although three bytes.
  CHECK_THAT(v[0].message, Catch::Contains("character 29"));
  CHECK(text.substr(v[1].begin, v[1].end - v[1].begin) == "CHEAP");

  rules.case_sensitive = true;
  rules.banned_words = {"CHEAP"};
  v = check_caption(text, rules);
  REQUIRE(v.size() == 1);
  CHECK(std::make_pair(v[0].begin, v[0].end) == bytes_of(text, "CHEAP"));

  SECTION("phrases may contain spaces") {
    CaptionRules p;
    p.banned_words = {"free shipping"};
    const std::string t = "Free shipping today, freeshipping, free shippings";
    auto pv = check_caption(t, p);
    REQUIRE(pv.size() == 1);
    CHECK(pv[0].begin == 0);
    CHECK(pv[0].end == 13);
  }
}

TEST_CASE("brand terms: exact spelling, with the fix to insert", "[unit][text][caption_rules]") {
  const std::string text = "Caf\xc3\xa9 iphone, IPHONE case, iPhone, iPhones";
  CaptionRules rules;
  rules.brand_terms = {"iPhone"};
  rules.case_sensitive = true;  // brand terms are found case-insensitively regardless
  auto v = check_caption(text, rules);
  REQUIRE(v.size() == 2);
  CHECK(v[0].rule == "brand_terms");
  CHECK(std::make_pair(v[0].begin, v[0].end) == bytes_of(text, "iphone"));
  CHECK(v[0].insert == "iPhone");
  CHECK(std::make_pair(v[1].begin, v[1].end) == bytes_of(text, "IPHONE"));
  CHECK(v[1].insert == "iPhone");
  CHECK_THAT(v[0].message, Catch::Contains("\"iphone\"") && Catch::Contains("character 5"));

  rules.brand_required = true;
  CHECK(of_rule(check_caption(text, rules), "brand_required").empty());  // misspelt is present

  rules.brand_terms = {"Nespresso", "AeroPress"};
  v = check_caption(text, rules);
  REQUIRE(v.size() == 1);
  CHECK(v[0].rule == "brand_required");
  CHECK(v[0].begin == text.size());
  CHECK(v[0].end == text.size());
  CHECK(v[0].insert == "Nespresso");
}

TEST_CASE("hashtags: min, max (with the space before), required", "[unit][text][caption_rules]") {
  const std::string text =
      "Fresh #Coffee #morning \xe2\x98\x95 #caf\xc3\xa9_time #1 and # alone, "
      "#\xef\xb8\x8f\xe2\x83\xa3";
  // hashtags: #Coffee #morning #café_time #1 ('#' alone and the keycap #️⃣ are not hashtags)
  CaptionRules rules;
  rules.hashtags_max = 4;
  CHECK(check_caption(text, rules).empty());

  rules.hashtags_max = 2;
  auto v = check_caption(text, rules);
  REQUIRE(v.size() == 2);
  CHECK(v[0].rule == "hashtags.max");
  CHECK(std::make_pair(v[0].begin, v[0].end) == bytes_of(text, " #caf\xc3\xa9_time"));
  CHECK(std::make_pair(v[1].begin, v[1].end) == bytes_of(text, " #1"));
  CHECK(v[0].insert.empty());

  rules.hashtags_max = 0;
  v = check_caption(text, rules);
  REQUIRE(v.size() == 4);
  CHECK(std::make_pair(v[0].begin, v[0].end) == bytes_of(text, " #Coffee"));

  CaptionRules at_start;
  at_start.hashtags_max = 0;
  v = check_caption("#sale now", at_start);
  REQUIRE(v.size() == 1);
  CHECK(v[0].begin == 0);  // no space before: just the tag
  CHECK(v[0].end == 5);

  CaptionRules req;
  req.hashtags_required = {"#coffee", "#Sale", "#morn"};
  v = check_caption(text, req);
  REQUIRE(v.size() == 2);  // #Coffee matches case-insensitively; #morn is not #morning
  CHECK(v[0].rule == "hashtags.required");
  CHECK(v[0].insert == "#Sale");
  CHECK(v[1].insert == "#morn");
  CHECK(v[0].begin == text.size());
  CHECK(v[0].end == text.size());

  req.hashtags_min = 5;
  v = check_caption(text, req);
  REQUIRE(v.size() == 3);
  CHECK(v[0].rule == "hashtags.min");
  CHECK(v[0].begin == text.size());
  CHECK(v[0].insert == "#Sale #morn");
  CHECK_THAT(v[0].message, Catch::Contains("4 hashtags") && Catch::Contains("at least 5"));

  CaptionRules min_only;
  min_only.hashtags_min = 1;
  v = check_caption("no tags here", min_only);
  REQUIRE(v.size() == 1);
  CHECK(v[0].insert.empty());
}

TEST_CASE("emoji: sequences count once, text symbols are not emoji",
          "[unit][text][caption_rules]") {
  const std::string coffee = "\xe2\x98\x95";  // ☕
  const std::string family =
      "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d"
      "\xf0\x9f\x91\xa7\xe2\x80\x8d\xf0\x9f\x91\xa6";            // 👨‍👩‍👧‍👦
  const std::string fr = "\xf0\x9f\x87\xab\xf0\x9f\x87\xb7";     // 🇫🇷
  const std::string de = "\xf0\x9f\x87\xa9\xf0\x9f\x87\xaa";     // 🇩🇪
  const std::string thumb = "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd";  // 👍🏽
  const std::string keycap = "1\xef\xb8\x8f\xe2\x83\xa3";        // 1️⃣
  const std::string heart = "\xe2\x9d\xa4\xef\xb8\x8f";          // ❤️
  const std::string text = "caf\xc3\xa9 " + coffee + " " + family + " " + fr + de + " " + thumb +
                           " " + keycap + " " + heart +
                           " Studio\xe2\x84\xa2 \xc2\xa9 2024 \xe2\x86\x92";
  // ™, © and → default to text presentation: not emoji without U+FE0F.
  CaptionRules rules;
  rules.emoji = EmojiPolicy::kNone;
  auto v = check_caption(text, rules);
  REQUIRE(v.size() == 7);
  const std::vector<std::string> expected = {coffee, family, fr, de, thumb, keycap, heart};
  for (size_t i = 0; i < expected.size(); ++i) {
    CAPTURE(i);
    CHECK(v[i].rule == "emoji");
    CHECK(std::make_pair(v[i].begin, v[i].end) == bytes_of(text, expected[i]));
  }
  CHECK_THAT(v[1].message, Catch::Contains("character 7"));

  rules.emoji = EmojiPolicy::kAllowed;
  CHECK(check_caption(text, rules).empty());
  rules.emoji_max = 7;
  CHECK(check_caption(text, rules).empty());
  rules.emoji_max = 5;
  v = check_caption(text, rules);
  REQUIRE(v.size() == 2);
  CHECK(v[0].rule == "emoji_max");
  CHECK(std::make_pair(v[0].begin, v[0].end) == bytes_of(text, keycap));
  CHECK(std::make_pair(v[1].begin, v[1].end) == bytes_of(text, heart));

  rules.emoji = EmojiPolicy::kRequired;
  rules.emoji_max = -1;
  CHECK(check_caption(text, rules).empty());
  const std::string plain =
      "Studio\xe2\x84\xa2 \xc2\xa9 caf\xc3\xa9 \xe2\x9d\xa4";  // ❤ without FE0F
  v = check_caption(plain, rules);
  REQUIRE(v.size() == 1);
  CHECK(v[0].rule == "emoji");
  CHECK(v[0].begin == plain.size());
  CHECK(v[0].end == plain.size());

  rules.emoji = EmojiPolicy::kNone;
  CHECK(check_caption("\xe2\x84\xa2\xef\xb8\x8f", rules).size() == 1);  // ™️ with FE0F is one
}

TEST_CASE("violations come grouped by rule in the documented order",
          "[unit][text][caption_rules]") {
  CaptionRules rules;
  rules.max_chars = 10;
  rules.required_words = {"organic"};
  rules.banned_words = {"cheap"};
  rules.brand_terms = {"iPhone"};
  rules.hashtags_required = {"#ad"};
  rules.emoji = EmojiPolicy::kNone;
  const std::string text = "Cheap iphone case \xf0\x9f\x93\xb1";
  auto v = check_caption(text, rules);
  std::vector<std::string> names;
  for (const auto& x : v) names.push_back(x.rule);
  CHECK(names == std::vector<std::string>{"max_chars", "required_words", "banned_words",
                                          "brand_terms", "hashtags.required", "emoji"});
}

TEST_CASE("invalid UTF-8 is a FormatError naming the byte offset", "[unit][text][caption_rules]") {
  CaptionRules rules;
  rules.max_chars = 100;
  try {
    check_caption("caf\xc3\xa9 \xff", rules);
    FAIL("no error");
  } catch (const FormatError& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains("byte 6"));
  }
}

TEST_CASE("from_json lists every problem with its JSON path", "[unit][text][caption_rules]") {
  const json j = json::parse(R"({
    "max_chars": -5,
    "min_chars": 12.5,
    "banned_words": ["ok", 3, "  "],
    "brand_required": "yes",
    "hashtags": {"required": ["sale", "#ok"], "maxx": 1},
    "emoji": "lots",
    "colour": "blue"
  })");
  const std::string msg = config_error_message(j);
  CHECK_THAT(msg, Catch::Contains("/caption/rules/max_chars: found -5, expected"));
  CHECK_THAT(msg, Catch::Contains("/caption/rules/min_chars: found 12.5, expected an integer"));
  CHECK_THAT(msg, Catch::Contains("/caption/rules/banned_words/1: found 3, expected a string"));
  CHECK_THAT(msg, Catch::Contains("/caption/rules/banned_words/2: found \"  \""));
  CHECK_THAT(msg, Catch::Contains("/caption/rules/brand_required: found \"yes\", expected"));
  CHECK_THAT(msg, Catch::Contains("/caption/rules/hashtags/required/0: found \"sale\""));
  CHECK_THAT(msg, Catch::Contains("/caption/rules/hashtags/maxx: found an unknown key, expected "
                                  "one of min, max, required"));
  CHECK_THAT(msg, Catch::Contains("/caption/rules/emoji: found \"lots\", expected \"allowed\""));
  CHECK_THAT(msg, Catch::Contains("/caption/rules/colour: found an unknown key, expected one of "
                                  "min_chars, max_chars, required_words"));
  CHECK_THAT(msg, Catch::Contains("9 problems"));
  CHECK_THAT(msg, !Catch::Contains("hashtags/required/1"));
}

TEST_CASE("from_json rejects rules that contradict each other", "[unit][text][caption_rules]") {
  const json j = json::parse(R"({
    "min_chars": 300, "max_chars": 280,
    "hashtags": {"min": 3, "max": 1, "required": ["#a", "#b"]},
    "emoji": "required", "emoji_max": 0,
    "brand_required": true,
    "required_words": ["Deal"], "banned_words": ["deal"]
  })");
  const std::string msg = config_error_message(j, "");
  CHECK_THAT(msg, Catch::Contains("/min_chars: found 300, expected at most max_chars (280)"));
  CHECK_THAT(msg, Catch::Contains("/hashtags/min: found 3"));
  CHECK_THAT(msg, Catch::Contains("/hashtags/required: found 2 hashtags"));
  CHECK_THAT(msg, Catch::Contains("/emoji_max: found 0"));
  CHECK_THAT(msg, Catch::Contains("/brand_required: found true"));
  CHECK_THAT(msg, Catch::Contains("/banned_words/0: found \"deal\""));

  // Case-sensitive rules may require "Deal" and ban "deal".
  json ok = json::parse(R"({"required_words": ["Deal"], "banned_words": ["deal"],
                            "case_sensitive": true})");
  CHECK_NOTHROW(CaptionRules::from_json(ok, "x.json", ""));

  const std::string not_object = config_error_message(json::array(), "/caption/rules");
  CHECK_THAT(not_object, Catch::Contains("/caption/rules: found [], expected an object"));
  const std::string brands =
      config_error_message(json::parse(R"({"brand_terms": ["iPhone", "IPHONE"]})"));
  CHECK_THAT(brands, Catch::Contains("/caption/rules/brand_terms/1: found \"IPHONE\""));
}

TEST_CASE("from_json reads every key and to_json round-trips", "[unit][text][caption_rules]") {
  const json j = json::parse(R"({
    "min_chars": 20, "max_chars": 280,
    "required_words": ["coffee", "fresh roast"],
    "banned_words": ["cheap"],
    "brand_terms": ["iPhone", "AeroPress"], "brand_required": true,
    "hashtags": {"min": 1, "max": 5, "required": ["#caf\u00e9"]},
    "emoji": "required", "emoji_max": 3,
    "case_sensitive": true
  })");
  const CaptionRules r = CaptionRules::from_json(j, "presets/shop.json", "/caption/rules");
  CHECK(r.min_chars == 20);
  CHECK(r.max_chars == 280);
  CHECK(r.required_words == std::vector<std::string>{"coffee", "fresh roast"});
  CHECK(r.banned_words == std::vector<std::string>{"cheap"});
  CHECK(r.brand_terms == std::vector<std::string>{"iPhone", "AeroPress"});
  CHECK(r.brand_required);
  CHECK(r.hashtags_min == 1);
  CHECK(r.hashtags_max == 5);
  CHECK(r.hashtags_required == std::vector<std::string>{"#caf\xc3\xa9"});
  CHECK(r.emoji == EmojiPolicy::kRequired);
  CHECK(r.emoji_max == 3);
  CHECK(r.case_sensitive);
  CHECK_FALSE(r.empty());

  const json out = r.to_json();
  CHECK(out == j);
  const CaptionRules back = CaptionRules::from_json(out, "round trip", "");
  CHECK(back.to_json() == out);

  const CaptionRules none = CaptionRules::from_json(json::object(), "x.json", "");
  CHECK(none.empty());
  CHECK(CaptionRules::from_json(none.to_json(), "x.json", "").empty());
  CaptionRules no_emoji;
  no_emoji.emoji = EmojiPolicy::kNone;
  CHECK(CaptionRules::from_json(no_emoji.to_json(), "x.json", "").emoji == EmojiPolicy::kNone);
}
