# Embeds pipeline/review_page.html in the studio binary: writes a .cpp defining
# studio::kReviewPageHtml (the bytes, NUL-terminated) and kReviewPageHtmlSize.
# Usage: cmake -DIN=review_page.html -DOUT=review_page_embedded.cpp -P review_page_embed.cmake
file(READ "${IN}" _hex HEX)
string(LENGTH "${_hex}" _hex_len)
math(EXPR _size "${_hex_len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," _bytes "${_hex}")
# 24 bytes a line keeps the generated file readable in a diff tool.
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){24})" "\\1\n  " _bytes "${_bytes}")
file(WRITE "${OUT}.tmp"
  "// Generated from pipeline/review_page.html by pipeline/review_page_embed.cmake: do not edit.\n"
  "#include <cstddef>\n\n"
  "namespace studio {\n\n"
  "extern const unsigned char kReviewPageHtml[];\n"
  "extern const std::size_t kReviewPageHtmlSize;\n"
  "const unsigned char kReviewPageHtml[] = {\n  ${_bytes}0x00};\n"
  "const std::size_t kReviewPageHtmlSize = ${_size};\n\n"
  "}  // namespace studio\n")
file(RENAME "${OUT}.tmp" "${OUT}")
