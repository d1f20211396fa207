// text/unicode and text/ftfy: UTF-8 edge cases, Python's lower(), NFC, and ftfy.fix_text on the
// examples of ftfy's own documentation (expected values produced by ftfy 6.2.0).
#include <catch2/catch.hpp>
#include <string>

#include "text/ftfy.h"
#include "text/unicode.h"

using namespace studio;

namespace {

std::u32string u32(const std::string& utf8) {
  std::u32string out;
  REQUIRE(unicode::decode_utf8(utf8, out));
  return out;
}

std::string fix(const std::string& utf8) { return unicode::encode_utf8(ftfy::fix_text(u32(utf8))); }

}  // namespace

TEST_CASE("decode_utf8 is strict like Python's utf-8 codec", "[unit][text]") {
  std::u32string out;
  size_t at = 99;
  CHECK(unicode::decode_utf8("caf\xc3\xa9 \xf0\x9f\x98\x80", out));
  CHECK(out == U"caf\u00e9 \U0001F600");
  for (const char* bad :
       {"\xc0\xaf", "\xe0\x80\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff", "\xe2\x82"}) {
    out.clear();
    CHECK_FALSE(unicode::decode_utf8(std::string("ok") + bad, out, &at));
    CHECK(at == 2);
  }
}

TEST_CASE("decode_utf8_lossy replaces maximal invalid subparts like errors='replace'",
          "[unit][text]") {
  CHECK(unicode::decode_utf8_lossy("\xed\xa0\x80") == U"\uFFFD\uFFFD\uFFFD");
  CHECK(unicode::decode_utf8_lossy("\xe2\x82") == U"\uFFFD");
  CHECK(unicode::decode_utf8_lossy("\xf0\x9f\x98x") == U"\uFFFDx");
  CHECK(unicode::decode_utf8_lossy("a\xff"
                                   "b") == U"a\uFFFDb");
}

TEST_CASE("character classes", "[unit][text]") {
  CHECK(unicode::is_letter(U'\u00e9'));
  CHECK(unicode::is_letter(U'\u6771'));  // CJK
  CHECK_FALSE(unicode::is_letter(U'\u0301'));
  CHECK(unicode::is_number(U'\u00b2'));
  CHECK_FALSE(unicode::is_decimal(U'\u00b2'));
  CHECK(unicode::is_decimal(U'\u0663'));
  CHECK(unicode::is_space(U'\u3000'));
  CHECK(unicode::is_space(U'\x1c'));
  CHECK_FALSE(unicode::is_space(U'\u200b'));
  CHECK(unicode::is_ignorecase_class_gap(U'\u0345'));
  CHECK_FALSE(unicode::is_ignorecase_class_gap(U'a'));
}

TEST_CASE("to_lower follows Python's str.lower()", "[unit][text]") {
  CHECK(unicode::to_lower(U"MiXeD \u00c6R\u00d8") == U"mixed \u00e6r\u00f8");
  CHECK(unicode::to_lower(U"\u0130") == U"i\u0307");
  // Final sigma: "ΟΔΟΣ ΣΑΣ. Σ" -> "οδος σας. σ"
  CHECK(unicode::to_lower(U"\u039f\u0394\u039f\u03a3 \u03a3\u0391\u03a3. \u03a3") ==
        U"\u03bf\u03b4\u03bf\u03c2 \u03c3\u03b1\u03c2. \u03c3");
}

TEST_CASE("nfc composes, reorders marks and handles Hangul", "[unit][text]") {
  CHECK(unicode::nfc(U"cafe\u0301") == U"caf\u00e9");
  CHECK(unicode::nfc(U"e\u0301\u0323") == U"\u1eb9\u0301");  // reordered below-dot first
  CHECK(unicode::nfc(U"\u1100\u1161\u11a8") == U"\uac01");
  CHECK(unicode::nfc(U"\u0344") == U"\u0308\u0301");  // composition exclusion
  CHECK(unicode::nfc(U"\u212b") == U"\u00c5");        // singleton
  CHECK(unicode::nfc(U"plain ascii") == U"plain ascii");
}

TEST_CASE("ftfy fix_text reproduces ftfy 6.2.0", "[unit][text]") {
  CHECK(fix("\xc3\xa2\xc5\x93\xe2\x80\x9d No problems") == "\xe2\x9c\x94 No problems");
  CHECK(fix("&macr;\\_(\xc3\xa3\xc2\x83\xc2\x84)_/&macr;") ==
        "\xc2\xaf\\_(\xe3\x83\x84)_/\xc2\xaf");
  CHECK(fix("Broken text&hellip; it&#x2019;s \xef\xac\x82ubberi\xef\xac\x81"
            "c!") == "Broken text\xe2\x80\xa6 it's flubberific!");
  CHECK(fix("\xef\xbc\xac\xef\xbc\xaf\xef\xbc\xb5\xef\xbc\xa4\xe3\x80\x80\xef\xbc\xae") ==
        "LOUD N");
  CHECK(fix("P&EACUTE;REZ") == "P\xc3\x89REZ");
  CHECK(fix("BUNDESSTRA&SZLIG;E") == "BUNDESSTRASSE");
  CHECK(fix("&ntilde; &Ntilde; &NTILDE; &nTILDE;") == "\xc3\xb1 \xc3\x91 \xc3\x91 &nTILDE;");
  CHECK(fix("voil\xc3\x83 le travail") == "voil\xc3\xa0 le travail");
  CHECK(fix("\xc3\x90\xc5\xb8\xc3\x91\xe2\x82\xac\xc3\x90\xc2\xb8") == "\xd0\x9f\xd1\x80\xd0\xb8");
  // A literal '<' turns HTML unescaping off for that line and every later one.
  CHECK(fix("line1 &amp;\n<p> &amp;\n &amp;") == "line1 &\n<p> &amp;\n &amp;");
  // Terminal escapes, control characters and line breaks.
  CHECK(fix("\x1b[31mred\x1b[0m bell\x07 a\r\nb\rc") == "red bell a\nb\nc");
  // "&#59;" is left alone: ftfy refuses decodings that contain ';'.
  CHECK(fix("&#59; &#39; &#x1F600; &#0;") == "&#59; ' \xf0\x9f\x98\x80 \xef\xbf\xbd");
}

TEST_CASE("ftfy is_bad and fix_encoding", "[unit][text]") {
  CHECK(ftfy::is_bad(u32("caf\xc3\x83\xc2\xa9")));
  CHECK_FALSE(ftfy::is_bad(u32("caf\xc3\xa9 cr\xc3\xa8me")));
  CHECK(ftfy::fix_encoding(u32("caf\xc3\x83\xc2\xa9")) == U"caf\u00e9");
  CHECK(ftfy::fix_encoding(u32("plain")) == U"plain");
}
